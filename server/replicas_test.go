package server_test

import (
	"testing"
)

// TestTwoReplicasOnPostgres runs two cloudkeys replicas on one PostgreSQL
// database, as behind a load balancer: whatever one replica does to
// accounts and sessions, the other sees at once.
func TestTwoReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.RefreshGrace = 0 // a reused refresh token is always taken as stolen
	usePostgres(t, cfg)
	a := startApp(t, cfg)
	cfgB := *cfg // same database and secrets, its own process state
	b := startApp(t, &cfgB)

	a.client(t).register("ada@example.com", "correct horse")
	// Sign in on A, use the token on B.
	p := b.client(t).login("ada@example.com", "correct horse")
	var me userJSON
	a.client(t).withToken(p.AccessToken).must(`{ me { id email } }`, nil, "me", &me)
	if me.Email != "ada@example.com" {
		t.Fatalf("me on A: %+v", me)
	}
	// Refresh on A, then present the old refresh token to B: B detects the reuse.
	var rotated payloadJSON
	a.client(t).must(`mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }`,
		map[string]any{"t": p.RefreshToken}, "refreshToken", &rotated)
	b.client(t).do(`mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }`,
		map[string]any{"t": p.RefreshToken}).wantCode(t, "refreshToken", "UNAUTHENTICATED")
	a.client(t).withToken(rotated.AccessToken).do(`{ me { id } }`, nil).wantCode(t, "me", "UNAUTHENTICATED")

	// Sign out on B: the access token is refused on A at once.
	p = a.client(t).login("ada@example.com", "correct horse")
	a.client(t).withToken(p.AccessToken).must(`{ me { id } }`, nil, "me", &me)
	b.client(t).withToken(p.AccessToken).must(`mutation { logout }`, nil, "logout", new(bool))
	a.client(t).withToken(p.AccessToken).do(`{ me { id } }`, nil).wantCode(t, "me", "UNAUTHENTICATED")
}
