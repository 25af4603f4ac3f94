package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	ckapp "cloudkeys/app"
	"cloudkeys/config"
	"cloudkeys/keyring"
)

// A key set that lacks a kid stored rows use (a wrong or truncated key
// file) stops the server at start-up, naming the kid, unless
// AllowMissingKeys; then those rows read NEEDS_REENTRY.
func TestStartRefusesMissingKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		first := credApp(t, cfg)
		c, _ := first.user(t, "ada@example.com")
		c.createCred(openAIInput("a", apiKey(t)))
		c.createCred(openAIInput("b", apiKey(t)))
		oldKID := first.Keys().ActiveKID()
		first.Close()

		// A different key file in place of the one that sealed the rows.
		fresh, err := keyring.New()
		if err != nil {
			t.Fatal(err)
		}
		if err := keyring.WriteFile(cfg.EncryptionKeysPath(), fresh); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		_, err = ckapp.Open(context.Background(), cfg, ckapp.NewLogger(&logs, "text", "debug"))
		if err == nil {
			t.Fatal("the server started with a key set missing the stored rows' kid")
		}
		if strings.Contains(logs.String(), keyMarker) || strings.Contains(err.Error(), keyMarker) {
			t.Fatal("a plaintext key reached the log of the refused start")
		}
		for _, want := range []string{fmt.Sprintf("%q (2 credentials)", oldKID), "--allow-missing-keys", cfg.EncryptionKeysPath()} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("the error %q does not say %q", err, want)
			}
		}

		cfg.AllowMissingKeys = true
		app := credApp(t, cfg)
		if !strings.Contains(app.Logs(), oldKID) || !strings.Contains(app.Logs(), "missing from the key set") {
			t.Fatalf("the start-up log does not name the missing kid")
		}
		c = app.client(t)
		c = c.withToken(c.login("ada@example.com", "password-ada@example.com").AccessToken)
		list := c.listCreds()
		if len(list) != 2 {
			t.Fatalf("listed %d credentials", len(list))
		}
		for _, cr := range list {
			wantReentry(t, cr, "no longer has")
		}
		// New credentials use the new key.
		cr := c.createCred(openAIInput("new", apiKey(t)))
		if row := app.rawRow(t, cr.ID); row.KeyID != fresh.ActiveKID() {
			t.Fatalf("new credential sealed with %s", row.KeyID)
		}
	})
}

func TestEncryptionKeySources(t *testing.T) {
	t.Parallel()
	t.Run("generated development file", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		app := credApp(t, cfg)
		info, err := os.Stat(cfg.EncryptionKeysPath())
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
		}
		onDisk, err := keyring.LoadFile(cfg.EncryptionKeysPath())
		if err != nil || onDisk.ActiveKID() != app.Keys().ActiveKID() {
			t.Fatalf("the app does not use the generated file: %v", err)
		}
		secret, _ := os.ReadFile(cfg.JWTSecretPath())
		set, _ := os.ReadFile(cfg.EncryptionKeysPath())
		if len(secret) == 0 || bytes.Contains(set, secret) {
			t.Fatal("the encryption keys are not independent of the JWT secret")
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Parallel()
		k, _ := keyring.New()
		set, _ := k.JSON()
		cfg := testConfig(t)
		cfg.EncryptionKeys = set
		app := credApp(t, cfg)
		if app.Keys().ActiveKID() != k.ActiveKID() {
			t.Fatal("the app does not use CLOUDKEYS_ENCRYPTION_KEYS")
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "encryption-keys.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("a key file was generated although keys were given")
		}
		c, _ := app.user(t, "ada@example.com")
		cr := c.createCred(openAIInput("a", apiKey(t)))
		if app.rawRow(t, cr.ID).KeyID != k.ActiveKID() {
			t.Fatal("sealed with another key")
		}
	})
	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		k, _ := keyring.New()
		set, _ := k.JSON()
		for name, change := range map[string]func(*config.Config){
			"both set":        func(c *config.Config) { c.EncryptionKeys, c.EncryptionKeysFile = set, "/tmp/x.json" },
			"missing file":    func(c *config.Config) { c.EncryptionKeysFile = filepath.Join(c.DataDir, "nope.json") },
			"invalid key set": func(c *config.Config) { c.EncryptionKeys = []byte(`{"keys":[]}`) },
			"not JSON":        func(c *config.Config) { c.EncryptionKeys = []byte(`nope`) },
		} {
			cfg := testConfig(t)
			change(cfg)
			if _, err := ckapp.Open(context.Background(), cfg, ckapp.NewLogger(io.Discard, "text", "info")); err == nil {
				t.Errorf("%s: the server started", name)
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "nope.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: a missing key file was created", name)
			}
		}
	})
}

// SPEC §7: 50 writers × 20 creates on SQLite → all 1,000 rows, no error.
func TestConcurrentCreatesSQLite(t *testing.T) {
	t.Parallel()
	app := credApp(t, nil)
	const users, writersPerUser, creates = 10, 5, 20
	tokens := make([]string, users)
	for i := range tokens {
		c, _ := app.user(t, fmt.Sprintf("writer%d@example.com", i))
		tokens[i] = c.token
	}
	var failures atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for w := range users * writersPerUser {
		wg.Go(func() {
			token := tokens[w%users]
			for i := range creates {
				body, _ := json.Marshal(map[string]any{"query": createMutation, "variables": map[string]any{
					"input": openAIInput(fmt.Sprintf("w%02d-%02d", w, i), apiKey(t))}})
				req, _ := http.NewRequest(http.MethodPost, app.URL+"/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("request: %v", err) })
					continue
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var r struct {
					Errors []json.RawMessage `json:"errors"`
				}
				if res.StatusCode != http.StatusOK || json.Unmarshal(raw, &r) != nil || len(r.Errors) > 0 {
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("status %d: %s", res.StatusCode, raw) })
				}
			}
		})
	}
	wg.Wait()
	var n int64
	if err := app.DB.Raw("SELECT COUNT(*) FROM cloud_credentials").Row().Scan(&n); err != nil {
		t.Fatal(err)
	}
	if failures.Load() != 0 || n != users*writersPerUser*creates {
		t.Fatalf("%d failures, %d rows stored, want 0 and %d", failures.Load(), n, users*writersPerUser*creates)
	}
}

// The same kid with other key bytes (bit rot, a bad hand edit, another
// deployment's file): the key-check value the database recorded at the
// first start differs, and the server refuses to start, naming the kid,
// rather than serving every credential as NEEDS_REENTRY and sealing new
// ones with a key the other servers lack.
func TestStartRefusesOtherBytesUnderAKnownKid(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		first := credApp(t, cfg)
		c, _ := first.user(t, "ada@example.com")
		c.createCred(openAIInput("a", apiKey(t)))
		kid := first.Keys().ActiveKID()
		first.Close()

		forged := fmt.Appendf(nil, `{"keys":[{"kty":"oct","kid":%q,"use":"enc","alg":"A256KW","k":"%s"}]}`, kid, strings.Repeat("Q", 42)+"A")
		if err := os.WriteFile(cfg.EncryptionKeysPath(), forged, 0o600); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		_, err := ckapp.Open(context.Background(), cfg, ckapp.NewLogger(&logs, "text", "debug"))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the key under kid %q is not the one the database recorded", kid)) {
			t.Fatalf("start with other bytes under %s: %v", kid, err)
		}
		if strings.Contains(err.Error(), strings.Repeat("Q", 42)) || strings.Contains(logs.String(), strings.Repeat("Q", 42)) {
			t.Fatal("key material in the refusal")
		}
		// --allow-missing-keys does not lift it: the key is not missing, it is wrong.
		cfg.AllowMissingKeys = true
		if _, err := ckapp.Open(context.Background(), cfg, ckapp.NewLogger(io.Discard, "text", "debug")); err == nil {
			t.Fatal("--allow-missing-keys started a server with a wrong key")
		}
	})
}
