package server_test

// The official SDKs as real clients: sdktest/relay.test.mjs drives the
// unmodified `openai` and `@anthropic-ai/sdk` npm packages (pinned by
// sdktest/package-lock.json) against this server's relay and a fake
// provider, and the usage they parsed is compared with what the relay
// recorded.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloudkeys/relay/fakeprovider"
)

// nodePackage is the Node package in dir (relative to the repository)
// with its node_modules installed from its lock file (npm ci, on first
// use). Without Node the test fails in CI and is skipped, saying why,
// elsewhere.
func nodePackage(t *testing.T, rel string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is required in CI for %s: install Node.js 20 or later", rel)
		}
		t.Skipf("node is not installed: %s needs Node.js 20 or later", rel)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		t.Logf("installing %s from its lock file (npm ci)", rel)
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", rel, err, out)
		}
	}
	return dir
}

func TestRelayOfficialSDKs(t *testing.T) {
	dir := nodePackage(t, "sdktest")
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	oKey, oSecret := e.c.createRelayKey(e.openAI.ID, map[string]any{"name": "node-openai"})
	aKey, aSecret := e.c.createRelayKey(e.anthropic.ID, map[string]any{"name": "node-anthropic"})
	result := filepath.Join(t.TempDir(), "usage.json")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "relay.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "CLOUDKEYS_RELAY_BASE="+e.app.URL+"/relay",
		"OPENAI_RELAY_KEY="+oSecret, "ANTHROPIC_RELAY_KEY="+aSecret,
		"EXPECT_TEXT="+fakeprovider.Text, "SDKTEST_RESULT_FILE="+result)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), oSecret) || strings.Contains(string(out), aSecret) {
		t.Fatal("a relay key reached the SDK test's output")
	}
	if err != nil {
		t.Fatalf("node --test relay.test.mjs: %v (context: %v)\n%s", err, ctx.Err(), out)
	}

	type io struct{ Input, Output int64 }
	var seen struct {
		OpenAI    map[string]io `json:"openai"`
		Anthropic map[string]io `json:"anthropic"`
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("the SDK test wrote no result: %v\n%s", err, out)
	}
	if err := json.Unmarshal(b, &seen); err != nil {
		t.Fatal(err)
	}
	check := func(name, keyID string, calls map[string]io, wantCalls int) {
		t.Helper()
		if len(calls) != wantCalls {
			t.Fatalf("%s: %d successful calls reported, want %d: %s", name, len(calls), wantCalls, b)
		}
		var want usageJSON
		for _, c := range calls {
			want.Requests++
			want.InputTokens += c.Input
			want.OutputTokens += c.Output
		}
		if got := e.keyUsage(t, keyID); !sameCounts(got, want) {
			t.Errorf("%s: the relay recorded %+v, the SDK saw %+v", name, got, want)
		}
	}
	// The wrong-key calls counted against nobody: only the successful ones are here.
	check("openai", oKey.ID, seen.OpenAI, 2)
	check("anthropic", aKey.ID, seen.Anthropic, 3)
	if seen.OpenAI["json"].Output != fakeprovider.OutputTokens || seen.Anthropic["stream"].Input != fakeprovider.AnthropicInput {
		t.Errorf("the SDKs parsed other usage than the provider sent: %s", b)
	}
	e.app.wantLogsWithout(t, oSecret, aSecret)
}

// cleanEnv is the environment without the variables the SDKs read on
// their own (OPENAI_*, ANTHROPIC_*), so nothing outside the test changes
// what they send.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENAI_") && !strings.HasPrefix(kv, "ANTHROPIC_") {
			env = append(env, kv)
		}
	}
	return env
}
