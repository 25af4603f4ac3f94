package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/schema"
)

// lockedBuffer collects a process's log output safely.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is the small-Argon2id environment run() tests use.
func testEnv(dir string) map[string]string {
	return map[string]string{
		"CLOUDKEYS_DATA_DIR":           dir,
		"CLOUDKEYS_ARGON2_MEMORY_KIB":  "1024",
		"CLOUDKEYS_ARGON2_PARALLELISM": "1",
	}
}

var listening = regexp.MustCompile(`msg="cloudkeys is listening" addr=(\S+)`)

// startRun runs `cloudkeys serve` in-process and waits until it listens.
func startRun(t *testing.T, vars map[string]string, args ...string) (base string, logs *lockedBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"cloudkeys", "serve", "--addr", "127.0.0.1:0"}, args...), env(vars).get, nil, io.Discard, logs)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited before listening: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(40 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return base, logs, stop
}

func post(t *testing.T, url, token, query string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServeZeroConfiguration is the README's first command: no
// configuration, a data directory with generated secrets (0600), the
// endpoints logged, register/login/me working, and a clean stop.
func TestServeZeroConfiguration(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	base, logs, stop := startRun(t, testEnv(dir))

	out := post(t, base, "", `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { isAdmin } }`)
	if out["errors"] != nil {
		t.Fatalf("register: %v", out)
	}
	out = post(t, base, "", `mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }`)
	token, _ := out["data"].(map[string]any)["login"].(map[string]any)["accessToken"].(string)
	out = post(t, base, token, `{ me { email isAdmin } }`)
	if me := out["data"].(map[string]any)["me"].(map[string]any); me["email"] != "ada@example.com" || me["isAdmin"] != true {
		t.Fatalf("me: %v", out)
	}

	for _, f := range []string{"jwt-secret", "cloudkeys.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s not created: %v", f, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "jwt-secret")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("jwt-secret mode %v, want 0600", fi.Mode().Perm())
	}
	for _, f := range []string{"cloudkeys.db", "cloudkeys.db-wal", "cloudkeys.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v, want 0700", fi.Mode().Perm())
	}
	l := logs.String()
	for _, want := range []string{"graphql=" + base + "/graphql", "playground=" + base + "/"} {
		if !strings.Contains(l, want) {
			t.Fatalf("the log does not say %q:\n%s", want, l)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", logs)
	}
	// The same data directory serves again with the same secret: the
	// token issued before the restart still works.
	base, _, _ = startRun(t, testEnv(dir))
	if out := post(t, base, token, `{ me { email } }`); out["errors"] != nil {
		t.Fatalf("token after restart: %v", out)
	}
}

// TestGracefulShutdown: a request in flight when the stop signal comes
// still gets its answer; the listener closes.
func TestGracefulShutdown(t *testing.T) {
	vars := testEnv(t.TempDir())
	// A slow request: a login with heavier Argon2id parameters.
	vars["CLOUDKEYS_ARGON2_MEMORY_KIB"] = "65536"
	vars["CLOUDKEYS_ARGON2_ITERATIONS"] = "4"
	vars["CLOUDKEYS_ARGON2_PARALLELISM"] = "1"
	base, _, stop := startRun(t, vars)
	post(t, base, "", `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { id } }`)

	answered := make(chan map[string]any, 1)
	go func() {
		answered <- post(t, base, "", `mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }`)
	}()
	time.Sleep(50 * time.Millisecond) // the login is now hashing
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	out := <-answered
	if out["errors"] != nil {
		t.Fatalf("in-flight login after stop: %v", out)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestProductionRefusesWithoutSecrets(t *testing.T) {
	cases := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"no JWT secret", map[string]string{}, "CLOUDKEYS_JWT_SECRET"},
		{"short JWT secret", map[string]string{"CLOUDKEYS_JWT_SECRET": "short"}, "too short"},
		{"no audit key", map[string]string{"CLOUDKEYS_JWT_SECRET": strings.Repeat("s", 32)}, "CLOUDKEYS_AUDIT_KEY"},
		{"no encryption keys", map[string]string{"CLOUDKEYS_JWT_SECRET": strings.Repeat("s", 32), "CLOUDKEYS_AUDIT_KEY": strings.Repeat("a", 32)}, "CLOUDKEYS_ENCRYPTION_KEYS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.vars["CLOUDKEYS_ENV"] = "production"
			tc.vars["CLOUDKEYS_DATA_DIR"] = t.TempDir()
			var stderr bytes.Buffer
			err := run(context.Background(), []string{"cloudkeys", "serve", "--addr", "127.0.0.1:0"}, env(tc.vars).get, nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %s, got %v", tc.want, err)
			}
			if strings.Count(strings.TrimSpace(err.Error()), "\n") != 0 {
				t.Fatalf("want one clear line, got %q", err)
			}
			if entries, _ := os.ReadDir(tc.vars["CLOUDKEYS_DATA_DIR"]); len(entries) != 0 {
				t.Fatalf("production generated files: %v", entries)
			}
		})
	}
}

func TestSchemaCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"cloudkeys", "schema"}, env(nil).get, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != schema.SDL() {
		t.Fatal("`cloudkeys schema` differs from the schema files")
	}
	sc := bufio.NewScanner(&out)
	found := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "directive @auth") {
			found = true
		}
	}
	if !found {
		t.Fatal("no @auth directive in the printed schema")
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"cloudkeys", "frobnicate"}, env(nil).get, nil, io.Discard, &stderr); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	if !strings.Contains(stderr.String(), "usage") {
		t.Fatalf("no usage on stderr: %q", stderr.String())
	}
}
