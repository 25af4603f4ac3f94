package server_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/config"
)

// Admin API: users, pendingUserCount, updateUser, deleteUser,
// resetUserPassword, and the last-approved-admin invariant.

const updateUserMutation = `mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { id email isAdmin status approvedAt approvedBy { id email } }
}`

type updatedUserJSON struct {
	userJSON
	ApprovedBy *struct {
		ID string `json:"id"`
	} `json:"approvedBy"`
}

func (c *client) updateUser(id string, input map[string]any) *response {
	c.t.Helper()
	return c.do(updateUserMutation, map[string]any{"id": id, "input": input})
}

func (c *client) mustUpdateUser(id string, input map[string]any) updatedUserJSON {
	c.t.Helper()
	var u updatedUserJSON
	c.must(updateUserMutation, map[string]any{"id": id, "input": input}, "updateUser", &u)
	return u
}

func (c *client) deleteUser(id string) *response {
	c.t.Helper()
	return c.do(`mutation($id: ID!) { deleteUser(id: $id) }`, map[string]any{"id": id})
}

func (c *client) resetUserPassword(id, password string) *response {
	c.t.Helper()
	return c.do(`mutation($id: ID!, $p: String!) { resetUserPassword(id: $id, newPassword: $p) }`,
		map[string]any{"id": id, "p": password})
}

// me asks who the client is; it answers the response, for its error.
func (c *client) me() *response {
	c.t.Helper()
	return c.do(`{ me { id email isAdmin status } }`, nil)
}

// approvedAdmins counts the approved admins in the database.
func (a *testApp) approvedAdmins(t testing.TB) int {
	t.Helper()
	return a.count(t, "SELECT COUNT(*) FROM users WHERE is_admin AND status = 'APPROVED'")
}

const missingUserID = "00000000-0000-4000-8000-000000000000"

func TestAdminFieldsRequireAnAdmin(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, _ := app.adminClient(t)
	user, me := app.signUp(t, admin, "user@example.com")
	anonymous := app.client(t)

	fields := []struct {
		name, query string
		vars        map[string]any
	}{
		{"users", `{ users { edges { node { id } } } }`, nil},
		{"pendingUserCount", `{ pendingUserCount }`, nil},
		{"updateUser", `mutation($id: ID!) { updateUser(id: $id, input: {isAdmin: true}) { id } }`, map[string]any{"id": me.ID}},
		{"deleteUser", `mutation($id: ID!) { deleteUser(id: $id) }`, map[string]any{"id": me.ID}},
		{"resetUserPassword", `mutation($id: ID!) { resetUserPassword(id: $id, newPassword: "a new password") }`, map[string]any{"id": me.ID}},
	}
	for _, f := range fields {
		t.Run(f.name, func(t *testing.T) {
			anonymous.do(f.query, f.vars).wantCode(t, f.name, "UNAUTHENTICATED")
			user.do(f.query, f.vars).wantCode(t, f.name, "FORBIDDEN")
		})
	}

	// A refused admin field fails alone: its sibling still answers.
	r := user.do(`{ me { email } pendingUserCount }`, nil)
	r.wantCode(t, "pendingUserCount", "FORBIDDEN")
	var got userJSON
	r.decode(t, "me", &got)
	if got.Email != "user@example.com" {
		t.Fatalf("me beside a refused field: %s", r)
	}
	// Nothing changed: the user is still a user, with their password.
	var still userJSON
	user.must(`{ me { id isAdmin status } }`, nil, "me", &still)
	if still.IsAdmin || still.Status != "APPROVED" {
		t.Fatalf("a refused updateUser changed the account: %+v", still)
	}
	app.client(t).login("user@example.com", "password-user@example.com")
}

func TestUsersListsNewestFirstInPages(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, adminUser := app.adminClient(t)
	anon := app.client(t)
	var ids []string // newest first
	for i := range 5 {
		u := anon.register(fmt.Sprintf("user%d@example.com", i), "a long password")
		ids = append([]string{u.ID}, ids...)
	}
	ids = append(ids, adminUser.ID)

	const page = `query($first: Int, $after: String, $status: UserStatus) {
  users(first: $first, after: $after, status: $status) {
    edges { cursor node { id email status } }
    pageInfo { hasNextPage endCursor }
  }
}`
	type connJSON struct {
		Edges []struct {
			Cursor string   `json:"cursor"`
			Node   userJSON `json:"node"`
		} `json:"edges"`
		PageInfo struct {
			HasNextPage bool    `json:"hasNextPage"`
			EndCursor   *string `json:"endCursor"`
		} `json:"pageInfo"`
	}
	var got []string
	var after any
	for pages := 1; ; pages++ {
		var conn connJSON
		admin.must(page, map[string]any{"first": 2, "after": after}, "users", &conn)
		for _, e := range conn.Edges {
			got = append(got, e.Node.ID)
		}
		if len(conn.Edges) == 0 || *conn.PageInfo.EndCursor != conn.Edges[len(conn.Edges)-1].Cursor {
			t.Fatalf("page %d: endCursor is not the last edge's cursor: %+v", pages, conn)
		}
		if !conn.PageInfo.HasNextPage {
			if pages != 3 {
				t.Fatalf("want 3 pages of 2 for 6 users, got %d", pages)
			}
			break
		}
		after = *conn.PageInfo.EndCursor
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("users newest first:\n got %v\nwant %v", got, ids)
	}

	// The default page holds everyone; a status filter only its own.
	var all, pending connJSON
	admin.must(page, nil, "users", &all)
	admin.must(page, map[string]any{"status": "PENDING", "first": 100}, "users", &pending)
	if len(all.Edges) != 6 || all.PageInfo.HasNextPage || len(pending.Edges) != 5 {
		t.Fatalf("default page has %d users, PENDING %d", len(all.Edges), len(pending.Edges))
	}
	for _, e := range pending.Edges {
		if e.Node.Status != "PENDING" {
			t.Fatalf("status filter let through %+v", e.Node)
		}
	}
	// After the last edge: an empty page.
	var empty connJSON
	admin.must(page, map[string]any{"after": all.Edges[5].Cursor}, "users", &empty)
	if len(empty.Edges) != 0 || empty.PageInfo.HasNextPage || empty.PageInfo.EndCursor != nil {
		t.Fatalf("page after the last user: %+v", empty)
	}

	for _, bad := range []struct {
		vars  map[string]any
		field string
	}{
		{map[string]any{"first": 0}, "first"},
		{map[string]any{"first": 101}, "first"},
		{map[string]any{"first": -1}, "first"},
		{map[string]any{"after": "not a cursor"}, "after"},
		{map[string]any{"after": "bm90IGEgY3Vyc29y"}, "after"}, // base64 of garbage
	} {
		e := admin.do(page, bad.vars).wantCode(t, "users", "BAD_USER_INPUT")
		if e.Extensions["field"] != bad.field {
			t.Errorf("%v: want field %q, got %v", bad.vars, bad.field, e.Extensions)
		}
	}

	var n int
	admin.must(`{ pendingUserCount }`, nil, "pendingUserCount", &n)
	if n != 5 {
		t.Fatalf("pendingUserCount = %d, want 5", n)
	}
	admin.mustUpdateUser(ids[0], map[string]any{"status": "APPROVED"})
	admin.mustUpdateUser(ids[1], map[string]any{"status": "DISABLED"})
	admin.must(`{ pendingUserCount }`, nil, "pendingUserCount", &n)
	if n != 3 {
		t.Fatalf("pendingUserCount after approving one and disabling one = %d, want 3", n)
	}
}

func TestUpdateUser(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, adminUser := app.adminClient(t)
	anon := app.client(t)
	bob := anon.register("bob@example.com", "bob's password")
	anon.register("carol@example.com", "carol's password")

	t.Run("approving records when and by whom", func(t *testing.T) {
		u := admin.mustUpdateUser(bob.ID, map[string]any{"status": "APPROVED"})
		if u.Status != "APPROVED" || u.ApprovedAt == nil || u.ApprovedBy == nil || u.ApprovedBy.ID != adminUser.ID {
			t.Fatalf("approved: %+v", u)
		}
		// Back to pending forgets the approval.
		u = admin.mustUpdateUser(bob.ID, map[string]any{"status": "PENDING"})
		if u.Status != "PENDING" || u.ApprovedAt != nil || u.ApprovedBy != nil {
			t.Fatalf("pending again: %+v", u)
		}
		anon.do(loginMutation, map[string]any{"email": "bob@example.com", "password": "bob's password"}).
			wantCode(t, "login", "ACCOUNT_PENDING")
		admin.mustUpdateUser(bob.ID, map[string]any{"status": "APPROVED"})
	})

	t.Run("email is normalised, validated and unique", func(t *testing.T) {
		u := admin.mustUpdateUser(bob.ID, map[string]any{"email": "  Robert@Example.COM "})
		if u.Email != "robert@example.com" {
			t.Fatalf("email: %q", u.Email)
		}
		anon.login("robert@example.com", "bob's password")
		e := admin.updateUser(bob.ID, map[string]any{"email": "not an email"}).wantCode(t, "updateUser", "BAD_USER_INPUT")
		if e.Extensions["field"] != "input.email" {
			t.Fatalf("field: %v", e.Extensions)
		}
		admin.updateUser(bob.ID, map[string]any{"email": "CAROL@example.com"}).wantCode(t, "updateUser", "CONFLICT")
		// Nothing of a refused change is kept.
		var still updatedUserJSON
		admin.must(updateUserMutation, map[string]any{"id": bob.ID, "input": map[string]any{}}, "updateUser", &still)
		if still.Email != "robert@example.com" || still.Status != "APPROVED" {
			t.Fatalf("after refused changes: %+v", still)
		}
	})

	t.Run("unknown ids are NOT_FOUND", func(t *testing.T) {
		for _, id := range []string{missingUserID, "not-a-uuid"} {
			admin.updateUser(id, map[string]any{"isAdmin": true}).wantCode(t, "updateUser", "NOT_FOUND")
			admin.deleteUser(id).wantCode(t, "deleteUser", "NOT_FOUND")
			admin.resetUserPassword(id, "a new password").wantCode(t, "resetUserPassword", "NOT_FOUND")
		}
	})

	t.Run("promoting and demoting take effect on the next request", func(t *testing.T) {
		bobClient := anon.withToken(anon.login("robert@example.com", "bob's password").AccessToken)
		bobClient.do(`{ pendingUserCount }`, nil).wantCode(t, "pendingUserCount", "FORBIDDEN")
		admin.mustUpdateUser(bob.ID, map[string]any{"isAdmin": true})
		var n int
		bobClient.must(`{ pendingUserCount }`, nil, "pendingUserCount", &n)
		if n != 1 {
			t.Fatalf("pendingUserCount = %d", n)
		}
		admin.mustUpdateUser(bob.ID, map[string]any{"isAdmin": false})
		bobClient.do(`{ pendingUserCount }`, nil).wantCode(t, "pendingUserCount", "FORBIDDEN")
		// Bob is still signed in, as a user.
		if r := bobClient.me(); len(r.Errors) > 0 {
			t.Fatalf("demoted user lost their session: %s", r)
		}
	})

	t.Run("disabling takes effect on the next request", func(t *testing.T) {
		p := anon.login("robert@example.com", "bob's password")
		bobClient := anon.withToken(p.AccessToken)
		admin.mustUpdateUser(bob.ID, map[string]any{"status": "DISABLED"})
		bobClient.me().wantCode(t, "me", "ACCOUNT_DISABLED")
		anon.refresh(p.RefreshToken).wantCode(t, "refreshToken", "ACCOUNT_DISABLED")
		anon.do(loginMutation, map[string]any{"email": "robert@example.com", "password": "bob's password"}).
			wantCode(t, "login", "ACCOUNT_DISABLED")
		// Approved again, the old access and refresh tokens stay dead (a
		// compromised account's thief is out); the user signs in afresh.
		admin.mustUpdateUser(bob.ID, map[string]any{"status": "APPROVED"})
		bobClient.me().wantCode(t, "me", "UNAUTHENTICATED")
		anon.refresh(p.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
		fresh := anon.withToken(anon.login("robert@example.com", "bob's password").AccessToken)
		if r := fresh.me(); len(r.Errors) > 0 {
			t.Fatalf("re-approved user signing in again: %s", r)
		}
		// A round trip through PENDING ends the sessions too.
		admin.mustUpdateUser(bob.ID, map[string]any{"status": "PENDING"})
		fresh.me().wantCode(t, "me", "ACCOUNT_PENDING")
		admin.mustUpdateUser(bob.ID, map[string]any{"status": "APPROVED"})
		fresh.me().wantCode(t, "me", "UNAUTHENTICATED")
	})
}

func TestDeleteUserTakesSessionsAndCredentials(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, _ := app.adminClient(t)
	dave, daveUser := app.signUp(t, admin, "dave@example.com")
	p := app.client(t).login("dave@example.com", "password-dave@example.com")
	// Dave approves Erin as an admin, so approvedBy points at Dave.
	_, erinUser := app.signUp(t, admin, "erin@example.com")
	admin.mustUpdateUser(daveUser.ID, map[string]any{"isAdmin": true})
	admin.mustUpdateUser(erinUser.ID, map[string]any{"status": "PENDING"})
	dave.mustUpdateUser(erinUser.ID, map[string]any{"status": "APPROVED"})
	// A credential row of Dave's, written directly: the credential API is
	// not what this test is about.
	if err := app.DB.Exec(`INSERT INTO cloud_credentials
		(id, user_id, name, backend_type, api_type, api_key_jwe, key_id, created_at, updated_at)
		VALUES ('11111111-1111-4111-8111-111111111111', ?, 'mine', 'OPENAI', 'OPENAI', 'x', 'k', ?, ?)`,
		daveUser.ID, time.Now().UTC(), time.Now().UTC()).Error; err != nil {
		t.Fatal(err)
	}

	var ok bool
	admin.must(`mutation($id: ID!) { deleteUser(id: $id) }`, map[string]any{"id": daveUser.ID}, "deleteUser", &ok)
	if !ok {
		t.Fatal("deleteUser answered false")
	}
	dave.me().wantCode(t, "me", "UNAUTHENTICATED")
	app.client(t).refresh(p.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
	app.client(t).do(loginMutation, map[string]any{"email": "dave@example.com", "password": "password-dave@example.com"}).
		wantCode(t, "login", "UNAUTHENTICATED")
	for _, table := range []string{"sessions", "cloud_credentials"} {
		if n := app.count(t, "SELECT COUNT(*) FROM "+table+" WHERE user_id = ?", daveUser.ID); n != 0 {
			t.Errorf("%d %s rows of the deleted user remain", n, table)
		}
	}
	if n := app.count(t, "SELECT COUNT(*) FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM sessions)"); n != 0 {
		t.Errorf("%d orphaned refresh tokens remain", n)
	}
	// Erin's approver is gone: approvedBy is null, approvedAt stays.
	var erin updatedUserJSON
	admin.must(updateUserMutation, map[string]any{"id": erinUser.ID, "input": map[string]any{}}, "updateUser", &erin)
	if erin.ApprovedBy != nil || erin.ApprovedAt == nil {
		t.Fatalf("approved by a deleted admin: %+v", erin)
	}
	admin.deleteUser(daveUser.ID).wantCode(t, "deleteUser", "NOT_FOUND")
}

func TestResetUserPassword(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, _ := app.adminClient(t)
	frank, frankUser := app.signUp(t, admin, "frank@example.com")
	other := app.client(t).login("frank@example.com", "password-frank@example.com")

	e := admin.resetUserPassword(frankUser.ID, "short").wantCode(t, "resetUserPassword", "BAD_USER_INPUT")
	if e.Extensions["field"] != "newPassword" {
		t.Fatalf("field: %v", e.Extensions)
	}
	var ok bool
	admin.must(`mutation($id: ID!) { resetUserPassword(id: $id, newPassword: "frank's new password") }`,
		map[string]any{"id": frankUser.ID}, "resetUserPassword", &ok)
	// Every session of Frank's is over.
	frank.me().wantCode(t, "me", "UNAUTHENTICATED")
	app.client(t).withToken(other.AccessToken).me().wantCode(t, "me", "UNAUTHENTICATED")
	app.client(t).refresh(other.RefreshToken).wantCode(t, "refreshToken", "UNAUTHENTICATED")
	app.client(t).do(loginMutation, map[string]any{"email": "frank@example.com", "password": "password-frank@example.com"}).
		wantCode(t, "login", "UNAUTHENTICATED")
	app.client(t).login("frank@example.com", "frank's new password")
	// The admin's own session is untouched.
	if r := admin.me(); len(r.Errors) > 0 {
		t.Fatalf("admin after a reset: %s", r)
	}
	app.wantLogsWithout(t, "frank's new password", other.RefreshToken, other.AccessToken)
}

func TestLastApprovedAdminIsKept(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := startApp(t, cfg)
		admin, adminUser := app.adminClient(t)
		// A pending account holding the admin flag is not an approved admin.
		pendingAdmin := app.client(t).register("pending-admin@example.com", "a long password")
		admin.mustUpdateUser(pendingAdmin.ID, map[string]any{"isAdmin": true})

		for _, change := range []map[string]any{
			{"isAdmin": false},
			{"status": "DISABLED"},
			{"status": "PENDING"},
			{"isAdmin": false, "status": "APPROVED"},
		} {
			e := admin.updateUser(adminUser.ID, change).wantCode(t, "updateUser", "FORBIDDEN")
			if !strings.Contains(e.Message, "last approved administrator") {
				t.Errorf("%v: the message does not say why: %q", change, e.Message)
			}
		}
		e := admin.deleteUser(adminUser.ID).wantCode(t, "deleteUser", "FORBIDDEN")
		if !strings.Contains(e.Message, "last approved administrator") {
			t.Errorf("delete: the message does not say why: %q", e.Message)
		}
		if n := app.approvedAdmins(t); n != 1 {
			t.Fatalf("%d approved admins", n)
		}

		// With a second approved admin, the first may step down.
		admin.mustUpdateUser(pendingAdmin.ID, map[string]any{"status": "APPROVED"})
		if u := admin.mustUpdateUser(adminUser.ID, map[string]any{"isAdmin": false}); u.IsAdmin {
			t.Fatalf("demoted: %+v", u)
		}
		// ... and is no admin from the next request on.
		admin.updateUser(adminUser.ID, map[string]any{"isAdmin": true}).wantCode(t, "updateUser", "FORBIDDEN")
	})
}

// Two admins removing each other at the same moment: exactly one wins, and
// one approved admin remains — on SQLite and on PostgreSQL, for each way
// of removing an admin.
func TestLastAdminInvariantUnderConcurrency(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := startApp(t, cfg)
		survivor, survivorUser := app.adminClient(t)
		removals := map[string]func(c *client, id string) *response{
			"demote":  func(c *client, id string) *response { return c.updateUser(id, map[string]any{"isAdmin": false}) },
			"disable": func(c *client, id string) *response { return c.updateUser(id, map[string]any{"status": "DISABLED"}) },
			"pending": func(c *client, id string) *response { return c.updateUser(id, map[string]any{"status": "PENDING"}) },
			"delete":  func(c *client, id string) *response { return c.deleteUser(id) },
		}
		field := map[string]string{"demote": "updateUser", "disable": "updateUser", "pending": "updateUser", "delete": "deleteUser"}
		round := 0
		for _, name := range []string{"demote", "disable", "pending", "delete", "demote", "delete", "disable", "pending"} {
			round++
			remove := removals[name]
			// A fresh second admin.
			other, otherUser := app.signUp(t, survivor, fmt.Sprintf("admin-%d@example.com", round))
			survivor.mustUpdateUser(otherUser.ID, map[string]any{"isAdmin": true})

			actors := []*client{survivor, other}
			targets := []string{otherUser.ID, survivorUser.ID}
			users := []userJSON{survivorUser, otherUser}
			results := make([]*response, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					<-start
					results[i] = remove(actors[i], targets[i])
				})
			}
			close(start)
			wg.Wait()

			winners := 0
			for i, r := range results {
				if len(r.Errors) == 0 {
					winners++
					survivor, survivorUser = actors[i], users[i]
					continue
				}
				code := r.Errors[0].Extensions["code"]
				if code != "FORBIDDEN" && code != "ACCOUNT_DISABLED" && code != "ACCOUNT_PENDING" && code != "UNAUTHENTICATED" {
					t.Fatalf("round %d (%s): the loser failed with %v: %s", round, name, code, r)
				}
				if !r.isNull(field[name]) {
					t.Fatalf("round %d (%s): %s", round, name, r)
				}
			}
			if winners != 1 {
				t.Fatalf("round %d (%s): %d of the two removals succeeded:\n%s\n%s", round, name, winners, results[0], results[1])
			}
			if n := app.approvedAdmins(t); n != 1 {
				t.Fatalf("round %d (%s): %d approved admins remain", round, name, n)
			}
		}
	})
}

// approvedBy names an admin (email, role, status): only admins may read it.
// For anyone else it is null without an error, wherever a User appears.
func TestApprovedByOnlyForAdmins(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, adminUser := app.adminClient(t)
	bob, bobUser := app.signUp(t, admin, "bob@example.com")
	const meQuery = `{ me { email approvedBy { id email isAdmin status } } }`
	type approved struct {
		Email      string `json:"email"`
		ApprovedBy *struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"approvedBy"`
	}

	var me approved
	bob.must(meQuery, nil, "me", &me)
	if me.Email != bobUser.Email || me.ApprovedBy != nil {
		t.Fatalf("a non-admin reads who approved them: %+v", me)
	}
	// Nor through the sign-in payload, which has no signed-in caller yet.
	var p struct {
		User approved `json:"user"`
	}
	app.client(t).must(`mutation { login(email: "bob@example.com", password: "password-bob@example.com") { user { email approvedBy { email } } } }`,
		nil, "login", &p)
	if p.User.ApprovedBy != nil {
		t.Fatalf("the login payload shows the approver: %+v", p.User)
	}

	// An admin reads it, in the user list and, once Bob is an admin, Bob too.
	var page struct {
		Edges []struct {
			Node approved `json:"node"`
		} `json:"edges"`
	}
	admin.must(`{ users { edges { node { email approvedBy { id email } } } } }`, nil, "users", &page)
	found := false
	for _, e := range page.Edges {
		if e.Node.Email == bobUser.Email {
			found = true
			if e.Node.ApprovedBy == nil || e.Node.ApprovedBy.ID != adminUser.ID || e.Node.ApprovedBy.Email != adminUser.Email {
				t.Fatalf("an admin does not see the approver: %+v", e.Node)
			}
		}
	}
	if !found {
		t.Fatal("Bob is not in the user list")
	}
	admin.mustUpdateUser(bobUser.ID, map[string]any{"isAdmin": true})
	bob.must(meQuery, nil, "me", &me)
	if me.ApprovedBy == nil || me.ApprovedBy.ID != adminUser.ID {
		t.Fatalf("an admin does not see their own approver: %+v", me)
	}
}
