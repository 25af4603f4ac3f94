package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, vars map[string]string, args ...string) (*Config, error) {
	t.Helper()
	return Load(args, func(k string) string { return vars[k] }, io.Discard)
}

func TestHashSlotsFollowTheMemoryBudget(t *testing.T) {
	for _, tc := range []struct {
		budget int
		kib    uint32
		cpus   int
		want   int
	}{
		{256, 64 * 1024, 8, 4},   // the budget binds
		{256, 64 * 1024, 2, 2},   // the CPUs bind
		{32, 64 * 1024, 8, 1},    // a budget below one hash still allows one
		{1024, 1024, 4, 4},       // small test parameters: the CPUs bind
		{512, 128 * 1024, 16, 4}, // stronger parameters, fewer slots
	} {
		if got := HashSlots(tc.budget, tc.kib, tc.cpus); got != tc.want {
			t.Errorf("HashSlots(%d MiB, %d KiB, %d CPUs) = %d, want %d", tc.budget, tc.kib, tc.cpus, got, tc.want)
		}
	}
	c, err := load(t, map[string]string{"CLOUDKEYS_HASH_CONCURRENCY": "7"})
	if err != nil || c.HashConcurrency != 7 {
		t.Fatalf("explicit concurrency: %v %v", c.HashConcurrency, err)
	}
	c, err = load(t, map[string]string{"CLOUDKEYS_HASH_MEMORY_BUDGET_MIB": "64"})
	if err != nil || c.HashConcurrency != 1 {
		t.Fatalf("64 MiB budget with 64 MiB hashes: %v %v", c.HashConcurrency, err)
	}
}

func TestMalformedSettingsAreRefused(t *testing.T) {
	for name, v := range map[string]string{
		"CLOUDKEYS_ACCESS_TOKEN_TTL":    "fifteen minutes",
		"CLOUDKEYS_LOGIN_MAX_PER_EMAIL": "-1",
		"CLOUDKEYS_INTROSPECTION":       "maybe",
		"CLOUDKEYS_TRUSTED_PROXIES":     "10.0.0.0/33",
		"CLOUDKEYS_ENV":                 "staging",
		"CLOUDKEYS_ARGON2_PARALLELISM":  "300",
		"CLOUDKEYS_ARGON2_MEMORY_KIB":   "4294967296",
		"CLOUDKEYS_ARGON2_ITERATIONS":   "0",
	} {
		_, err := load(t, map[string]string{name: v})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: want an error naming it, got %v", name, v, err)
		}
	}
	if _, err := load(t, nil, "--addr"); err == nil {
		t.Error("a flag without its value was accepted")
	}
	if _, err := load(t, nil, "extra"); err == nil {
		t.Error("a stray argument was accepted")
	}
}

func TestProductionDefaults(t *testing.T) {
	vars := map[string]string{
		"CLOUDKEYS_ENV":             "production",
		"CLOUDKEYS_JWT_SECRET":      strings.Repeat("s", 32),
		"CLOUDKEYS_AUDIT_KEY":       strings.Repeat("a", 32),
		"CLOUDKEYS_ENCRYPTION_KEYS": `{"keys":[]}`,
	}
	c, err := load(t, vars)
	if err != nil {
		t.Fatal(err)
	}
	if c.Introspection || c.Playground {
		t.Fatal("production starts with introspection or the playground on")
	}
	vars["CLOUDKEYS_INTROSPECTION"], vars["CLOUDKEYS_PLAYGROUND"] = "true", "true"
	if c, _ = load(t, vars); !c.Introspection || !c.Playground {
		t.Fatal("production ignores explicit switches")
	}
	vars["CLOUDKEYS_JWT_SECRET_FILE"] = "/nonexistent"
	if _, err := load(t, vars); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("secret and secret file together: %v", err)
	}
}

func TestSettingsThatWouldQuietlyTurnThingsOff(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"login window 0":      {"CLOUDKEYS_LOGIN_WINDOW": "0s"},
		"access token TTL 0":  {"CLOUDKEYS_ACCESS_TOKEN_TTL": "0s"},
		"refresh token TTL 0": {"CLOUDKEYS_REFRESH_TOKEN_TTL": "0s"},
	} {
		if _, err := load(t, vars); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The throttle turned off explicitly, with a zero window, is fine.
	if _, err := load(t, map[string]string{"CLOUDKEYS_LOGIN_WINDOW": "0s",
		"CLOUDKEYS_LOGIN_MAX_PER_EMAIL": "0", "CLOUDKEYS_LOGIN_MAX_PER_ADDR": "0"}); err != nil {
		t.Errorf("throttle off: %v", err)
	}
}

// SPEC §10: the first register is an admin in development, not in
// production unless CLOUDKEYS_FIRST_USER_ADMIN=true.
func TestFirstUserAdminDefaults(t *testing.T) {
	prod := map[string]string{
		"CLOUDKEYS_ENV":             "production",
		"CLOUDKEYS_JWT_SECRET":      strings.Repeat("s", 32),
		"CLOUDKEYS_AUDIT_KEY":       strings.Repeat("a", 32),
		"CLOUDKEYS_ENCRYPTION_KEYS": `{"keys":[]}`,
	}
	for _, tc := range []struct {
		vars map[string]string
		set  string
		want bool
	}{
		{nil, "", true},
		{nil, "false", false},
		{prod, "", false},
		{prod, "true", true},
	} {
		vars := map[string]string{}
		for k, v := range tc.vars {
			vars[k] = v
		}
		if tc.set != "" {
			vars["CLOUDKEYS_FIRST_USER_ADMIN"] = tc.set
		}
		c, err := load(t, vars)
		if err != nil || c.FirstUserAdmin != tc.want {
			t.Errorf("%v: FirstUserAdmin %v (%v), want %v", vars, c.FirstUserAdmin, err, tc.want)
		}
	}
}

func TestAuditKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit-key")
	if err := os.WriteFile(file, []byte(strings.Repeat("a", 43)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, map[string]string{"CLOUDKEYS_AUDIT_KEY_FILE": file})
	if err != nil || string(c.AuditKey) != strings.Repeat("a", 43) || c.AuditKeySource != file {
		t.Fatalf("audit key from a file: %q %q %v", c.AuditKey, c.AuditKeySource, err)
	}
	for name, vars := range map[string]map[string]string{
		"too short": {"CLOUDKEYS_AUDIT_KEY": "short"},
		"both":      {"CLOUDKEYS_AUDIT_KEY": strings.Repeat("a", 32), "CLOUDKEYS_AUDIT_KEY_FILE": file},
		"missing":   {"CLOUDKEYS_AUDIT_KEY_FILE": filepath.Join(dir, "nope")},
	} {
		if _, err := load(t, vars); err == nil || !strings.Contains(err.Error(), "CLOUDKEYS_AUDIT_KEY") && !strings.Contains(err.Error(), "audit key") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The operator's commands read the configuration without the secrets:
// production needs neither a JWT secret nor keys there, and none is read.
func TestFinishWithoutSecrets(t *testing.T) {
	c := Read(func(k string) string {
		return map[string]string{"CLOUDKEYS_ENV": "production", "CLOUDKEYS_JWT_SECRET_FILE": "/nonexistent"}[k]
	})
	if err := c.Finish(false); err != nil {
		t.Fatal(err)
	}
	if c.JWTSecret != nil || c.HashConcurrency == 0 {
		t.Fatalf("%+v", c)
	}
	// A malformed variable is still refused.
	c = Read(func(k string) string { return map[string]string{"CLOUDKEYS_LOGIN_WINDOW": "soon"}[k] })
	if err := c.Finish(false); err == nil || !strings.Contains(err.Error(), "CLOUDKEYS_LOGIN_WINDOW") {
		t.Fatalf("malformed variable: %v", err)
	}
}

// The key check and heartbeat intervals: the defaults of SPEC §10, and
// nothing that would break its promises (a server notices a new key file
// or active key within 10 s; it stays live between two heartbeats).
func TestKeyIntervals(t *testing.T) {
	c, err := load(t, nil)
	if err != nil || c.KeyCheckInterval != 10*time.Second || c.HeartbeatInterval != 10*time.Second || c.HeartbeatLive != 30*time.Second || c.InstanceID != "" {
		t.Fatalf("defaults: %v %v %v %q %v", c.KeyCheckInterval, c.HeartbeatInterval, c.HeartbeatLive, c.InstanceID, err)
	}
	c, err = load(t, map[string]string{"CLOUDKEYS_KEY_CHECK_INTERVAL": "50ms", "CLOUDKEYS_HEARTBEAT_INTERVAL": "1s",
		"CLOUDKEYS_HEARTBEAT_LIVE": "3s", "CLOUDKEYS_INSTANCE_ID": "web-1"})
	if err != nil || c.KeyCheckInterval != 50*time.Millisecond || c.HeartbeatLive != 3*time.Second || c.InstanceID != "web-1" {
		t.Fatalf("set: %+v %v", c, err)
	}
	for _, vars := range []map[string]string{
		{"CLOUDKEYS_KEY_CHECK_INTERVAL": "11s"},
		{"CLOUDKEYS_KEY_CHECK_INTERVAL": "0s"},
		{"CLOUDKEYS_HEARTBEAT_INTERVAL": "20s"},
		{"CLOUDKEYS_HEARTBEAT_INTERVAL": "10s", "CLOUDKEYS_HEARTBEAT_LIVE": "10s"},
	} {
		if _, err := load(t, vars); err == nil {
			t.Errorf("%v accepted", vars)
		}
	}
}
