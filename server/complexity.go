package server

import (
	"cloudkeys/graph"
	"cloudkeys/models"
)

// The costs gqlgen's complexity limit (CLOUDKEYS_MAX_COMPLEXITY) adds up.
// A field costs 1 plus what it selects, except:
const (
	// expensiveCost is the cost of a field that hashes a password with
	// Argon2id (64 MiB and tens of milliseconds each), counts a sign-in
	// attempt, rotates a refresh token or calls a provider (up to 10 s): at
	// the default limit of 2000, a request holds at most nine of them, so
	// aliases cannot batch hundreds of password guesses into one request —
	// a request over the limit is refused whole before any field runs.
	expensiveCost = 200
	// credentialsEstimate is how many credentials a cloudCredentials list is
	// assumed to hold; the list has no pagination.
	credentialsEstimate = 20
	// defaultPage and maxPage mirror users(first: Int = 50), 1–100.
	defaultPage, maxPage = 50, 100
)

// complexity returns the schema's custom costs. Lists cost their size
// times what each item selects, so a page of 100 users with every field
// (about 1,500) fits the default limit and aliased pages of it do not.
func complexity() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	c.Mutation.Register = func(child int, _ graph.RegisterInput) int { return expensiveCost + child }
	c.Mutation.Login = func(child int, _, _ string) int { return expensiveCost + child }
	c.Mutation.RefreshToken = func(child int, _ string) int { return expensiveCost + child }
	c.Mutation.ChangePassword = func(child int, _, _ string) int { return expensiveCost + child }
	c.Mutation.ResetUserPassword = func(child int, _, _ string) int { return expensiveCost + child }
	c.Mutation.TestCloudCredential = func(child int, _ string) int { return expensiveCost + child }
	c.Query.CloudCredentials = func(child int) int { return 1 + credentialsEstimate*child }
	c.Query.Users = func(child int, _ *models.UserStatus, first *int, _ *string) int {
		n := defaultPage
		if first != nil {
			n = min(max(*first, 1), maxPage)
		}
		return 1 + n*child
	}
	return c
}
