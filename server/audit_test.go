package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"cloudkeys/audit"
	"cloudkeys/config"
	"cloudkeys/relay/fakeprovider"
)

type auditEventJSON struct {
	ID         string  `json:"id"`
	Action     string  `json:"action"`
	Outcome    string  `json:"outcome"`
	ActorID    *string `json:"actorId"`
	TargetType *string `json:"targetType"`
	TargetID   *string `json:"targetId"`
	ClientAddr *string `json:"clientAddr"`
	RequestID  *string `json:"requestId"`
	Detail     *string `json:"detail"`
	Actor      *struct {
		ID string `json:"id"`
	} `json:"actor"`
}

const auditFields = `id action outcome actorId targetType targetId clientAddr requestId detail actor { id }`

// auditEvents reads the whole trail (admin), oldest first.
func (c *client) auditEvents() []auditEventJSON {
	c.t.Helper()
	var all []auditEventJSON
	after := ""
	for range 50 { // bounded: 50 pages of 100
		var conn struct {
			Edges []struct {
				Node auditEventJSON `json:"node"`
			} `json:"edges"`
			PageInfo struct {
				HasNextPage bool    `json:"hasNextPage"`
				EndCursor   *string `json:"endCursor"`
			} `json:"pageInfo"`
		}
		vars := map[string]any{}
		if after != "" {
			vars["after"] = after
		}
		c.must(`query($after: String) { auditEvents(first: 100, after: $after) { edges { node { `+auditFields+` } } pageInfo { hasNextPage endCursor } } }`,
			vars, "auditEvents", &conn)
		for _, e := range conn.Edges {
			all = append([]auditEventJSON{e.Node}, all...)
		}
		if !conn.PageInfo.HasNextPage {
			return all
		}
		after = *conn.PageInfo.EndCursor
	}
	c.t.Fatal("more than 5000 audit events")
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Every security event of SPEC §9 is recorded once, with its actor,
// target and outcome, and no row holds a secret.
func TestAuditTrailRecordsEachEvent(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.AllowPrivateBaseURLs = true
		cfg.LoginMaxPerEmail = 3
		clock := useClock(cfg)
		app := startApp(t, cfg)
		fake := fakeprovider.Start(t, fakeprovider.Options{})
		admin, adminUser := app.adminClient(t)

		// Accounts: registered, approved, signed in, promoted, demoted, disabled, deleted.
		const email, password = "eve@example.com", "password-eve-1"
		u := app.client(t).register(email, password)
		admin.updateUser(u.ID, map[string]any{"status": "APPROVED"})
		p := app.client(t).login(email, password)
		eve := app.client(t).withToken(p.AccessToken)
		admin.updateUser(u.ID, map[string]any{"isAdmin": true})
		admin.updateUser(u.ID, map[string]any{"isAdmin": false})
		var created userJSON
		admin.must(`mutation { createUser(input: {email: "made@example.com", password: "password-made"}) { id } }`, nil, "createUser", &created)

		// Sign-ins that fail, and a throttled flood recorded once.
		app.client(t).tryLogin(email, "wrong password").wantCode(t, "login", "UNAUTHENTICATED")
		app.client(t).tryLogin("nobody@example.com", "wrong password").wantCode(t, "login", "UNAUTHENTICATED")
		for range 2 {
			app.client(t).tryLogin(email, "wrong password")
		}
		for range 5 {
			app.client(t).tryLogin(email, "wrong password").wantCode(t, "login", "RATE_LIMITED")
		}

		// Credentials and relay keys.
		key := apiKey(t)
		cred := eve.createCred(map[string]any{"name": "prod", "backendType": "OPENAI_COMPATIBLE", "apiKey": key, "baseUrl": fake.URL})
		key2 := apiKey(t)
		eve.updateCred(cred.ID, map[string]any{"apiKey": key2})
		eve.testCred(cred.ID)
		rk, secret := eve.createRelayKey(cred.ID, nil)
		eve.must(`mutation($id: ID!) { revokeRelayKey(id: $id) { id } }`, map[string]any{"id": rk.ID}, "revokeRelayKey", new(map[string]any))
		eve.must(`mutation($id: ID!) { deleteCloudCredential(id: $id) }`, map[string]any{"id": cred.ID}, "deleteCloudCredential", new(bool))

		// Sessions and passwords.
		clock.Advance(cfg.LoginWindow) // the throttle forgets
		second := app.client(t).login(email, password)
		eve.must(`mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": sessionOf(t, second.AccessToken)}, "revokeSession", new(bool))
		rotated := app.client(t).mustRefresh(p.RefreshToken)
		clock.Advance(cfg.RefreshGrace + 1e9)
		app.client(t).refresh(p.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED") // reuse: the session ends
		third := app.client(t).login(email, password)
		eve = app.client(t).withToken(third.AccessToken)
		eve.must(`mutation { changePassword(currentPassword: "password-eve-1", newPassword: "password-eve-2") }`, nil, "changePassword", new(bool))
		admin.must(`mutation($id: ID!) { resetUserPassword(id: $id, newPassword: "password-eve-3") }`, map[string]any{"id": u.ID}, "resetUserPassword", new(bool))
		fourth := app.client(t).login(email, "password-eve-3")
		app.client(t).withToken(fourth.AccessToken).logout("", false)
		admin.updateUser(u.ID, map[string]any{"status": "DISABLED"})
		admin.must(`mutation($id: ID!) { deleteUser(id: $id) }`, map[string]any{"id": u.ID}, "deleteUser", new(bool))
		_ = rotated

		events := admin.auditEvents()
		byAction := map[string][]auditEventJSON{}
		for _, e := range events {
			byAction[e.Action+"/"+e.Outcome] = append(byAction[e.Action+"/"+e.Outcome], e)
		}
		want := map[string]int{
			"USER_REGISTERED/SUCCEEDED": 2, "USER_APPROVED/SUCCEEDED": 1, "USER_PROMOTED/SUCCEEDED": 1,
			"USER_DEMOTED/SUCCEEDED": 1, "USER_CREATED/SUCCEEDED": 1, "USER_DISABLED/SUCCEEDED": 1, "USER_DELETED/SUCCEEDED": 1,
			"SIGN_IN/FAILED": 4, "SIGN_IN/REFUSED": 1,
			"CREDENTIAL_CREATED/SUCCEEDED": 1, "CREDENTIAL_UPDATED/SUCCEEDED": 1, "CREDENTIAL_TESTED/SUCCEEDED": 1,
			"CREDENTIAL_DELETED/SUCCEEDED": 1, "RELAY_KEY_CREATED/SUCCEEDED": 1, "RELAY_KEY_REVOKED/SUCCEEDED": 1,
			"SESSION_REVOKED/SUCCEEDED": 1, "REFRESH_TOKEN_REUSED/REFUSED": 1, "PASSWORD_CHANGED/SUCCEEDED": 1,
			"PASSWORD_RESET/SUCCEEDED": 1, "SIGNED_OUT/SUCCEEDED": 1,
		}
		for k, n := range want {
			if got := len(byAction[k]); got != n {
				t.Errorf("%s recorded %d times, want %d", k, got, n)
			}
		}
		// Sign-ins: the admin's, eve's four, made's none.
		if got := len(byAction["SIGN_IN/SUCCEEDED"]); got != 5 {
			t.Errorf("SIGN_IN/SUCCEEDED recorded %d times, want 5", got)
		}
		// Actors and targets.
		one := func(k string) auditEventJSON { return byAction[k][0] }
		if e := one("USER_APPROVED/SUCCEEDED"); str(e.ActorID) != adminUser.ID || str(e.TargetID) != u.ID || str(e.TargetType) != "user" {
			t.Errorf("approval: %+v", e)
		}
		if e := one("CREDENTIAL_CREATED/SUCCEEDED"); str(e.ActorID) != u.ID || str(e.TargetID) != cred.ID {
			t.Errorf("credential created: %+v", e)
		}
		if e := one("RELAY_KEY_REVOKED/SUCCEEDED"); str(e.TargetID) != rk.ID || str(e.TargetType) != "relay_key" {
			t.Errorf("relay key revoked: %+v", e)
		}
		if e := one("REFRESH_TOKEN_REUSED/REFUSED"); e.ActorID != nil || str(e.TargetID) != u.ID || str(e.TargetType) != "user" {
			t.Errorf("reuse: %+v", e)
		}
		if e := one("SIGN_IN/REFUSED"); str(e.Detail) != "RATE_LIMITED" || str(e.TargetID) != email {
			t.Errorf("throttled sign-in: %+v", e)
		}
		for _, e := range byAction["SIGN_IN/FAILED"] {
			if str(e.Detail) != "BAD_CREDENTIALS" || str(e.ClientAddr) != "127.0.0.1" || str(e.RequestID) == "" {
				t.Errorf("failed sign-in: %+v", e)
			}
		}
		// The actor is kept as an ID after the account is deleted.
		if e := one("USER_DELETED/SUCCEEDED"); e.Actor == nil || e.Actor.ID != adminUser.ID {
			t.Errorf("deletion's actor: %+v", e)
		}
		if e := one("CREDENTIAL_CREATED/SUCCEEDED"); e.Actor != nil || str(e.ActorID) != u.ID {
			t.Errorf("a deleted actor: %+v", e)
		}

		// No secret in any column of any row.
		secrets := []string{password, "password-eve-2", "password-eve-3", "password-made", "wrong password", key, key2, secret,
			p.AccessToken, p.RefreshToken, second.RefreshToken, rotated.RefreshToken, third.AccessToken, fourth.RefreshToken}
		rows, err := app.DB.Raw("SELECT * FROM audit_events").Rows()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			n++
			for i, v := range vals {
				text := fmt.Sprintf("%s", v)
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Fatalf("column %s of an audit row holds a secret (%.4s…)", cols[i], s)
					}
					if part, ok := containsPartOf(text, s); ok && len(s) > 20 {
						t.Fatalf("column %s of an audit row holds part of a secret: %.4s…", cols[i], part)
					}
				}
			}
		}
		if n != len(events) {
			t.Errorf("%d rows in the table, %d listed", n, len(events))
		}
		rep, err := audit.Verify(context.Background(), app.DB, app.Config.AuditKey)
		if err != nil || !rep.OK {
			t.Fatalf("the chain does not verify: %+v %v", rep, err)
		}
	})
}

// sessionOf is the sid claim of an access token.
func sessionOf(t *testing.T, token string) string {
	t.Helper()
	sid, _ := claimsOf(t, token)["sid"].(string)
	return sid
}

// me.securityEvents shows the caller's own events; it is null on anyone
// else, admins included; auditEvents is for admins only and filters.
func TestSecurityEventsAreTheCallersOwn(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, adminUser := app.adminClient(t)
	c, u := app.signUp(t, admin, "sam@example.com")
	app.client(t).tryLogin("sam@example.com", "wrong").wantCode(t, "login", "UNAUTHENTICATED")

	var me struct {
		SecurityEvents struct {
			Edges []struct {
				Node auditEventJSON `json:"node"`
			} `json:"edges"`
		} `json:"securityEvents"`
	}
	c.must(`{ me { securityEvents(first: 50) { edges { node { `+auditFields+` } } } } }`, nil, "me", &me)
	actions := map[string]bool{}
	for _, e := range me.SecurityEvents.Edges {
		actions[e.Node.Action+"/"+e.Node.Outcome] = true
		if str(e.Node.ActorID) != u.ID && str(e.Node.TargetID) != u.ID && str(e.Node.TargetID) != "sam@example.com" {
			if str(e.Node.TargetType) != "session" {
				t.Errorf("someone else's event in securityEvents: %+v", e.Node)
			}
		}
		if e.Node.Actor != nil && e.Node.Actor.ID != u.ID {
			t.Errorf("a user sees another account as actor: %+v", e.Node)
		}
	}
	for _, want := range []string{"USER_REGISTERED/SUCCEEDED", "USER_APPROVED/SUCCEEDED", "SIGN_IN/SUCCEEDED", "SIGN_IN/FAILED"} {
		if !actions[want] {
			t.Errorf("securityEvents lacks %s: %v", want, actions)
		}
	}
	// Null on another user, for an admin too.
	var page struct {
		Edges []struct {
			Node struct {
				ID             string `json:"id"`
				SecurityEvents *struct {
					Edges []any `json:"edges"`
				} `json:"securityEvents"`
			} `json:"node"`
		} `json:"edges"`
	}
	admin.must(`{ users(first: 10) { edges { node { id securityEvents(first: 5) { edges { cursor } } } } } }`, nil, "users", &page)
	for _, e := range page.Edges {
		if e.Node.ID != adminUser.ID && e.Node.SecurityEvents != nil {
			t.Errorf("an admin sees %s's securityEvents", e.Node.ID)
		}
	}
	// auditEvents: admins only; filters by action and actor.
	c.do(`{ auditEvents { edges { cursor } } }`, nil).wantCode(t, "auditEvents", "FORBIDDEN")
	var conn struct {
		Edges []struct {
			Node auditEventJSON `json:"node"`
		} `json:"edges"`
	}
	admin.must(`query($a: ID!) { auditEvents(action: SIGN_IN, actorId: $a) { edges { node { `+auditFields+` } } } }`,
		map[string]any{"a": u.ID}, "auditEvents", &conn)
	if len(conn.Edges) != 1 || conn.Edges[0].Node.Outcome != "SUCCEEDED" {
		t.Errorf("filtered audit events: %+v", conn.Edges)
	}
	admin.do(`{ auditEvents(first: 0) { edges { cursor } } }`, nil).wantCode(t, "auditEvents", "BAD_USER_INPUT")
	admin.do(`{ auditEvents(after: "forged") { edges { cursor } } }`, nil).wantCode(t, "auditEvents", "BAD_USER_INPUT")
}

// Two replicas writing at once on one PostgreSQL database keep one chain
// that verifies.
func TestAuditChainWithTwoReplicas(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	usePostgres(t, cfg)
	a := startApp(t, cfg)
	admin, _ := a.adminClient(t)
	cfgB := *cfg
	b := startApp(t, &cfgB)
	users := make([]*client, 4)
	for i := range users {
		users[i], _ = a.signUp(t, admin, fmt.Sprintf("u%d@example.com", i))
	}
	var wg sync.WaitGroup
	for i, c := range users {
		wg.Go(func() {
			on := []*testApp{a, b}[i%2]
			cc := on.client(t).withToken(c.token)
			for j := range 8 {
				cc.createCred(openAIInput(fmt.Sprintf("k%d", j), apiKey(t)))
			}
		})
	}
	wg.Wait()
	rep, err := audit.Verify(context.Background(), a.DB, a.Config.AuditKey)
	if err != nil || !rep.OK {
		t.Fatalf("the chain does not verify: %+v %v", rep, err)
	}
	if n := a.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'CREDENTIAL_CREATED'"); n != 32 {
		t.Fatalf("%d credential events, want 32", n)
	}
	if rep.Head.Seq != rep.Rows || rep.From != 1 {
		t.Fatalf("sequence numbers are not contiguous: %+v", rep)
	}
}

// changePassword's throttled check is recorded as what it is, once per window.
func TestThrottledPasswordChangeIsAuditedAsSuch(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 2, 1000
	app, _, c, email := appWithUser(t, cfg)
	me := c.withToken(c.login(email, "password-"+email).AccessToken)
	const change = `mutation($old: String!) { changePassword(currentPassword: $old, newPassword: "a new password") }`
	for range 2 {
		me.do(change, map[string]any{"old": "a guess"}).wantCode(t, "changePassword", "BAD_USER_INPUT")
	}
	for range 3 {
		me.do(change, map[string]any{"old": "another guess"}).wantCode(t, "changePassword", "RATE_LIMITED")
	}
	if n := app.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'PASSWORD_CHANGED' AND outcome = 'REFUSED'"); n != 1 {
		t.Errorf("%d PASSWORD_CHANGED/REFUSED rows, want 1 (once per window)", n)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'PASSWORD_CHANGED' AND outcome = 'FAILED'"); n != 2 {
		t.Errorf("%d PASSWORD_CHANGED/FAILED rows, want 2", n)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'SIGN_IN' AND outcome = 'REFUSED'"); n != 0 {
		t.Errorf("a throttled password change recorded as a sign-in")
	}
}
