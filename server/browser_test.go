package server_test

// The browser check: the real app behind httptest on 127.0.0.1, Debian's
// Chromium headless, the playground page at /, and a query run from it.
// .ci/install-chromium installs Chromium in CI; elsewhere the test skips
// with a message when there is none, and fails when CI=true.

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
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

// TestPlaygroundInBrowser loads GraphiQL from the server in headless
// Chromium, runs { __typename } from the page, and waits for the answer in
// the result pane. On the way it checks that the page fetched nothing from
// outside the server and that the browser reported no CSP violation.
func TestPlaygroundInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	app := startApp(t, nil)

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
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()

	// The first action starts the browser; from then on, record every
	// request the page makes and every error the browser logs.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	var mu sync.Mutex
	var requests, problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *log.EventEntryAdded:
			if ev.Entry.Level == "error" {
				problems = append(problems, ev.Entry.Text)
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, ev.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	// GraphiQL 5 starts with the query it stored last (localStorage key
	// "graphiql:query"); it does not read one from the URL. Store it from
	// another page of the same origin, before GraphiQL first runs.
	err = chromedp.Do(ctx,
		chromedp.Navigate(app.URL+"/healthz"),
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem("graphiql:query", "{ __typename }")`),
		chromedp.Navigate(app.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-query-editor .view-lines")),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-execute-button")),
		chromedp.Click(chromedp.CSS(".graphiql-execute-button")),
	)
	if err != nil {
		t.Fatalf("loading the playground: %v", err)
	}

	// Monaco renders spaces as no-break spaces.
	const pane = `(document.querySelector(".graphiql-response") || {}).innerText || ""`
	_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](
		"("+pane+")"+`.replaceAll("\u00a0", " ").includes('"__typename": "Query"')`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Minute)))
	if err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](pane))
		t.Fatalf("no result in the playground (%v); the result pane shows %q", err, shown)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, u := range requests {
		if !strings.HasPrefix(u, app.URL+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
			t.Errorf("the playground fetched %s, outside the server", u)
		}
	}
	for _, p := range problems {
		if strings.Contains(p, "Content Security Policy") || strings.Contains(p, "Content-Security-Policy") {
			t.Errorf("CSP violation: %s", p)
		}
	}
	if !strings.Contains(app.Logs(), "method=POST path=/graphql status=200") {
		t.Errorf("the server saw no successful POST /graphql:\n%s", app.Logs())
	}
}
