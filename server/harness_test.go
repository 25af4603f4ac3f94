package server_test

// The harness every behaviour test uses: a whole cloudkeys (app.Open,
// the same wiring as `cloudkeys serve`) on a real SQLite file or a fresh
// PostgreSQL schema, served by httptest and spoken to over GraphQL/HTTP.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	ckapp "cloudkeys/app"
	"cloudkeys/auth"
	"cloudkeys/config"
	"cloudkeys/internal/pgtest"
)

// testParams are small Argon2id parameters so tests run fast; one test uses
// the production ones.
var testParams = auth.Params{MemoryKiB: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// testApp is one running cloudkeys.
type testApp struct {
	*ckapp.App
	URL  string
	logs *syncBuffer
	srv  *httptest.Server
	// admin is the client of the first account, once adminClient made it.
	admin *client
}

// testConfig is the configuration tests start from: development mode,
// SQLite in a temporary directory, small Argon2id parameters.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Argon2 = testParams
	cfg.HashConcurrency = 4
	cfg.LogLevel = "debug"
	// Tests register many accounts from 127.0.0.1; the per-address limit
	// has tests of its own.
	cfg.RegisterMaxPerAddr = 0
	return cfg
}

// postgresURL returns the PostgreSQL server tests use (pgtest.URL).
func postgresURL(t testing.TB) string { return pgtest.URL(t) }

// usePostgres points cfg at a fresh schema of the test PostgreSQL server,
// dropped when the test ends.
func usePostgres(t testing.TB, cfg *config.Config) { cfg.DatabaseURL = pgtest.Schema(t) }

// startApp starts cloudkeys with cfg (testConfig(t) when nil).
func startApp(t testing.TB, cfg *config.Config) *testApp {
	t.Helper()
	if cfg == nil {
		cfg = testConfig(t)
	}
	logs := &syncBuffer{}
	log := ckapp.NewLogger(logs, "text", cfg.LogLevel)
	app, err := ckapp.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("app.Open: %v", err)
	}
	srv := httptest.NewServer(app.Handler)
	ta := &testApp{App: app, URL: srv.URL, logs: logs, srv: srv}
	t.Cleanup(func() {
		srv.Close()
		app.Close()
	})
	return ta
}

// Logs returns everything the app logged so far.
func (a *testApp) Logs() string { return a.logs.String() }

// client returns a GraphQL client of the app without a token.
func (a *testApp) client(t testing.TB) *client {
	return &client{t: t, url: a.URL + "/graphql", header: http.Header{}}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// client speaks GraphQL over HTTP as a frontend does.
type client struct {
	t      testing.TB
	url    string
	token  string
	header http.Header
}

// withToken returns a copy of c that sends the access token.
func (c *client) withToken(token string) *client {
	cc := *c
	cc.token = token
	cc.header = c.header.Clone()
	return &cc
}

// gqlError is one entry of a response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// response is a decoded GraphQL response.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
}

// do POSTs a query with variables and decodes the answer; it fails the
// test only if the answer is not JSON.
func (c *client) do(query string, vars map[string]any) *response {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header = c.header.Clone()
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := &response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if err := json.Unmarshal(raw, r); err != nil {
		c.t.Fatalf("response is not JSON (status %d): %s", res.StatusCode, raw)
	}
	return r
}

// must runs a query that must succeed without errors and decodes field.
func (c *client) must(query string, vars map[string]any, field string, into any) {
	c.t.Helper()
	r := c.do(query, vars)
	if len(r.Errors) > 0 {
		c.t.Fatalf("unexpected errors: %s", r)
	}
	r.decode(c.t, field, into)
}

// decode unmarshals one top-level field of data.
func (r *response) decode(t testing.TB, field string, into any) {
	t.Helper()
	raw, ok := r.Data[field]
	if !ok {
		t.Fatalf("no data.%s in %s", field, r)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatalf("data.%s: %v in %s", field, err, r)
	}
}

// isNull reports whether data.field is null.
func (r *response) isNull(field string) bool {
	raw, ok := r.Data[field]
	return ok && string(raw) == "null"
}

// errorAt returns the error whose path starts with field, or nil.
func (r *response) errorAt(field string) *gqlError {
	for i := range r.Errors {
		if len(r.Errors[i].Path) > 0 && r.Errors[i].Path[0] == field {
			return &r.Errors[i]
		}
	}
	return nil
}

// wantCode asserts that field failed with the extensions.code, and is null.
func (r *response) wantCode(t testing.TB, field, code string) *gqlError {
	t.Helper()
	e := r.errorAt(field)
	if e == nil {
		t.Fatalf("want %s error at %s, got %s", code, field, r)
	}
	if got := e.Extensions["code"]; got != code {
		t.Fatalf("want code %s at %s, got %v: %s", code, field, got, r)
	}
	if !r.isNull(field) {
		t.Fatalf("want data.%s null with the error, got %s", field, r)
	}
	return e
}

// Account helpers.

type userJSON struct {
	ID         string  `json:"id"`
	Email      string  `json:"email"`
	IsAdmin    bool    `json:"isAdmin"`
	Status     string  `json:"status"`
	CreatedAt  string  `json:"createdAt"`
	ApprovedAt *string `json:"approvedAt"`
}

type payloadJSON struct {
	AccessToken      string   `json:"accessToken"`
	TokenType        string   `json:"tokenType"`
	ExpiresAt        string   `json:"expiresAt"`
	RefreshToken     string   `json:"refreshToken"`
	RefreshExpiresAt string   `json:"refreshExpiresAt"`
	User             userJSON `json:"user"`
}

const registerMutation = `mutation($email: String!, $password: String!) {
  register(input: {email: $email, password: $password}) { id email isAdmin status createdAt approvedAt }
}`

const loginMutation = `mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    accessToken tokenType expiresAt refreshToken refreshExpiresAt
    user { id email isAdmin status createdAt approvedAt }
  }
}`

func (c *client) register(email, password string) userJSON {
	c.t.Helper()
	var u userJSON
	c.must(registerMutation, map[string]any{"email": email, "password": password}, "register", &u)
	return u
}

func (c *client) login(email, password string) payloadJSON {
	c.t.Helper()
	var p payloadJSON
	c.must(loginMutation, map[string]any{"email": email, "password": password}, "login", &p)
	return p
}

// signUp registers an account, approves it through the admin (when given)
// and returns a client signed in as it.
func (a *testApp) signUp(t testing.TB, admin *client, email string) (*client, userJSON) {
	t.Helper()
	c := a.client(t)
	u := c.register(email, "password-"+email)
	if admin != nil && u.Status != "APPROVED" {
		admin.must(`mutation($id: ID!) { updateUser(id: $id, input: {status: APPROVED}) { id } }`,
			map[string]any{"id": u.ID}, "updateUser", new(map[string]any))
	}
	p := c.login(email, "password-"+email)
	return c.withToken(p.AccessToken), p.User
}

// adminClient registers the first account (an admin) and signs it in.
func (a *testApp) adminClient(t testing.TB) (*client, userJSON) {
	t.Helper()
	c, u := a.signUp(t, nil, fmt.Sprintf("admin-%d@example.com", time.Now().UnixNano()))
	a.admin = c
	return c, u
}

// testClock is a clock that tests move by hand, for windows and lifetimes
// (grace, expiry, throttling) without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

// useClock makes a clock the test moves the clock of cfg (tokens, sessions,
// login throttle), starting at the current time.
func useClock(cfg *config.Config) *testClock {
	c := &testClock{t: time.Now()}
	cfg.Now = c.Now
	return c
}

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// eachBackend runs test once on SQLite and once on PostgreSQL, as parallel
// subtests, each with its own fresh configuration and database.
func eachBackend(t *testing.T, test func(t *testing.T, cfg *config.Config)) {
	t.Helper()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			if backend == "postgres" {
				usePostgres(t, cfg)
			}
			test(t, cfg)
		})
	}
}

// withHeader returns a copy of c that sends the header too.
func (c *client) withHeader(name, value string) *client {
	cc := *c
	cc.header = c.header.Clone()
	cc.header.Set(name, value)
	return &cc
}

// count returns the result of a COUNT query run directly on the app's
// database, for what the API does not show (rows that must be gone).
func (a *testApp) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := a.DB.Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// wantLogsWithout asserts that none of the secrets (passwords, tokens,
// keys) appears in anything the app logged.
func (a *testApp) wantLogsWithout(t testing.TB, secrets ...string) {
	t.Helper()
	logs := a.Logs()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Fatalf("a secret reached the log: %.6s…", s)
		}
	}
}

// secretValue matches what a test's output must not show: JWTs and the
// values of token and secret fields.
var secretValue = regexp.MustCompile(`eyJ[\w-]*\.[\w-]*\.[\w-]*|"(accessToken|refreshToken|secret)":"[^"]*"`)

// String is the answer for a failure message, with its tokens and secrets
// redacted: a failing test must not print them.
func (r *response) String() string {
	return secretValue.ReplaceAllStringFunc(string(r.Raw), func(m string) string {
		if name, _, ok := strings.Cut(m, ":"); ok && strings.HasPrefix(m, `"`) {
			return name + `:"<redacted>"`
		}
		return "<redacted JWT>"
	})
}
