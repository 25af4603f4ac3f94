package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/auth"
	"cloudkeys/config"
)

// Sessions: refresh-token rotation, reuse detection, the grace window,
// expiry, logout, and what changing a password or an account does to them.
// Every test runs on SQLite and on PostgreSQL; time moves by a test clock.

const refreshMutation = `mutation($t: String!) {
  refreshToken(refreshToken: $t) {
    accessToken tokenType expiresAt refreshToken refreshExpiresAt
    user { id email isAdmin status createdAt approvedAt }
  }
}`

func (c *client) refresh(token string) *response {
	c.t.Helper()
	return c.do(refreshMutation, map[string]any{"t": token})
}

func (c *client) mustRefresh(token string) payloadJSON {
	c.t.Helper()
	var p payloadJSON
	c.must(refreshMutation, map[string]any{"t": token}, "refreshToken", &p)
	return p
}

// logout signs the client's session out; refresh names another session.
func (c *client) logout(refresh string, everywhere bool) {
	c.t.Helper()
	vars := map[string]any{"everywhere": everywhere}
	if refresh != "" {
		vars["r"] = refresh
	}
	var ok bool
	c.must(`mutation($r: String, $everywhere: Boolean) { logout(refreshToken: $r, everywhere: $everywhere) }`, vars, "logout", &ok)
	if !ok {
		c.t.Fatal("logout answered false")
	}
}

// signedIn asserts that an access token still works.
func signedIn(t testing.TB, app *testApp, p payloadJSON) {
	t.Helper()
	var me userJSON
	app.client(t).withToken(p.AccessToken).must(`{ me { id } }`, nil, "me", &me)
	if me.ID != p.User.ID {
		t.Fatalf("me is %q, want %q", me.ID, p.User.ID)
	}
}

// signedOut asserts that an access token is refused.
func signedOut(t testing.TB, app *testApp, p payloadJSON) {
	t.Helper()
	app.client(t).withToken(p.AccessToken).me().wantCode(t, "me", "UNAUTHENTICATED")
}

// liveRefreshTokens counts the user's refresh tokens that could still be
// used: unused, in a session that is not revoked.
func (a *testApp) liveRefreshTokens(t testing.TB, userID string) int {
	t.Helper()
	return a.count(t, `SELECT COUNT(*) FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
		WHERE s.user_id = ? AND rt.used_at IS NULL AND s.revoked_at IS NULL`, userID)
}

// appWithUser starts an app with a test clock, an admin and one signed-up
// user, whose email it returns with a client without a token.
func appWithUser(t *testing.T, cfg *config.Config) (*testApp, *testClock, *client, string) {
	t.Helper()
	clock := useClock(cfg)
	app := startApp(t, cfg)
	app.adminClient(t)
	const email = "sam@example.com"
	app.signUp(t, app.admin, email)
	return app, clock, app.client(t), email
}

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, clock, c, email := appWithUser(t, cfg)
		p1 := c.login(email, "password-"+email)
		clock.Advance(time.Minute)
		p2 := c.mustRefresh(p1.RefreshToken)
		if p2.AccessToken == p1.AccessToken || p2.RefreshToken == p1.RefreshToken || p2.TokenType != "Bearer" {
			t.Fatalf("refresh did not issue new tokens: %+v", p2)
		}
		if p2.User.ID != p1.User.ID || p2.User.Email != email {
			t.Fatalf("refreshed user: %+v", p2.User)
		}
		exp, err := time.Parse(time.RFC3339, p2.RefreshExpiresAt)
		if err != nil || exp.Sub(clock.Now().Add(cfg.RefreshTokenTTL)).Abs() > 2*time.Second {
			t.Fatalf("refreshExpiresAt %s, want now + %s", p2.RefreshExpiresAt, cfg.RefreshTokenTTL)
		}
		signedIn(t, app, p2)
		p3 := c.mustRefresh(p2.RefreshToken)
		signedIn(t, app, p3)
		// Stored only as hashes.
		for _, tok := range []string{p1.RefreshToken, p2.RefreshToken, p3.RefreshToken} {
			sum := sha256.Sum256([]byte(tok))
			if app.count(t, "SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = ?", tok) != 0 ||
				app.count(t, "SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = ?", hex.EncodeToString(sum[:])) != 1 {
				t.Fatal("a refresh token is not stored as exactly its SHA-256")
			}
		}
		for _, bad := range []string{"", "garbage", strings.Repeat("A", 43)} {
			c.refresh(bad).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		}
		app.wantLogsWithout(t, p1.RefreshToken, p2.RefreshToken, p3.RefreshToken, p3.AccessToken, "password-"+email)
	})
}

func TestRefreshTokenReuseRevokesTheSession(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, clock, c, email := appWithUser(t, cfg)
		other := c.login(email, "password-"+email) // another session of the same user
		p1 := c.login(email, "password-"+email)
		p2 := c.mustRefresh(p1.RefreshToken)
		clock.Advance(cfg.RefreshGrace + time.Second)
		p3 := c.mustRefresh(p2.RefreshToken)
		signedIn(t, app, p3)

		// p1's token was used beyond its grace window: presenting it is theft.
		e := c.refresh(p1.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		if !strings.Contains(e.Message, "already used") || e.Extensions["reason"] != "REFRESH_TOKEN_REUSED" {
			t.Errorf("message %q, extensions %v", e.Message, e.Extensions)
		}
		signedOut(t, app, p3) // the session's access token, at once
		c.refresh(p3.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		c.refresh(p2.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		// The user's other session is not that family.
		signedIn(t, app, other)
		c.mustRefresh(other.RefreshToken)
		if !strings.Contains(app.Logs(), "refresh token reused: session revoked") {
			t.Error("reuse was not logged")
		}
	})
}

func TestRefreshGraceWindow(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.RefreshGrace = 10 * time.Second
		app, clock, c, email := appWithUser(t, cfg)
		login := func() payloadJSON { return c.login(email, "password-"+email) }

		t.Run("ten uses within the window all get working tokens", func(t *testing.T) {
			p1 := login()
			var got []payloadJSON
			for range 10 {
				got = append(got, c.mustRefresh(p1.RefreshToken))
				clock.Advance(900 * time.Millisecond) // the window runs from the first use
			}
			for i, p := range got {
				signedIn(t, app, p)
				for _, q := range got[:i] {
					if q.RefreshToken == p.RefreshToken {
						t.Fatal("two uses got the same refresh token")
					}
				}
			}
			// An 11th within the window is refused; the session goes on.
			e := c.refresh(p1.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
			if e.Extensions["reason"] != "REFRESH_TOKEN_REUSED" {
				t.Errorf("reason %v", e.Extensions["reason"])
			}
			for _, p := range got {
				signedIn(t, app, p)
				signedIn(t, app, c.mustRefresh(p.RefreshToken)) // each rotates on normally
			}
		})
		t.Run("after the window it is reuse", func(t *testing.T) {
			p1 := login()
			p2 := c.mustRefresh(p1.RefreshToken)
			clock.Advance(11 * time.Second)
			e := c.refresh(p1.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
			if e.Extensions["reason"] != "REFRESH_TOKEN_REUSED" {
				t.Errorf("reason %v", e.Extensions["reason"])
			}
			signedOut(t, app, p2)
			e = c.refresh(p2.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
			if e.Extensions["reason"] != "REFRESH_TOKEN_INVALID" {
				t.Errorf("a token of the revoked session: reason %v", e.Extensions["reason"])
			}
		})
		t.Run("reasons of the other refusals", func(t *testing.T) {
			e := c.refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").wantCode(t, "refreshToken", "UNAUTHENTICATED")
			if e.Extensions["reason"] != "REFRESH_TOKEN_INVALID" {
				t.Errorf("unknown token: reason %v", e.Extensions["reason"])
			}
			p := login()
			clock.Advance(cfg.RefreshTokenTTL + time.Second)
			e = c.refresh(p.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
			if e.Extensions["reason"] != "REFRESH_TOKEN_EXPIRED" {
				t.Errorf("expired token: reason %v", e.Extensions["reason"])
			}
		})
	})
}

func TestRefreshWithoutGraceIsStrict(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.RefreshGrace = 0
	app, _, c, email := appWithUser(t, cfg)
	p1 := c.login(email, "password-"+email)
	p2 := c.mustRefresh(p1.RefreshToken)
	c.refresh(p1.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
	signedOut(t, app, p2)
}

func TestSessionsExpire(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.AccessTokenTTL = 15 * time.Minute
		cfg.RefreshTokenTTL = time.Hour
		app, clock, c, email := appWithUser(t, cfg)

		p1 := c.login(email, "password-"+email)
		signedIn(t, app, p1) // a verified token is remembered: its expiry still counts
		clock.Advance(15*time.Minute + auth.MaxClockSkew - time.Second)
		signedIn(t, app, p1)
		clock.Advance(2 * time.Second) // past the access token's 15 min (+30 s skew)
		signedOut(t, app, p1)
		p2 := c.mustRefresh(p1.RefreshToken)
		signedIn(t, app, p2)

		// Each refresh extends the session by the TTL from then: 66 min
		// after the sign-in, 50 after the last refresh, it still works...
		clock.Advance(50 * time.Minute)
		p3 := c.mustRefresh(p2.RefreshToken)
		// ...and a session unused for longer than the TTL is over.
		clock.Advance(cfg.RefreshTokenTTL + time.Second)
		c.refresh(p3.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		signedOut(t, app, p3)
	})
}

func TestSessionEndsBeforeItsAccessToken(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.AccessTokenTTL = 15 * time.Minute
	cfg.RefreshTokenTTL = 5 * time.Minute // shorter than the access token
	app, clock, c, email := appWithUser(t, cfg)
	p := c.login(email, "password-"+email)
	clock.Advance(4 * time.Minute)
	signedIn(t, app, p)
	clock.Advance(2 * time.Minute)
	signedOut(t, app, p) // the token is valid, its session is not
}

func TestLogout(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, _, c, email := appWithUser(t, cfg)
		app.signUp(t, app.admin, "vic@example.com")
		vic := c.login("vic@example.com", "password-vic@example.com")

		current := c.login(email, "password-"+email)
		named := c.login(email, "password-"+email)
		untouched := c.login(email, "password-"+email)

		// logout(refreshToken) ends the current session and the named one
		// of the caller's; someone else's token is left alone.
		c.withToken(current.AccessToken).logout(named.RefreshToken, false)
		signedOut(t, app, current)
		c.refresh(current.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		signedOut(t, app, named)
		c.refresh(named.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		signedIn(t, app, untouched)

		c.withToken(untouched.AccessToken).logout(vic.RefreshToken, false)
		signedOut(t, app, untouched)
		signedIn(t, app, vic)
		c.mustRefresh(vic.RefreshToken)

		// A garbled token is ignored; the current session still ends.
		p := c.login(email, "password-"+email)
		c.withToken(p.AccessToken).logout("garbage", false)
		signedOut(t, app, p)

		app.client(t).do(`mutation { logout }`, nil).wantCode(t, "logout", "UNAUTHENTICATED")
	})
}

func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, _, c, email := appWithUser(t, cfg)
		app.signUp(t, app.admin, "vic@example.com")
		vic := c.login("vic@example.com", "password-vic@example.com")
		var mine []payloadJSON
		for range 3 {
			mine = append(mine, c.login(email, "password-"+email))
		}
		c.withToken(mine[0].AccessToken).logout("", true)
		for _, p := range mine {
			signedOut(t, app, p)
			c.refresh(p.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		}
		signedIn(t, app, vic)
		c.mustRefresh(vic.RefreshToken)
		if n := app.liveRefreshTokens(t, mine[0].User.ID); n != 0 {
			t.Fatalf("%d live refresh tokens after logout everywhere", n)
		}
		// Signing in again works.
		signedIn(t, app, c.login(email, "password-"+email))
	})
}

func TestChangePasswordEndsOtherSessions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, _, c, email := appWithUser(t, cfg)
		current := c.login(email, "password-"+email)
		other := c.login(email, "password-"+email)
		me := c.withToken(current.AccessToken)
		const change = `mutation($old: String!, $new: String!) { changePassword(currentPassword: $old, newPassword: $new) }`

		// A typo in the current password must not sign the client out.
		if e := me.do(change, map[string]any{"old": "wrong password", "new": "a new password"}).
			wantCode(t, "changePassword", "BAD_USER_INPUT"); e.Extensions["field"] != "currentPassword" {
			t.Fatalf("field: %v", e.Extensions)
		}
		e := me.do(change, map[string]any{"old": "password-" + email, "new": "short"}).
			wantCode(t, "changePassword", "BAD_USER_INPUT")
		if e.Extensions["field"] != "newPassword" {
			t.Fatalf("field: %v", e.Extensions)
		}
		signedIn(t, app, other) // refused changes end nothing

		var ok bool
		me.must(change, map[string]any{"old": "password-" + email, "new": "a new password"}, "changePassword", &ok)
		signedIn(t, app, current)
		c.mustRefresh(current.RefreshToken)
		signedOut(t, app, other)
		c.refresh(other.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		c.do(loginMutation, map[string]any{"email": email, "password": "password-" + email}).
			wantCode(t, "login", "UNAUTHENTICATED")
		c.login(email, "a new password")
		app.wantLogsWithout(t, "a new password", "password-"+email, current.RefreshToken)
	})
}

func TestRefreshRefusedForAccountsThatMayNotSignIn(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := startApp(t, cfg)
		admin, _ := app.adminClient(t)
		c := app.client(t)
		for _, tc := range []struct{ name, code string }{
			{"DISABLED", "ACCOUNT_DISABLED"}, {"PENDING", "ACCOUNT_PENDING"}, {"deleted", "UNAUTHENTICATED"},
		} {
			email := strings.ToLower(tc.name) + "@example.com"
			_, u := app.signUp(t, admin, email)
			p := c.login(email, "password-"+email)
			if tc.name == "deleted" {
				admin.deleteUser(u.ID)
			} else {
				admin.mustUpdateUser(u.ID, map[string]any{"status": tc.name})
			}
			c.refresh(p.RefreshToken).wantCode(t, "refreshToken", tc.code)
			c.withToken(p.AccessToken).me().wantCode(t, "me", tc.code)
		}
	})
}

// Several tabs refreshing with one token at the same moment all get
// working tokens (up to models.MaxGraceUses), and none signs the user out.
func TestConcurrentRefreshesOfOneToken(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, _, c, email := appWithUser(t, cfg)
		for _, n := range []int{2, 10, 14} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				c.withToken(c.login(email, "password-"+email).AccessToken).logout("", true)
				p := c.login(email, "password-"+email)
				results := make([]*response, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						<-start
						results[i] = c.refresh(p.RefreshToken)
					})
				}
				close(start)
				wg.Wait()
				var ok []payloadJSON
				for _, r := range results {
					if len(r.Errors) == 0 {
						var pj payloadJSON
						r.decode(t, "refreshToken", &pj)
						ok = append(ok, pj)
					} else if r.Errors[0].Extensions["reason"] != "REFRESH_TOKEN_REUSED" {
						t.Fatalf("a concurrent refresh failed with %v", r.Errors[0].Extensions)
					}
				}
				if want := min(n, 10); len(ok) != want {
					t.Fatalf("%d of %d concurrent refreshes succeeded, want %d", len(ok), n, want)
				}
				// Every pair works: the access token answers me, the
				// refresh token refreshes once more.
				for _, pj := range ok {
					signedIn(t, app, pj)
					signedIn(t, app, c.mustRefresh(pj.RefreshToken))
				}
			})
		}
	})
}

// An unknown or malformed refresh token is refused quietly: only reuse of
// a real token (a theft signal) is worth a warning, and anyone can send the
// former in bulk.
func TestUnknownRefreshTokensAreNotLogged(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	for _, token := range []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "short", ""} {
		c.refresh(token).wantCode(t, "refreshToken", "UNAUTHENTICATED")
	}
	if strings.Contains(app.Logs(), "level=WARN") {
		t.Fatalf("unknown refresh tokens produced warnings:\n%s", app.Logs())
	}
}

// Sessions that ended (expired or revoked) more than a day ago are deleted
// with their refresh tokens, so the tables do not grow forever; live ones
// and recently ended ones stay.
func TestEndedSessionsArePruned(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.RefreshTokenTTL = time.Hour
	app, clock, c, email := appWithUser(t, cfg)
	for range 3 {
		p := c.login(email, "password-"+email)
		c.mustRefresh(p.RefreshToken)
	}
	revoked := c.login(email, "password-"+email)
	c.withToken(revoked.AccessToken).logout("", false)
	clock.Advance(26 * time.Hour) // all of the above ended over a day ago
	live := c.login(email, "password-"+email)
	if n := app.count(t, "SELECT COUNT(*) FROM sessions"); n != 1 {
		t.Fatalf("%d sessions kept, want only the live one", n)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM refresh_tokens"); n != 1 {
		t.Fatalf("%d refresh tokens kept, want the live session's one", n)
	}
	signedIn(t, app, live)
}
