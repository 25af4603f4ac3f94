package server_test

// The browser check: the real app behind httptest on 127.0.0.1, Debian's
// Chromium headless, the playground page at /, and a query run from it.
// .ci/install-chromium installs Chromium in CI; elsewhere the test skips
// with a message when there is none, and fails when CI=true.

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// chromiumPath finds Debian's Chromium: CLOUDKEYS_TEST_CHROMIUM, or
// chromium on the PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CLOUDKEYS_TEST_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; CI must run the browser check (.ci/install-chromium installs it)")
		}
		t.Skip("chromium is not installed: the browser check is skipped (apt-get install -y chromium, or .ci/install-chromium)")
	}
	return p
}

// browser is headless Chromium with what it saw: every request the page made
// and every error it logged.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	problems []string
}

// startBrowser starts Debian's Chromium for one test, recording requests and
// errors from the first action on.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	chromium := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1200), // room for a whole error in the result pane
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(cancelBrowser)

	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *log.EventEntryAdded:
			if ev.Entry.Level == "error" {
				b.problems = append(b.problems, ev.Entry.Text)
			}
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, ev.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openPlayground opens the playground with query in its editor and waits
// for the editor and the run button.
//
// GraphiQL 5 starts with the query it stored last (localStorage key
// "graphiql:query"); it does not read one from the URL. Store it from
// another page of the same origin, before GraphiQL first runs.
func (b *browser) openPlayground(t *testing.T, app *testApp, query string) {
	t.Helper()
	err := chromedp.Do(b.ctx,
		chromedp.Navigate(app.URL+"/healthz"),
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem("graphiql:query", `+strconv.Quote(query)+`)`),
		chromedp.Navigate(app.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-query-editor .view-lines")),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-execute-button")),
	)
	if err != nil {
		t.Fatalf("loading the playground: %v", err)
	}
}

// run clicks GraphiQL's run button.
func (b *browser) run(t *testing.T) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(".graphiql-execute-button"))); err != nil {
		t.Fatalf("running the query: %v", err)
	}
}

// typeQuery replaces the operation editor's text as a user does: focus in
// the editor, Ctrl+A, Backspace, then the text (inserted at once, as an IME
// or a paste would, so Monaco's auto-closing brackets leave it alone), and
// waits until the editor shows exactly that.
func (b *browser) typeQuery(t *testing.T, query string) {
	t.Helper()
	err := chromedp.Do(b.ctx,
		chromedp.Focus(chromedp.CSS(".graphiql-query-editor textarea")), // Monaco's input
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		chromedp.KeyEvent(kb.Backspace),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: query})
			return err
		}),
	)
	if err != nil {
		t.Fatalf("typing into the editor: %v", err)
	}
	const editor = `(document.querySelector(".graphiql-query-editor .view-lines") || {}).innerText || ""`
	b.waitFor(t, "("+editor+`).replaceAll("\u00a0", " ").replaceAll("\n", " ").trim() === `+strconv.Quote(query), editor,
		"the editor to show the typed query")
}

// waitFor polls the page until the JavaScript condition holds; on timeout it
// fails, showing what show (a JavaScript string expression) evaluates to.
func (b *browser) waitFor(t *testing.T, cond, show, what string) {
	t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Minute)))
	if err != nil {
		shown, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](show))
		t.Fatalf("waiting for %s (%v); the page shows %q", what, err, shown)
	}
}

// Monaco renders spaces as no-break spaces.
const resultPane = `((document.querySelector(".graphiql-response") || {}).innerText || "").replaceAll("\u00a0", " ")`

// waitResult waits until the result pane contains want.
func (b *browser) waitResult(t *testing.T, want string) {
	t.Helper()
	b.waitFor(t, resultPane+".includes("+strconv.Quote(want)+")", resultPane, "the result pane to show "+want)
}

// wantNotInLocalStorage fails the test if the origin's localStorage holds
// any of the strings.
func (b *browser) wantNotInLocalStorage(t *testing.T, strs ...string) {
	t.Helper()
	stored, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify(localStorage)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strs {
		if strings.Contains(stored, s) {
			t.Errorf("localStorage holds %q: %.300s", s, stored)
		}
	}
}

// check fails the test if the page fetched anything outside the server or
// the browser reported a CSP violation.
func (b *browser) check(t *testing.T, app *testApp) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.requests {
		if !strings.HasPrefix(u, app.URL+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
			t.Errorf("the playground fetched %s, outside the server", u)
		}
	}
	for _, p := range b.problems {
		if strings.Contains(p, "Content Security Policy") || strings.Contains(p, "Content-Security-Policy") {
			t.Errorf("CSP violation: %s", p)
		}
	}
}

// TestPlaygroundInBrowser loads GraphiQL from the server in headless
// Chromium, runs { __typename } from the page, and waits for the answer in
// the result pane. On the way it checks that the page fetched nothing from
// outside the server and that the browser reported no CSP violation.
func TestPlaygroundInBrowser(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)
	app := startApp(t, nil)
	b.openPlayground(t, app, "{ __typename }")
	b.run(t)
	b.waitResult(t, `"__typename": "Query"`)
	b.check(t, app)
	if !strings.Contains(app.Logs(), "method=POST path=/graphql status=200") {
		t.Errorf("the server saw no successful POST /graphql:\n%s", app.Logs())
	}
}

// TestPlaygroundSignsIn drives the playground's sign-in as a developer
// would: register and log in from the editor, then { me } works without
// touching the Headers tab and the page says who is signed in; once the
// access token has expired (the server's clock moved past it) the
// playground refreshes by itself; "sign out" ends the session on the
// server, and { me } then answers UNAUTHENTICATED.
func TestPlaygroundSignsIn(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)
	cfg := testConfig(t)
	clock := useClock(cfg)
	app := startApp(t, cfg)

	const status = `((document.querySelector(".ck-session") || {}).innerText || "")`
	b.openPlayground(t, app, "{ __typename }")
	b.waitFor(t, status+`.includes("not signed in")`, status, "the page to say it is not signed in")

	b.typeQuery(t, `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { email } `+
		`login(email: "ada@example.com", password: "correct horse") { accessToken refreshToken expiresAt user { email } } }`)
	b.run(t)
	b.waitResult(t, `"accessToken":`)
	b.waitFor(t, status+`.includes("signed in as ada@example.com")`, status, `"signed in as ada@example.com"`)

	// The test never opened the Headers tab; the token is not in it, nor
	// anywhere in localStorage (GraphiQL's history keeps each run's headers
	// there; the playground strips them).
	b.typeQuery(t, `{ me { email } }`)
	b.run(t)
	b.waitResult(t, `"email": "ada@example.com"`)
	b.wantNotInLocalStorage(t, "eyJ", "Authorization", "Bearer")

	// The access token expires (15 minutes, and 30 s of allowed skew): the
	// next request answers TOKEN_EXPIRED, the playground refreshes with the
	// stored refresh token and sends the query again.
	clock.Advance(16 * time.Minute)
	b.typeQuery(t, `{ me { email isAdmin } }`)
	b.run(t)
	b.waitResult(t, `"isAdmin": true`)
	if n := app.count(t, "SELECT COUNT(*) FROM refresh_tokens WHERE uses > 0"); n != 1 {
		t.Errorf("%d refresh tokens were used, want the one the playground refreshed with", n)
	}
	b.waitFor(t, status+`.includes("signed in as ada@example.com")`, status, "still signed in after the refresh")

	// Sign out: the session ends on the server too.
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(".ck-session-signout"))); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, status+`.includes("not signed in")`, status, "the page to say it is signed out")
	if n := app.count(t, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL"); n != 0 {
		t.Errorf("%d sessions are still live after sign out", n)
	}
	b.typeQuery(t, `{ me { email isAdmin status } }`)
	b.run(t)
	b.waitResult(t, `"UNAUTHENTICATED"`)
	if stored, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify(sessionStorage)`)); strings.Contains(stored, "eyJ") {
		t.Errorf("a token is still in sessionStorage after sign out: %.200s", stored)
	}
	b.wantNotInLocalStorage(t, "eyJ", "Authorization", "Bearer")
	b.check(t, app)
}
