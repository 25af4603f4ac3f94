package server_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloudkeys/relay/fakeprovider"
)

// The README's five-minute tour, as written: its shell blocks, in bash,
// against a fresh server, with a fake provider on 127.0.0.1 in place of
// OpenAI. A newcomer following the README meets no step that fails.
func TestReadmeTour(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the README tour needs %s", tool)
			}
			t.Skipf("the README tour needs %s", tool)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := tourScript(t, string(readme))

	fake := fakeprovider.Start(t, fakeprovider.Options{})
	cfg := relayConfig(t)
	app := startApp(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "BASE="+app.URL, "PROVIDER="+fake.URL, "OPENAI_KEY="+apiKey(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		`"isAdmin":true`,              // register: the first account is an admin
		`"current":true`,              // me.sessions
		`"apiKeyHint":"sk-`,           // createCloudCredential / cloudCredentials
		`"ok":true`,                   // testCloudCredential reached the (fake) provider
		fakeprovider.Text,             // the relayed call's answer
		`"relayKeys":[{"name":"tour"`, // the relay key listed
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the tour's output lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, `{"errors":`) {
		t.Errorf("a step of the tour answered errors:\n%s", text)
	}
	if got := fake.Last(); got == nil || got.Path != "/v1/chat/completions" {
		t.Errorf("the relayed call did not reach the provider")
	}
}

// tourScript is the shell blocks of the README's "A five-minute tour".
func tourScript(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n## A five-minute tour\n")
	if !ok {
		t.Fatal("the README has no five-minute tour")
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	var script []string
	for {
		_, after, ok := strings.Cut(rest, "```sh\n")
		if !ok {
			break
		}
		block, tail, ok := strings.Cut(after, "```")
		if !ok {
			t.Fatal("an unclosed code block in the tour")
		}
		script, rest = append(script, block), tail
	}
	if len(script) < 4 {
		t.Fatalf("%d shell blocks in the tour, want at least 4", len(script))
	}
	return strings.Join(script, "\n")
}
