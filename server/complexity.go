package server

import "cloudkeys/graph"

// costHashing is the query complexity of a field whose work is expensive
// or guards a secret — hashing or verifying a password with Argon2id
// (register, login, changePassword, resetUserPassword), counting a sign-in
// attempt (login), rotating a refresh token (refreshToken) — against 1 for
// an ordinary field. With the default limit of 1000 one request holds at
// most nine of them, so aliases cannot batch hundreds of password guesses
// or hashes into one request: a request over the limit is refused whole
// (COMPLEXITY_LIMIT_EXCEEDED) before any of its fields runs.
const costHashing = 100

// complexity returns the costs that differ from gqlgen's default (1 plus
// the selection's).
func complexity() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	c.Mutation.Login = func(child int, _, _ string) int { return costHashing + child }
	c.Mutation.Register = func(child int, _ graph.RegisterInput) int { return costHashing + child }
	c.Mutation.RefreshToken = func(child int, _ string) int { return costHashing + child }
	c.Mutation.ChangePassword = func(child int, _, _ string) int { return costHashing + child }
	c.Mutation.ResetUserPassword = func(child int, _, _ string) int { return costHashing + child }
	return c
}
