package server_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloudkeys/config"
	"cloudkeys/relay/fakeprovider"
)

const registerOneMutation = `mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { id status isAdmin } }`

func (c *client) tryRegister(email, password string) *response {
	c.t.Helper()
	return c.do(registerOneMutation, map[string]any{"e": email, "p": password})
}

// register is limited per client address, in the database; every attempt
// counts, valid or not, and other addresses are not affected.
func TestRegisterLimitedPerAddress(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.RegisterMaxPerAddr = 3
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		clock := useClock(cfg)
		app := startApp(t, cfg)
		app.adminClient(t)
		from := func(addr string) *client { return app.client(t).withHeader("X-Forwarded-For", addr) }

		from("203.0.113.5").tryRegister("a@example.com", "password-a").decode(t, "register", new(userJSON))
		from("203.0.113.5").tryRegister("b@example.com", "short").wantCode(t, "register", "BAD_USER_INPUT")
		from("203.0.113.5").tryRegister("c@example.com", "password-c").decode(t, "register", new(userJSON))
		e := from("203.0.113.5").tryRegister("d@example.com", "password-d").wantCode(t, "register", "RATE_LIMITED")
		if s, ok := e.Extensions["retryAfter"].(float64); !ok || s < 3500 || s > 3600 {
			t.Errorf("retryAfter %v, want about an hour", e.Extensions["retryAfter"])
		}
		if n := app.count(t, "SELECT COUNT(*) FROM users WHERE email = 'd@example.com'"); n != 0 {
			t.Fatal("a refused registration stored an account")
		}
		from("198.51.100.7").tryRegister("d@example.com", "password-d").decode(t, "register", new(userJSON))
		clock.Advance(time.Hour + time.Second)
		from("203.0.113.5").tryRegister("e@example.com", "password-e").decode(t, "register", new(userJSON))
	})
}

// A flood of aliased registrations from many addresses cannot starve
// sign-ins: register hashes in slots of its own.
func TestRegisterFloodDoesNotStarveLogins(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Argon2.MemoryKiB = 8 * 1024 // a hash that takes a few milliseconds
	cfg.HashConcurrency = 2         // one slot for sign-ins, one for registrations
	cfg.HashWait = 300 * time.Millisecond
	cfg.RegisterMaxPerAddr = 5
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	app := startApp(t, cfg)
	app.adminClient(t)
	const email = "genuine@example.com"
	app.signUp(t, app.admin, email)

	// The same genuine logins without a flood, as the baseline of their
	// latency in this run.
	genuine := func() (refused int, took []time.Duration) {
		for range 10 {
			start := time.Now()
			if r := app.client(t).tryLogin(email, "password-"+email); len(r.Errors) > 0 {
				refused++
				t.Errorf("a genuine login was refused: %v", r.Errors[0].Extensions)
			}
			took = append(took, time.Since(start))
		}
		return refused, took
	}
	_, quiet := genuine()

	var aliased strings.Builder
	aliased.WriteString("mutation {")
	for i := range 8 {
		fmt.Fprintf(&aliased, ` r%d: register(input: {email: "flood%d-%%d-%%d@example.com", password: "flood-password"}) { id }`, i, i)
	}
	aliased.WriteString(" }")
	var limited, busy, stored atomic.Int64
	stop := make(chan struct{})
	var flood sync.WaitGroup
	for addr := range 40 {
		flood.Go(func() {
			c := app.client(t).withHeader("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", addr+1))
			for round := 0; round < 3; round++ {
				select {
				case <-stop:
					return
				default:
				}
				r := c.do(fmt.Sprintf(aliased.String(), repeat(addr, round, 8)...), nil)
				for _, e := range r.Errors {
					switch e.Extensions["code"] {
					case "RATE_LIMITED":
						if strings.Contains(e.Message, "this address") {
							limited.Add(1)
						} else {
							busy.Add(1)
						}
					default:
						t.Errorf("a flood registration failed with %v: %s", e.Extensions["code"], e.Message)
					}
				}
				for _, raw := range r.Data {
					if string(raw) != "null" {
						stored.Add(1)
					}
				}
			}
		})
	}
	refused, during := genuine()
	close(stop)
	flood.Wait()
	t.Logf("flood: %d stored, %d refused per address, %d refused busy; genuine logins: %d of 10 succeeded, "+
		"slowest %v during the flood vs %v before it (%.1f×)", stored.Load(), limited.Load(), busy.Load(), 10-refused,
		slices.Max(during), slices.Max(quiet), float64(slices.Max(during))/float64(slices.Max(quiet)))
	if limited.Load() == 0 {
		t.Error("the per-address limit never answered")
	}
	if stored.Load() > 40*5 {
		t.Errorf("%d accounts registered from 40 addresses with a limit of 5 each", stored.Load())
	}
}

// repeat returns the (addr, round) pair n times, for the aliased emails.
func repeat(addr, round, n int) []any {
	out := make([]any, 0, 2*n)
	for range n {
		out = append(out, addr, round)
	}
	return out
}

func TestCreateUser(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	app := startApp(t, cfg)
	admin, adminUser := app.adminClient(t)

	// createUser: approved at once, approvedBy the admin, signs in.
	var u struct {
		ID         string `json:"id"`
		Status     string `json:"status"`
		IsAdmin    bool   `json:"isAdmin"`
		ApprovedBy *struct {
			ID string `json:"id"`
		} `json:"approvedBy"`
	}
	admin.must(`mutation { createUser(input: {email: "New@Example.com", password: "password-new"}) { id status isAdmin approvedBy { id } } }`,
		nil, "createUser", &u)
	if u.Status != "APPROVED" || u.IsAdmin || u.ApprovedBy == nil || u.ApprovedBy.ID != adminUser.ID {
		t.Fatalf("created user %+v", u)
	}
	user := app.client(t).login("new@example.com", "password-new")
	// Only admins.
	app.client(t).withToken(user.AccessToken).do(`mutation { createUser(input: {email: "x@example.com", password: "password-x"}) { id } }`, nil).
		wantCode(t, "createUser", "FORBIDDEN")
	admin.do(`mutation { createUser(input: {email: "new@example.com", password: "password-new"}) { id } }`, nil).
		wantCode(t, "createUser", "CONFLICT")
	admin.do(`mutation { createUser(input: {email: "y@example.com", password: "pass\u0000word"}) { id } }`, nil).
		wantCode(t, "createUser", "BAD_USER_INPUT")
	app.wantLogsWithout(t, "password-new")
}

func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Registration = "closed"
	capp := startApp(t, cfg)
	e := capp.client(t).tryRegister("first@example.com", "password-first").wantCode(t, "register", "FORBIDDEN")
	if !strings.Contains(e.Message, "closed") {
		t.Errorf("message %q", e.Message)
	}
	if n := capp.count(t, "SELECT COUNT(*) FROM users"); n != 0 {
		t.Fatal("a closed registration stored an account")
	}
}

// A NUL byte in a new password is refused on its field.
func TestPasswordWithNUL(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	e := app.client(t).tryRegister("nul@example.com", "pass\x00word-long").wantCode(t, "register", "BAD_USER_INPUT")
	if e.Extensions["field"] != "input.password" || !strings.Contains(e.Message, "NUL") {
		t.Errorf("extensions %v, message %q", e.Extensions, e.Message)
	}
}

// Credential and relay-key names refuse bidirectional overrides and
// invisible characters, as emails do.
func TestNamesRefuseInvisibleCharacters(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	for _, name := range []string{"prod\u202eyek", "pr\u200bod", "\u2066prod", "prod\ufeff"} {
		r := e.c.do(createMutation, map[string]any{"input": openAIInput(name, apiKey(t))})
		if err := r.wantCode(t, "createCloudCredential", "BAD_USER_INPUT"); err.Extensions["field"] != "input.name" {
			t.Errorf("credential name %+q: %v", name, err.Extensions)
		}
		r = e.c.do(`mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret } }`,
			map[string]any{"in": map[string]any{"credentialId": e.openAI.ID, "name": name}})
		if err := r.wantCode(t, "createRelayKey", "BAD_USER_INPUT"); err.Extensions["field"] != "input.name" {
			t.Errorf("relay key name %+q: %v", name, err.Extensions)
		}
	}
}
