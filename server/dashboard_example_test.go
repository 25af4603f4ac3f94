package server_test

// examples/dashboard as a real client: its types are regenerated from this
// server's /schema.graphql and must equal the committed ones, it type-checks
// with tsc --strict, and its flow (src/flow.ts: Apollo Client with the
// refreshing auth link, the openai SDK through the relay) runs against the
// real app and a fake provider, with no mocks.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloudkeys/relay/fakeprovider"
)

// runNodeTool runs one of the example's tools (node_modules/.bin/name) in dir.
func runNodeTool(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "node_modules", ".bin", name), args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v (context: %v)\n%s", name, strings.Join(args, " "), err, ctx.Err(), out)
	}
	return string(out)
}

func TestDashboardExample(t *testing.T) {
	t.Parallel()
	dir := nodePackage(t, "examples/dashboard")
	providerKey := apiKey(t)
	fake := fakeprovider.Start(t, fakeprovider.Options{APIKey: providerKey})
	cfg := relayConfig(t)
	clock := useClock(cfg)
	cfg.RelayUsageFlush = 100 * time.Millisecond // the flow polls usage
	app := credApp(t, cfg)

	// The flow expires its access token by moving the server's clock: the
	// token is a real one, the server really refuses it as TOKEN_EXPIRED.
	clockURL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Advance string }
		decodeErr := json.NewDecoder(r.Body).Decode(&body)
		d, err := time.ParseDuration(body.Advance)
		if r.Method != http.MethodPost || decodeErr != nil || err != nil || d <= 0 || d > time.Hour {
			http.Error(w, `POST {"advance": "16m"}`, http.StatusBadRequest)
			return
		}
		clock.Advance(d)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(clockURL.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := append(cleanEnv(), "NO_COLOR=1")

	// 1. The committed types are what codegen makes from this server's schema.
	gen := t.TempDir()
	runNodeTool(t, ctx, dir, append(env, "CLOUDKEYS_SCHEMA="+app.URL+"/schema.graphql", "CODEGEN_OUT="+gen+"/"),
		"graphql-codegen", "--config", "codegen.ts")
	compareGenerated(t, filepath.Join(dir, "src", "gql"), gen)

	// 2. It type-checks.
	runNodeTool(t, ctx, dir, env, "tsc", "--strict", "--noEmit", "-p", "tsconfig.json")

	// 3. The flow, against the real server.
	result := filepath.Join(t.TempDir(), "flow.json")
	out := runNodeTool(t, ctx, dir, append(env,
		"CLOUDKEYS_SERVER="+app.URL,
		"PROVIDER_BASE_URL="+fake.URL,
		"PROVIDER_API_KEY="+providerKey,
		"EXPECT_TEXT="+fakeprovider.Text,
		"DASHBOARD_EMAIL=dashboard@example.com",
		"CLOUDKEYS_TEST_CLOCK_URL="+clockURL.URL,
		"FLOW_RESULT_FILE="+result,
	), "tsx", "src/flow.ts")
	if !strings.Contains(out, "flow: done") {
		t.Fatalf("the flow did not finish:\n%s", out)
	}
	if strings.Contains(out, providerKey) {
		t.Fatal("the provider key reached the flow's output")
	}
	t.Logf("flow:\n%s", out)

	var seen struct {
		OK           bool   `json:"ok"`
		WebLocks     bool   `json:"webLocks"`
		UserID       string `json:"userId"`
		CredentialID string `json:"credentialId"`
		RelayKeyID   string `json:"relayKeyId"`
		KeyUsage     struct {
			Requests     int64 `json:"requests"`
			InputTokens  int64 `json:"inputTokens"`
			OutputTokens int64 `json:"outputTokens"`
		} `json:"keyUsage"`
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &seen); err != nil || !seen.OK {
		t.Fatalf("flow result %s (%v)", b, err)
	}
	if seen.WebLocks {
		t.Error("Node reported navigator.locks: the in-process fallback went untested")
	}
	// What the server recorded agrees with what the flow saw.
	if seen.KeyUsage.Requests != 1 || seen.KeyUsage.InputTokens != fakeprovider.InputTokens || seen.KeyUsage.OutputTokens != fakeprovider.OutputTokens {
		t.Errorf("relay key usage %+v, want 1 request of the fake's %d/%d tokens", seen.KeyUsage, fakeprovider.InputTokens, fakeprovider.OutputTokens)
	}
	var withKey int
	for _, r := range fake.Requests() {
		if r.Header.Get("Authorization") == "Bearer "+providerKey {
			withKey++
		}
	}
	if withKey < 3 { // the test, the relayed chat call, the owner's models call
		t.Errorf("the fake provider saw the stored key %d times, want at least 3", withKey)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ? AND revoked_at IS NULL", seen.UserID); n != 0 {
		t.Errorf("%d sessions still live after the flow signed out", n)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", seen.UserID); n != 1 {
		t.Errorf("%d sessions, want the flow's one (refreshes stay in their session)", n)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM cloud_credentials WHERE id = ?", seen.CredentialID); n != 0 {
		t.Errorf("the flow's credential was not deleted")
	}
}

// compareGenerated fails unless dir want (committed) and dir got
// (regenerated) hold the same files, byte for byte.
func compareGenerated(t *testing.T, want, got string) {
	t.Helper()
	read := func(dir string) map[string][]byte {
		files := map[string][]byte{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = b
		}
		return files
	}
	w, g := read(want), read(got)
	stale := false
	for name, b := range g {
		if !bytes.Equal(w[name], b) {
			stale = true
			t.Errorf("examples/dashboard/src/gql/%s is stale or missing", name)
		}
	}
	for name := range w {
		if _, ok := g[name]; !ok {
			stale = true
			t.Errorf("examples/dashboard/src/gql/%s is no longer generated", name)
		}
	}
	if stale {
		t.Fatal("the committed generated types differ from the schema: run `npm run codegen` in examples/dashboard and commit src/gql/")
	}
}
