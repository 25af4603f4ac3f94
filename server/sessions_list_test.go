package server_test

import (
	"strings"
	"testing"

	"cloudkeys/config"
	"cloudkeys/models"
)

type sessionJSON struct {
	ID         string  `json:"id"`
	ClientAddr string  `json:"clientAddr"`
	UserAgent  *string `json:"userAgent"`
	Current    bool    `json:"current"`
	LastUsedAt string  `json:"lastUsedAt"`
}

const sessionsQuery = `{ me { sessions { id createdAt lastUsedAt expiresAt clientAddr userAgent current } } }`

func (c *client) sessions() []sessionJSON {
	c.t.Helper()
	var me struct {
		Sessions []sessionJSON `json:"sessions"`
	}
	c.must(sessionsQuery, nil, "me", &me)
	return me.Sessions
}

func TestSessionsListedAndRevoked(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, clock, c, email := appWithUser(t, cfg)
		clock.Advance(1e9)
		laptop := c.withHeader("User-Agent", "Firefox/140 on the laptop\t"+strings.Repeat("x", 400)).login(email, "password-"+email)
		clock.Advance(1e9)
		phone := c.withHeader("User-Agent", "Safari on the phone").login(email, "password-"+email)

		list := app.client(t).withToken(phone.AccessToken).sessions()
		if len(list) != 3 { // the phone, the laptop, and signUp's own sign-in
			t.Fatalf("%d sessions listed, want 3", len(list))
		}
		// Most recently used first; current is the caller's own.
		if !list[0].Current || list[1].Current || list[2].Current {
			t.Errorf("current: %+v", list)
		}
		if ua := list[0].UserAgent; ua == nil || *ua != "Safari on the phone" {
			t.Errorf("phone's user agent %v", ua)
		}
		if ua := list[1].UserAgent; ua == nil || len(*ua) != models.MaxUserAgent || strings.ContainsRune(*ua, '\t') {
			t.Errorf("laptop's user agent not clipped to %d printable bytes: %v", models.MaxUserAgent, ua)
		}
		if list[0].ClientAddr != "127.0.0.1" {
			t.Errorf("client address %q", list[0].ClientAddr)
		}

		// The phone ends the laptop's session: its access and refresh tokens stop at once.
		var ok bool
		app.client(t).withToken(phone.AccessToken).must(`mutation($id: ID!) { revokeSession(id: $id) }`,
			map[string]any{"id": list[1].ID}, "revokeSession", &ok)
		signedOut(t, app, laptop)
		e := c.refresh(laptop.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		if e.Extensions["reason"] != "REFRESH_TOKEN_INVALID" {
			t.Errorf("refresh of a revoked session: reason %v", e.Extensions["reason"])
		}
		if e := app.client(t).withToken(laptop.AccessToken).do(`{ me { id } }`, nil).wantCode(t, "me", "UNAUTHENTICATED"); e.Extensions["reason"] != "SESSION_ENDED" {
			t.Errorf("access token of a revoked session: reason %v", e.Extensions["reason"])
		}
		signedIn(t, app, phone)
		if n := len(app.client(t).withToken(phone.AccessToken).sessions()); n != 2 {
			t.Errorf("%d sessions after revoking one", n)
		}

		// Someone else's session, an ended one, a malformed ID: NOT_FOUND.
		admin := app.admin
		adminSessions := admin.sessions()
		for _, id := range []string{adminSessions[0].ID, list[1].ID, "not-a-uuid"} {
			app.client(t).withToken(phone.AccessToken).do(`mutation($id: ID!) { revokeSession(id: $id) }`,
				map[string]any{"id": id}).wantCode(t, "revokeSession", "NOT_FOUND")
		}
		signedIn(t, app, payloadJSON{AccessToken: admin.token, User: adminSessionsOwner(t, admin)})

		// Another user's sessions are null, for admins too.
		var page struct {
			Edges []struct {
				Node struct {
					Email    string         `json:"email"`
					Sessions *[]sessionJSON `json:"sessions"`
				} `json:"node"`
			} `json:"edges"`
		}
		admin.must(`{ users(first: 10) { edges { node { email sessions { id } } } } }`, nil, "users", &page)
		for _, e := range page.Edges {
			if e.Node.Email == email && e.Node.Sessions != nil {
				t.Errorf("an admin sees %s's sessions", email)
			}
		}
		// lastUsedAt moves at refresh.
		clock.Advance(5e9)
		c.mustRefresh(phone.RefreshToken)
		if after := app.client(t).withToken(phone.AccessToken).sessions(); after[0].LastUsedAt == list[0].LastUsedAt {
			t.Error("lastUsedAt did not move at refresh")
		}
	})
}

func adminSessionsOwner(t *testing.T, admin *client) userJSON {
	t.Helper()
	var me userJSON
	admin.must(`{ me { id } }`, nil, "me", &me)
	return me
}

// Signing in beyond models.MaxLiveSessions ends the least recently used.
func TestSessionsCapped(t *testing.T) {
	t.Parallel()
	app, clock, c, email := appWithUser(t, testConfig(t))
	first := c.login(email, "password-"+email)
	for range models.MaxLiveSessions {
		clock.Advance(1e9)
		c.login(email, "password-"+email)
	}
	signedOut(t, app, first)
	last := c.login(email, "password-"+email)
	if n := len(app.client(t).withToken(last.AccessToken).sessions()); n != models.MaxLiveSessions {
		t.Fatalf("%d live sessions, want %d", n, models.MaxLiveSessions)
	}
}
