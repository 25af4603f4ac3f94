package server_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/config"
)

// Brute-force resistance: failed sign-ins counted per email and per client
// address in the database, RATE_LIMITED with retryAfter past the limits,
// aliases bounded. Runs on SQLite and PostgreSQL with a test clock.

// tryLogin attempts a sign-in and returns the response.
func (c *client) tryLogin(email, password string) *response {
	c.t.Helper()
	return c.do(loginMutation, map[string]any{"email": email, "password": password})
}

// wantRateLimited asserts a RATE_LIMITED login and returns its retryAfter.
func wantRateLimited(t testing.TB, r *response) int {
	t.Helper()
	e := r.wantCode(t, "login", "RATE_LIMITED")
	s, ok := e.Extensions["retryAfter"].(float64)
	if !ok || s != float64(int(s)) || s < 1 {
		t.Fatalf("retryAfter must be whole seconds ≥ 1: %s", r)
	}
	return int(s)
}

// wantRetryAfter asserts retryAfter is want seconds, within a second.
func wantRetryAfter(t testing.TB, r *response, want time.Duration) {
	t.Helper()
	got := time.Duration(wantRateLimited(t, r)) * time.Second
	if d := got - want; d < -time.Second || d > time.Second {
		t.Fatalf("retryAfter %s, want %s", got, want)
	}
}

func TestLoginThrottlePerEmail(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr, cfg.LoginWindow = 5, 1000, 15*time.Minute
		app, clock, c, email := appWithUser(t, cfg)
		password := "password-" + email

		start := clock.Now()
		c.tryLogin(email, "wrong 1").wantCode(t, "login", "UNAUTHENTICATED")
		clock.Advance(time.Minute)
		for i := 2; i <= 5; i++ {
			// The email as typed differs; the counter is the normalised one's.
			c.tryLogin("  "+strings.ToUpper(email), fmt.Sprint("wrong ", i)).wantCode(t, "login", "UNAUTHENTICATED")
		}
		// Past the limit even the right password is refused, before any
		// hashing, and the refusal is not counted.
		hashes := app.Auth.Hasher().Runs()
		clock.Advance(40 * time.Second)
		wantRetryAfter(t, c.tryLogin(email, password), start.Add(cfg.LoginWindow).Sub(clock.Now()))
		clock.Advance(100 * time.Second)
		for range 3 {
			wantRetryAfter(t, c.tryLogin(email, "wrong again"), start.Add(cfg.LoginWindow).Sub(clock.Now()))
		}
		if n := app.Auth.Hasher().Runs(); n != hashes {
			t.Fatalf("refused attempts hashed %d passwords", n-hashes)
		}

		// The window slides: once the oldest failure leaves it, one more
		// attempt; the next four leave a minute later.
		clock.Advance(start.Add(cfg.LoginWindow + time.Second).Sub(clock.Now()))
		c.tryLogin(email, "wrong 6").wantCode(t, "login", "UNAUTHENTICATED")
		wantRetryAfter(t, c.tryLogin(email, password), start.Add(time.Minute+cfg.LoginWindow).Sub(clock.Now()))

		// Another email is not affected.
		app.signUp(t, app.admin, "other@example.com")
		c.login("other@example.com", "password-other@example.com")

		// After the window, the right password works.
		clock.Advance(cfg.LoginWindow)
		c.login(email, password)
		app.wantLogsWithout(t, password, "wrong 1", "wrong again")
		if !strings.Contains(app.Logs(), "too many failures") {
			t.Error("refused attempts are not logged")
		}
	})
}

func TestLoginThrottleCountsUnknownEmails(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 3, 1000
		_, clock, c, _ := appWithUser(t, cfg)
		for range 3 {
			r := c.tryLogin("nobody@example.com", "a password")
			if e := r.wantCode(t, "login", "UNAUTHENTICATED"); e.Message != "wrong email or password" {
				t.Fatalf("unknown email: %q", e.Message)
			}
		}
		wantRetryAfter(t, c.tryLogin("nobody@example.com", "a password"), cfg.LoginWindow)
		// Values no account can have count too, and do not break anything.
		for _, odd := range []string{strings.Repeat("x", 400) + "@example.com", "nul\x00@example.com", ""} {
			for range 3 {
				c.tryLogin(odd, "a password").wantCode(t, "login", "UNAUTHENTICATED")
			}
			wantRateLimited(t, c.tryLogin(odd, "a password"))
		}
		clock.Advance(cfg.LoginWindow)
		c.tryLogin("nobody@example.com", "a password").wantCode(t, "login", "UNAUTHENTICATED")
	})
}

func TestSuccessfulLoginClearsTheEmailCounter(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 5, 1000
		_, _, c, email := appWithUser(t, cfg)
		for range 4 {
			c.tryLogin(email, "wrong").wantCode(t, "login", "UNAUTHENTICATED")
		}
		c.login(email, "password-"+email)
		for range 5 {
			c.tryLogin(email, "wrong").wantCode(t, "login", "UNAUTHENTICATED")
		}
		wantRateLimited(t, c.tryLogin(email, "password-"+email))
	})
}

func TestLoginThrottlePerAddress(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 5, 3
		app, clock, c, email := appWithUser(t, cfg)
		start := clock.Now()
		// Spoofed X-Forwarded-For headers change nothing without a trusted
		// proxy: every attempt comes from httptest's peer, 127.0.0.1.
		for i := range 3 {
			c.withHeader("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)).
				tryLogin(fmt.Sprintf("victim%d@example.com", i), "guess").wantCode(t, "login", "UNAUTHENTICATED")
			clock.Advance(time.Second)
		}
		r := c.withHeader("X-Forwarded-For", "198.51.100.9").tryLogin(email, "password-"+email)
		wantRetryAfter(t, r, start.Add(cfg.LoginWindow).Sub(clock.Now()))
		// Successful sign-ins do not count against the address.
		if n := app.count(t, "SELECT COUNT(*) FROM login_failures WHERE scope = 'addr' AND key = '127.0.0.1'"); n != 3 {
			t.Fatalf("%d failures counted for 127.0.0.1, want 3", n)
		}
	})
}

func TestLoginThrottleBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 100, 2
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	app, _, c, email := appWithUser(t, cfg)
	from := func(xff string) *client { return c.withHeader("X-Forwarded-For", xff) }

	for range 2 {
		from("203.0.113.1").tryLogin(email, "wrong").wantCode(t, "login", "UNAUTHENTICATED")
	}
	wantRateLimited(t, from("203.0.113.1").tryLogin(email, "password-"+email))
	// The client is the first untrusted hop from the right: what it wrote
	// further left is its own claim, and ignored.
	wantRateLimited(t, from("192.0.2.77, 203.0.113.1, 10.1.2.3").tryLogin(email, "password-"+email))
	// Another client behind the proxy has its own counter.
	from("203.0.113.2").login(email, "password-"+email)
	from("192.0.2.77, 203.0.113.2").login(email, "password-"+email)
	if n := app.count(t, "SELECT COUNT(*) FROM login_failures WHERE scope = 'addr' AND key = '203.0.113.1'"); n != 2 {
		t.Fatalf("%d failures counted for the client behind the proxy, want 2", n)
	}
}

// loginAliases is one request holding n login fields.
func loginAliases(n int, email, password string) (string, map[string]any) {
	var q strings.Builder
	q.WriteString("mutation($e: String!, $p: String!) {\n")
	for i := range n {
		fmt.Fprintf(&q, "  a%d: login(email: $e, password: $p) { accessToken }\n", i)
	}
	q.WriteString("}")
	return q.String(), map[string]any{"e": email, "p": password}
}

func TestAliasedLoginsEachCount(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 5, 1000
		_, _, c, email := appWithUser(t, cfg)
		r := c.do(loginAliases(7, email, "wrong"))
		for i := range 7 {
			want := "UNAUTHENTICATED"
			if i >= 5 {
				want = "RATE_LIMITED"
			}
			r.wantCode(t, fmt.Sprint("a", i), want)
		}
		wantRateLimited(t, c.tryLogin(email, "password-"+email))
	})
}

func TestTenAliasedLoginsAreRefusedWhole(t *testing.T) {
	t.Parallel()
	app, _, c, email := appWithUser(t, testConfig(t))
	hashes := app.Auth.Hasher().Runs()
	r := c.do(loginAliases(10, email, "wrong"))
	if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("want one COMPLEXITY_LIMIT_EXCEEDED error, got %s", r)
	}
	for field, v := range r.Data {
		if string(v) != "null" {
			t.Fatalf("data.%s of a refused request: %s", field, r)
		}
	}
	if n := app.count(t, "SELECT COUNT(*) FROM login_failures"); n != 0 {
		t.Fatalf("a refused request counted %d failures", n)
	}
	if app.Auth.Hasher().Runs() != hashes {
		t.Fatal("a refused request hashed passwords")
	}
	// The same cost bounds the other hashing fields.
	var q strings.Builder
	q.WriteString("mutation {\n")
	for i := range 11 {
		fmt.Fprintf(&q, "  r%d: register(input: {email: \"r%d@example.com\", password: \"a long password\"}) { id }\n", i, i)
	}
	q.WriteString("}")
	r = c.do(q.String(), nil)
	if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("11 registers: %s", r)
	}
	// Nine fit.
	r = c.do(loginAliases(9, email, "password-"+email))
	if len(r.Errors) != 0 {
		t.Fatalf("9 aliased logins: %s", r)
	}
}

func TestChangePasswordIsThrottled(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 3, 1000
	_, _, c, email := appWithUser(t, cfg)
	me := c.withToken(c.login(email, "password-"+email).AccessToken)
	const change = `mutation($old: String!) { changePassword(currentPassword: $old, newPassword: "a new password") }`
	for range 3 {
		me.do(change, map[string]any{"old": "a guess"}).wantCode(t, "changePassword", "BAD_USER_INPUT")
	}
	e := me.do(change, map[string]any{"old": "password-" + email}).wantCode(t, "changePassword", "RATE_LIMITED")
	if e.Extensions["retryAfter"] == nil {
		t.Fatalf("no retryAfter: %+v", e)
	}
	// The guesses counted against signing in too.
	wantRateLimited(t, c.tryLogin(email, "password-"+email))
}

// Concurrent attempts on one email cannot slip under the limit together:
// each is counted when admitted, before its password is checked.
func TestConcurrentLoginsRespectTheLimit(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 5, 1000
		_, _, c, email := appWithUser(t, cfg)
		const n = 20
		codes, retry := make([]any, n), make([]float64, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := c.tryLogin(email, "wrong")
				if len(r.Errors) == 1 {
					codes[i] = r.Errors[0].Extensions["code"]
					retry[i], _ = r.Errors[0].Extensions["retryAfter"].(float64)
				}
			})
		}
		wg.Wait()
		count := map[any]int{}
		for i, code := range codes {
			count[code]++
			// Refused while the admitted five were being checked: retry in
			// a second; once they failed: when the window lets one go.
			if code == "RATE_LIMITED" && retry[i] != 1 && (retry[i] < 890 || retry[i] > 900) {
				t.Errorf("retryAfter %v", retry[i])
			}
		}
		if count["UNAUTHENTICATED"] != 5 || count["RATE_LIMITED"] != n-5 {
			t.Fatalf("%d concurrent wrong passwords: %v, want 5 UNAUTHENTICATED and the rest RATE_LIMITED", n, count)
		}
	})
}

func TestOldLoginFailuresArePruned(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app, clock, c, email := appWithUser(t, cfg)
		for i := range 3 {
			c.tryLogin(fmt.Sprintf("gone%d@example.com", i), "wrong").wantCode(t, "login", "UNAUTHENTICATED")
		}
		clock.Advance(cfg.LoginWindow / 2)
		c.tryLogin("recent@example.com", "wrong").wantCode(t, "login", "UNAUTHENTICATED")
		clock.Advance(cfg.LoginWindow/2 + 2*time.Minute)
		c.login(email, "password-"+email) // any attempt prunes, at most once a minute
		if n := app.count(t, "SELECT COUNT(*) FROM login_failures WHERE key LIKE 'gone%'"); n != 0 {
			t.Fatalf("%d failures older than the window remain", n)
		}
		if n := app.count(t, "SELECT COUNT(*) FROM login_failures WHERE key = 'recent@example.com'"); n != 1 {
			t.Fatalf("a failure within the window was pruned (%d left)", n)
		}
	})
}

// Attempts still being checked count against the limit, but they settle
// within seconds: a refusal they cause says to retry in a second, not
// after the whole window — unless one has been in flight for over a minute
// (its process died), which then counts as a failure.
func TestAttemptsInFlightAskForAShortRetry(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 3, 1000
		app, clock, c, email := appWithUser(t, cfg)
		inFlight := func(at time.Time) {
			if err := app.DB.Exec("INSERT INTO login_failures (scope, key, created_at, in_flight) VALUES ('email', ?, ?, TRUE)",
				email, at.UTC().Truncate(time.Microsecond)).Error; err != nil {
				t.Fatal(err)
			}
		}
		stale := clock.Now()
		inFlight(stale)
		clock.Advance(2 * time.Minute)
		inFlight(clock.Now())
		inFlight(clock.Now())
		wantRetryAfter(t, c.tryLogin(email, "password-"+email), time.Second)
		// Once the newer two are gone, the stale one counts as a failure.
		c.tryLogin(email, "wrong").wantCode(t, "login", "RATE_LIMITED")
		if err := app.DB.Exec("DELETE FROM login_failures WHERE created_at > ?", stale.UTC()).Error; err != nil {
			t.Fatal(err)
		}
		c.tryLogin(email, "wrong").wantCode(t, "login", "UNAUTHENTICATED")
		c.tryLogin(email, "wrong").wantCode(t, "login", "UNAUTHENTICATED")
		wantRetryAfter(t, c.tryLogin(email, "password-"+email), stale.Add(cfg.LoginWindow).Sub(clock.Now()))
	})
}

// Proxies that write hops with ports ("ip:port", "[v6]:port") still name
// the client, not the proxy.
func TestForwardedHopsWithPorts(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 100, 2
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	app, _, c, email := appWithUser(t, cfg)
	for range 2 {
		c.withHeader("X-Forwarded-For", "203.0.113.1:51234").tryLogin(email, "wrong").wantCode(t, "login", "UNAUTHENTICATED")
	}
	if n := app.count(t, "SELECT COUNT(*) FROM login_failures WHERE scope = 'addr' AND key = '127.0.0.1'"); n != 0 {
		t.Fatalf("%d failures counted against the proxy", n)
	}
	wantRateLimited(t, c.withHeader("X-Forwarded-For", "203.0.113.1:9").tryLogin(email, "password-"+email))
	c.withHeader("X-Forwarded-For", "[2001:db8::7]:443").login(email, "password-"+email)
}

// The per-address limit counts an IPv6 client by its /64: one host holds a
// whole /64 and could otherwise rotate through it.
func TestIPv6ClientsCountedPerPrefix(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 1000, 3
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	_, _, c, email := appWithUser(t, cfg)
	for i := range 3 {
		c.withHeader("X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1)).
			tryLogin(fmt.Sprintf("v%d@example.com", i), "wrong").wantCode(t, "login", "UNAUTHENTICATED")
	}
	wantRateLimited(t, c.withHeader("X-Forwarded-For", "2001:db8:1:2:ffff::1").tryLogin(email, "password-"+email))
	// Another /64 is another client; an IPv4 client counts by itself.
	c.withHeader("X-Forwarded-For", "2001:db8:1:3::1").login(email, "password-"+email)
	c.withHeader("X-Forwarded-For", "192.0.2.1").login(email, "password-"+email)
}
