package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"cloudkeys/auth"
)

func TestRegisterFirstUserIsApprovedAdmin(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	first := c.register("  Ada@Example.COM ", "correct horse")
	if first.Email != "ada@example.com" || !first.IsAdmin || first.Status != "APPROVED" {
		t.Fatalf("first user: %+v", first)
	}
	second := c.register("bob@example.com", "correct horse")
	if second.IsAdmin || second.Status != "PENDING" {
		t.Fatalf("second user: %+v", second)
	}
	if first.ID == second.ID || len(first.ID) != 36 {
		t.Fatalf("ids: %q %q", first.ID, second.ID)
	}
	if _, err := time.Parse(time.RFC3339, first.CreatedAt); err != nil {
		t.Fatalf("createdAt is not RFC 3339: %q", first.CreatedAt)
	}
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	c.register("taken@example.com", "correct horse")
	c.register("\u00e9t\u00e9@example.com", "correct horse") // été, precomposed
	cases := []struct {
		name, email, password, code, field string
	}{
		{"empty email", "  ", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"not an address", "ada", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"display name", "Ada <ada@example.com>", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"two ats", "a@b@example.com", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"long email", strings.Repeat("a", 250) + "@example.com", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"short password", "new1@example.com", "1234567", "BAD_USER_INPUT", "input.password"},
		{"long password", "new2@example.com", strings.Repeat("p", 129), "BAD_USER_INPUT", "input.password"},
		{"duplicate, other case", " TAKEN@example.com", "correct horse", "CONFLICT", ""},
		{"zero-width space", "ada\u200b@example.com", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"bidi override", "\u202eada@example.com", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"inner space", "a da@example.com", "correct horse", "BAD_USER_INPUT", "input.email"},
		{"decomposed form of a taken address", "e\u0301te\u0301@example.com", "correct horse", "CONFLICT", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(registerMutation, map[string]any{"email": tc.email, "password": tc.password})
			e := r.wantCode(t, "register", tc.code)
			if tc.field != "" && e.Extensions["field"] != tc.field {
				t.Fatalf("field: want %s, got %v", tc.field, e.Extensions["field"])
			}
			if strings.Contains(e.Message, tc.password) {
				t.Fatalf("the error repeats the password: %q", e.Message)
			}
		})
	}
	// Boundaries pass: 8 and 128 characters (runes, not bytes).
	c.register("eight@example.com", "12345678")
	c.register("long@example.com", strings.Repeat("é", 128))
	// Nothing of the refused registrations was stored.
	r := c.do(loginMutation, map[string]any{"email": "new1@example.com", "password": "1234567"})
	r.wantCode(t, "login", "UNAUTHENTICATED")
}

func TestLogin(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	admin := c.register("ada@example.com", "correct horse")
	c.register("pending@example.com", "correct horse")

	t.Run("case-insensitive, trimmed email", func(t *testing.T) {
		p := c.login("  ADA@Example.com ", "correct horse")
		if p.TokenType != "Bearer" || p.User.ID != admin.ID || p.AccessToken == "" || p.RefreshToken == "" {
			t.Fatalf("payload: %+v", p)
		}
		exp, err := time.Parse(time.RFC3339, p.ExpiresAt)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(exp); d < 14*time.Minute || d > 15*time.Minute+time.Second {
			t.Fatalf("access token lifetime %v, want 15m", d)
		}
		rexp, err := time.Parse(time.RFC3339, p.RefreshExpiresAt)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(rexp); d < 29*24*time.Hour || d > 30*24*time.Hour+time.Minute {
			t.Fatalf("refresh token lifetime %v, want 30 days", d)
		}
	})
	t.Run("unknown email and wrong password answer alike", func(t *testing.T) {
		wrong := c.do(loginMutation, map[string]any{"email": "ada@example.com", "password": "wrong horse"})
		unknown := c.do(loginMutation, map[string]any{"email": "nobody@example.com", "password": "wrong horse"})
		e1, e2 := wrong.wantCode(t, "login", "UNAUTHENTICATED"), unknown.wantCode(t, "login", "UNAUTHENTICATED")
		if e1.Message != e2.Message || fmt.Sprint(e1.Extensions) != fmt.Sprint(e2.Extensions) {
			t.Fatalf("answers differ: %q %v vs %q %v", e1.Message, e1.Extensions, e2.Message, e2.Extensions)
		}
		if e1.Extensions["reason"] != "BAD_CREDENTIALS" {
			t.Fatalf("reason %v, want BAD_CREDENTIALS", e1.Extensions["reason"])
		}
		if wrong.Status != unknown.Status {
			t.Fatalf("status differs: %d vs %d", wrong.Status, unknown.Status)
		}
	})
	t.Run("pending account", func(t *testing.T) {
		r := c.do(loginMutation, map[string]any{"email": "pending@example.com", "password": "correct horse"})
		r.wantCode(t, "login", "ACCOUNT_PENDING")
		// A wrong password does not reveal that the account is pending.
		r = c.do(loginMutation, map[string]any{"email": "pending@example.com", "password": "wrong horse"})
		r.wantCode(t, "login", "UNAUTHENTICATED")
	})
	t.Run("disabled account", func(t *testing.T) {
		c.register("disabled@example.com", "correct horse")
		setStatus(t, app, "disabled@example.com", "DISABLED")
		r := c.do(loginMutation, map[string]any{"email": "disabled@example.com", "password": "correct horse"})
		r.wantCode(t, "login", "ACCOUNT_DISABLED")
	})
}

// setStatus changes an account's status in the database, as an admin's
// updateUser would (that mutation has its own tests).
func setStatus(t *testing.T, app *testApp, email, status string) {
	t.Helper()
	if err := app.DB.Exec("UPDATE users SET status = ? WHERE email = ?", status, email).Error; err != nil {
		t.Fatal(err)
	}
}

func TestMe(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, u := app.adminClient(t)
	var me userJSON
	admin.must(`{ me { id email isAdmin status } }`, nil, "me", &me)
	if me.ID != u.ID || me.Email != u.Email || !me.IsAdmin {
		t.Fatalf("me: %+v, want %+v", me, u)
	}
	// Without a token: UNAUTHENTICATED, and a public sibling still answers.
	r := app.client(t).do(`{ me { id } cloudProviders { backendType } }`, nil)
	r.wantCode(t, "me", "UNAUTHENTICATED")
	var providers []map[string]any
	r.decode(t, "cloudProviders", &providers)
	if len(providers) != 9 {
		t.Fatalf("cloudProviders beside a failing field: %s", r)
	}
}

func TestAccessLostAtOnce(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, _ := app.adminClient(t)
	for _, tc := range []struct{ name, change, code string }{
		{"disabled", "UPDATE users SET status = 'DISABLED' WHERE email = ?", "ACCOUNT_DISABLED"},
		{"returned to pending", "UPDATE users SET status = 'PENDING' WHERE email = ?", "ACCOUNT_PENDING"},
		{"deleted", "DELETE FROM users WHERE email = ?", "UNAUTHENTICATED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			email := strings.ReplaceAll(tc.name, " ", "-") + "@example.com"
			c := app.client(t)
			c.register(email, "correct horse")
			setStatus(t, app, email, "APPROVED")
			u := c.withToken(c.login(email, "correct horse").AccessToken)
			u.must(`{ me { id } }`, nil, "me", new(userJSON))
			if err := app.DB.Exec(tc.change, email).Error; err != nil {
				t.Fatal(err)
			}
			u.do(`{ me { id } }`, nil).wantCode(t, "me", tc.code)
		})
	}
	// Demotion: an admin field is refused on the next request.
	c := app.client(t)
	c.register("demoted@example.com", "correct horse")
	if err := app.DB.Exec("UPDATE users SET status = 'APPROVED', is_admin = true WHERE email = 'demoted@example.com'").Error; err != nil {
		t.Fatal(err)
	}
	d := c.withToken(c.login("demoted@example.com", "correct horse").AccessToken)
	d.must(`{ pendingUserCount }`, nil, "pendingUserCount", new(*int))
	if err := app.DB.Exec("UPDATE users SET is_admin = false WHERE email = 'demoted@example.com'").Error; err != nil {
		t.Fatal(err)
	}
	d.do(`{ pendingUserCount }`, nil).wantCode(t, "pendingUserCount", "FORBIDDEN")
	_ = admin
}

func TestAdminFieldForbiddenBesideUserField(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, _ := app.adminClient(t)
	c := app.client(t)
	c.register("user@example.com", "correct horse")
	setStatus(t, app, "user@example.com", "APPROVED")
	u := c.withToken(c.login("user@example.com", "correct horse").AccessToken)
	r := u.do(`{ me { email } pendingUserCount }`, nil)
	e := r.wantCode(t, "pendingUserCount", "FORBIDDEN")
	if e.Message == "" {
		t.Fatal("FORBIDDEN without a message")
	}
	var me userJSON
	r.decode(t, "me", &me)
	if me.Email != "user@example.com" {
		t.Fatalf("sibling of a forbidden field: %s", r)
	}
	_ = admin
}

func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	weak := startApp(t, cfg)
	weak.client(t).register("ada@example.com", "correct horse")
	before := passwordHash(t, weak, "ada@example.com")
	weak.Close()

	strong := testConfig(t)
	strong.DataDir = cfg.DataDir
	strong.Argon2.MemoryKiB *= 2
	strong.Argon2.Iterations++
	app := startApp(t, strong)
	app.client(t).login("ada@example.com", "correct horse")
	after := passwordHash(t, app, "ada@example.com")
	if after == before {
		t.Fatal("the hash was not upgraded")
	}
	p, _, _, err := argon2id.DecodeHash(after)
	if err != nil {
		t.Fatal(err)
	}
	if p.Memory != strong.Argon2.MemoryKiB || p.Iterations != strong.Argon2.Iterations {
		t.Fatalf("re-hashed with m=%d t=%d, want m=%d t=%d", p.Memory, p.Iterations, strong.Argon2.MemoryKiB, strong.Argon2.Iterations)
	}
	// The new hash works, and a login with it does not re-hash again.
	app.client(t).login("ada@example.com", "correct horse")
	if again := passwordHash(t, app, "ada@example.com"); again != after {
		t.Fatal("re-hashed a hash that was already strong enough")
	}
	if !strings.Contains(app.Logs(), "re-hashed") {
		t.Fatal("the re-hash was not logged")
	}
}

func passwordHash(t testing.TB, app *testApp, email string) string {
	t.Helper()
	var h string
	if err := app.DB.Raw("SELECT password_hash FROM users WHERE email = ?", email).Scan(&h).Error; err != nil {
		t.Fatal(err)
	}
	return h
}

// TestProductionArgon2Params signs up and in with the production
// parameters, and checks the stored hash says so.
func TestProductionArgon2Params(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Argon2 = auth.DefaultParams
	cfg.HashConcurrency = 2
	app := startApp(t, cfg)
	c := app.client(t)
	c.register("ada@example.com", "correct horse battery")
	c.login("ada@example.com", "correct horse battery")
	c.do(loginMutation, map[string]any{"email": "nobody@example.com", "password": "x"}).wantCode(t, "login", "UNAUTHENTICATED")
	h := passwordHash(t, app, "ada@example.com")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Fatalf("stored hash parameters: %s", h[:strings.LastIndex(h, "$")])
	}
}

// TestHashingSemaphoreRefusesInsteadOfQueueingForever: with one hashing
// slot and almost no wait, concurrent logins beyond the slot answer
// RATE_LIMITED (with retryAfter) and none fails with a 5xx.
func TestHashingSemaphoreRefusesInsteadOfQueueingForever(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Argon2 = auth.Params{MemoryKiB: 32 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	cfg.HashConcurrency = 1
	cfg.HashWait = time.Millisecond
	app := startApp(t, cfg)
	app.client(t).register("ada@example.com", "correct horse")
	const n = 8
	var wg sync.WaitGroup
	results := make([]*response, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = app.client(t).do(loginMutation, map[string]any{"email": "ada@example.com", "password": "correct horse"})
		}()
	}
	close(start)
	wg.Wait()
	var ok, limited int
	for _, r := range results {
		if r.Status >= 500 {
			t.Fatalf("5xx: %s", r)
		}
		switch {
		case len(r.Errors) == 0:
			ok++
		default:
			e := r.wantCode(t, "login", "RATE_LIMITED")
			if ra, _ := e.Extensions["retryAfter"].(float64); ra < 1 {
				t.Fatalf("RATE_LIMITED without retryAfter: %s", r)
			}
			limited++
		}
	}
	if ok == 0 || limited == 0 {
		t.Fatalf("want some logins served and some refused, got %d ok, %d refused", ok, limited)
	}
}

func TestInternalErrorsAreMasked(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, _ := app.adminClient(t)
	sqlDB, err := app.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.Close() // the database goes away under the server
	r := admin.do(`{ me { id } cloudProviders { backendType } }`, nil)
	e := r.wantCode(t, "me", "INTERNAL_SERVER_ERROR")
	if e.Message != "internal server error" {
		t.Fatalf("internal detail leaked: %q", e.Message)
	}
	if !r.isNull("me") || r.Data["cloudProviders"] == nil || r.isNull("cloudProviders") {
		t.Fatalf("a failing field must fail alone: %s", r)
	}
	id := r.Header.Get("X-Request-ID")
	logs := app.Logs()
	if id == "" || !strings.Contains(logs, "request_id="+id) || !strings.Contains(logs, "database is closed") {
		t.Fatalf("the detail and request ID are not in the log (X-Request-ID %q):\n%s", id, logs)
	}
	res, err := http.Get(app.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database gone: %d", res.StatusCode)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(app.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	c.register("ada@example.com", "s3cret-Passw0rd")
	p := c.login("ada@example.com", "s3cret-Passw0rd")
	c.do(loginMutation, map[string]any{"email": "ada@example.com", "password": "Wr0ng-s3cret"})
	c.withToken(p.AccessToken).do(`{ me { id } }`, nil)
	c.do(`mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }`, map[string]any{"t": p.RefreshToken})
	logs := app.Logs()
	for _, secret := range []string{"s3cret-Passw0rd", "Wr0ng-s3cret", p.AccessToken, p.RefreshToken, "$argon2id$"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a secret reached the log")
		}
	}
	_ = context.Background()
}

// An unknown email, a malformed one and a wrong password each cost exactly
// one Argon2id verify, so timing does not tell them apart.
func TestEveryFailedLoginPaysOneVerify(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	c.register("ada@example.com", "correct horse")
	for _, email := range []string{"ada@example.com", "nobody@example.com", "not-an-email"} {
		before := app.Auth.Hasher().Runs()
		c.do(loginMutation, map[string]any{"email": email, "password": "wrong horse"}).wantCode(t, "login", "UNAUTHENTICATED")
		if n := app.Auth.Hasher().Runs() - before; n != 1 {
			t.Fatalf("%s: %d hashes, want 1", email, n)
		}
	}
}
