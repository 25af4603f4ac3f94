package server_test

// The per-owner cap on credentials (CLOUDKEYS_MAX_CREDENTIALS_PER_USER) and
// the complexity price of cloudCredentials that it bounds: one request can
// make the server open at most (complexity limit ÷ list price) × cap rows.

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	ckapp "cloudkeys/app"
	"cloudkeys/config"
)

func TestCredentialCap(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		const limit = 3
		cfg.MaxCredentialsPerUser = limit
		app := credApp(t, cfg)
		c, me := app.user(t, "ada@example.com")
		var ids []string
		for i := range limit {
			ids = append(ids, c.createCred(openAIInput(fmt.Sprint(i), apiKey(t))).ID)
		}
		over := func() {
			t.Helper()
			key := apiKey(t)
			e := c.do(createMutation, map[string]any{"input": openAIInput("one too many", key)}).
				wantCode(t, "createCloudCredential", "FORBIDDEN")
			if !strings.Contains(e.Message, fmt.Sprint(limit)) || !strings.Contains(e.Message, "delete one") {
				t.Fatalf("the refusal does not name the limit and the way out: %q", e.Message)
			}
			if n := app.countCreds(t, me.ID); n != limit {
				t.Fatalf("%d credentials stored, want %d", n, limit)
			}
		}
		over()
		// The cap is per owner.
		bob, _ := app.user(t, "bob@example.com")
		bob.createCred(openAIInput("0", apiKey(t)))
		// Changing a credential is not adding one.
		c.updateCred(ids[0], map[string]any{"name": "renamed", "apiKey": apiKey(t)})
		// Deleting one makes room for one.
		var ok bool
		c.must(deleteMutation, map[string]any{"id": ids[1]}, "deleteCloudCredential", &ok)
		c.createCred(openAIInput("one too many", apiKey(t)))
		c.do(createMutation, map[string]any{"input": openAIInput("and another", apiKey(t))}).
			wantCode(t, "createCloudCredential", "FORBIDDEN")
		if n := app.countCreds(t, me.ID); n != limit {
			t.Fatalf("%d credentials stored, want %d", n, limit)
		}
	})
}

// Concurrent creates by one owner never exceed the cap: the count and the
// insert are one transaction, serialised per owner (SQLite serialises
// writers; PostgreSQL takes an advisory lock).
func TestCredentialCapUnderConcurrency(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		const limit, attempts = 5, 40
		cfg.MaxCredentialsPerUser = limit
		app := credApp(t, cfg)
		c, me := app.user(t, "ada@example.com")
		var created, refused atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range attempts {
			wg.Go(func() {
				<-start
				r := c.do(createMutation, map[string]any{"input": openAIInput(fmt.Sprintf("c%02d", i), apiKey(t))})
				switch {
				case len(r.Errors) == 0:
					created.Add(1)
				case r.Errors[0].Extensions["code"] == "FORBIDDEN":
					refused.Add(1)
				default:
					t.Errorf("unexpected answer: %s", r)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := app.countCreds(t, me.ID); created.Load() != limit || refused.Load() != attempts-limit || n != limit {
			t.Fatalf("%d created, %d refused, %d stored; want %d, %d, %d", created.Load(), refused.Load(), n, limit, attempts-limit, limit)
		}
	})
}

// cloudCredentials costs the cap × its selection, so aliased lists are
// bounded by the complexity limit: with the defaults (cap 100, limit 2000)
// one full list with every field fits, and a request that would open more
// rows than the budget allows is refused whole, before anything runs.
func TestCredentialListComplexity(t *testing.T) {
	t.Parallel()
	app := credApp(t, nil)
	if app.Config.MaxCredentialsPerUser != 100 || app.Config.MaxComplexity != 2000 {
		t.Fatalf("defaults changed: cap %d, complexity %d", app.Config.MaxCredentialsPerUser, app.Config.MaxComplexity)
	}
	c, _ := app.user(t, "ada@example.com")

	// credFields (the list query the README shows) is every scalar and
	// enum field of CloudCredential, so the full list below is the most
	// expensive one without the relay's objects (priced on their own).
	var typ struct {
		Fields []struct {
			Name string `json:"name"`
			Type struct {
				Kind   string `json:"kind"`
				OfType *struct {
					Kind string `json:"kind"`
				} `json:"ofType"`
			} `json:"type"`
		} `json:"fields"`
	}
	c.must(`{ __type(name: "CloudCredential") { fields { name type { kind ofType { kind } } } } }`, nil, "__type", &typ)
	var all []string
	for _, f := range typ.Fields {
		kind := f.Type.Kind
		if kind == "NON_NULL" && f.Type.OfType != nil {
			kind = f.Type.OfType.Kind
		}
		if kind == "SCALAR" || kind == "ENUM" {
			all = append(all, f.Name)
		}
	}
	if fields := strings.Fields(credFields); !sameSet(fields, all) {
		t.Fatalf("credFields %v is not every scalar field of CloudCredential %v", fields, all)
	}

	// A full list of the cap, every field: 1 + 100 × 10 = 1001.
	for i := range app.Config.MaxCredentialsPerUser {
		c.createCred(openAIInput(fmt.Sprintf("credential %03d", i), apiKey(t)))
	}
	if list := c.listCreds(); len(list) != app.Config.MaxCredentialsPerUser {
		t.Fatalf("%d credentials listed", len(list))
	}
	// Two full lists (2002) are over the budget.
	wantLimit(t, app, q("{ a: cloudCredentials { "+credFields+" } b: cloudCredentials { "+credFields+" } }"),
		"COMPLEXITY_LIMIT_EXCEEDED")

	// Small selections: { id apiKeyHint } costs 201, so 9 lists (900 rows,
	// 1809) run and 10 (2010) do not.
	lists := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, " l%d: cloudCredentials { id apiKeyHint }", i)
		}
		return "{" + b.String() + " }"
	}
	r := c.do(lists(9), nil)
	if len(r.Errors) > 0 {
		t.Fatalf("nine small lists: %s", r)
	}
	var rows []credJSON
	r.decode(t, "l8", &rows)
	if len(rows) != app.Config.MaxCredentialsPerUser {
		t.Fatalf("%d rows in the ninth list", len(rows))
	}
	msg := wantLimit(t, app, q(lists(10)), "COMPLEXITY_LIMIT_EXCEEDED")
	if !strings.Contains(msg, "2010") || !strings.Contains(msg, "2000") {
		t.Fatalf("message %q", msg)
	}
	// The same with a token: refused whole, no field ran.
	r = c.do(lists(10), nil)
	if r.Data != nil || len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("ten lists with a token: %s", r)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// A cap of 0 would refuse every credential: the server does not start with
// one. A cap whose full list would not fit the complexity limit would
// refuse every full listing: the server says so when it starts.
func TestCredentialCapConfiguration(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxCredentialsPerUser = 0
	if app, err := ckapp.Open(context.Background(), cfg, ckapp.NewLogger(io.Discard, "text", "info")); err == nil {
		app.Close()
		t.Fatal("started with a cap of 0")
	} else if !strings.Contains(err.Error(), "CLOUDKEYS_MAX_CREDENTIALS_PER_USER must be at least 1") {
		t.Fatalf("cap 0: %v", err)
	}

	const warning = "a cloudCredentials list with every field costs more than the complexity limit"
	for _, tc := range []struct {
		cap, complexity int
		warns           bool
	}{
		{100, 2000, false},
		{199, 2000, false}, // 1 + 199 × 10 = 1991
		{200, 2000, true},  // 2001
		{500, 0, false},    // no complexity limit
	} {
		cfg := testConfig(t)
		cfg.MaxCredentialsPerUser, cfg.MaxComplexity = tc.cap, tc.complexity
		app := startApp(t, cfg)
		if warns := strings.Contains(app.Logs(), warning); warns != tc.warns {
			t.Fatalf("cap %d, complexity %d: warning %v, want %v:\n%s", tc.cap, tc.complexity, warns, tc.warns, app.Logs())
		}
	}
}
