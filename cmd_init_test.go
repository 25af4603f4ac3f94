package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cloudkeys/config"
	"cloudkeys/keyring"
)

// initVars runs `cloudkeys init --dir dir` and returns the variables it
// printed (the NAME=value lines of its output).
func initVars(t *testing.T, dir string) map[string]string {
	t.Helper()
	code, out, errOut := newEnv(t).runMain(t, "", "init", "--dir", dir)
	if code != 0 || errOut != "" {
		t.Fatalf("init: exit %d, stderr %q", code, errOut)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("init printed a line that is neither a comment nor NAME=value: %q\n%s", line, out)
		}
		vars[name] = value
	}
	return vars
}

func TestInitWritesProductionFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets") // created by init
	vars := initVars(t, dir)
	want := map[string]string{
		"CLOUDKEYS_ENV":                  "production",
		"CLOUDKEYS_JWT_SECRET_FILE":      filepath.Join(dir, "jwt-secret"),
		"CLOUDKEYS_ENCRYPTION_KEYS_FILE": filepath.Join(dir, "encryption-keys.json"),
		"CLOUDKEYS_AUDIT_KEY_FILE":       filepath.Join(dir, "audit-key"),
	}
	if len(vars) != len(want) {
		t.Fatalf("init printed %v, want %v", vars, want)
	}
	for k, v := range want {
		if vars[k] != v {
			t.Fatalf("%s=%q, want %q", k, vars[k], v)
		}
	}
	wantEntries(t, dir, "audit-key", "encryption-keys.json", "jwt-secret")
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	for _, f := range []string{"audit-key", "encryption-keys.json", "jwt-secret"} {
		if fi, _ := os.Stat(filepath.Join(dir, f)); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	k, err := keyring.LoadFile(vars["CLOUDKEYS_ENCRYPTION_KEYS_FILE"])
	if err != nil || len(k.KIDs()) != 1 {
		t.Fatalf("the key file: %v %v", k, err)
	}
	// The secrets are read as serve reads them, and differ.
	cfg, err := config.Load(nil, env(vars).get, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.JWTSecret) < config.MinJWTSecretLen || len(cfg.AuditKey) < config.MinAuditKeyLen || bytes.Equal(cfg.JWTSecret, cfg.AuditKey) {
		t.Fatalf("JWT secret %d bytes, audit key %d bytes", len(cfg.JWTSecret), len(cfg.AuditKey))
	}
	// A second init writes another set.
	other := initVars(t, t.TempDir())
	a, _ := os.ReadFile(vars["CLOUDKEYS_JWT_SECRET_FILE"])
	b, _ := os.ReadFile(other["CLOUDKEYS_JWT_SECRET_FILE"])
	if bytes.Equal(a, b) {
		t.Fatal("two inits wrote the same JWT secret")
	}
}

// init never overwrites: run again on the same directory, or on one where
// any of its files exists, it fails, names the file, and writes nothing.
func TestInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	initVars(t, dir)
	before := map[string][]byte{}
	for _, f := range []string{"audit-key", "encryption-keys.json", "jwt-secret"} {
		before[f], _ = os.ReadFile(filepath.Join(dir, f))
	}
	code, out, errOut := newEnv(t).runMain(t, "", "init", "--dir", dir)
	if code != 1 || out != "" || !strings.Contains(errOut, "refusing to overwrite") || !strings.Contains(errOut, filepath.Join(dir, "jwt-secret")) {
		t.Fatalf("second init: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for f, b := range before {
		if now, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(now, b) {
			t.Fatalf("%s changed", f)
		}
	}

	// One file present (a key file kept from before): nothing is written.
	dir = t.TempDir()
	keep := []byte(`{"keys":[]}`)
	if err := os.WriteFile(filepath.Join(dir, "encryption-keys.json"), keep, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = newEnv(t).runMain(t, "", "init", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "encryption-keys.json")) || strings.Contains(errOut, "jwt-secret") {
		t.Fatalf("init over a key file: exit %d, stderr %q", code, errOut)
	}
	wantEntries(t, dir, "encryption-keys.json")
	if now, _ := os.ReadFile(filepath.Join(dir, "encryption-keys.json")); !bytes.Equal(now, keep) {
		t.Fatal("the key file changed")
	}
}

// The first start of a production server, as the README tells it: init,
// serve with the files it wrote (ready), the first register is pending and
// not an admin, create-admin, then that admin signs in and approves.
func TestInitThenServeInProduction(t *testing.T) {
	vars := initVars(t, t.TempDir())
	for k, v := range testEnv(t.TempDir()) {
		vars[k] = v
	}
	e := env(vars)
	base, logs, _ := startRun(t, vars)

	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d", res.StatusCode)
	}
	if !strings.Contains(logs.String(), "env=production") {
		t.Fatalf("not in production:\n%s", logs)
	}

	out := post(t, base, "", `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { id isAdmin status } }`)
	ada, _ := out["data"].(map[string]any)["register"].(map[string]any)
	if ada == nil || ada["isAdmin"] != false || ada["status"] != "PENDING" {
		t.Fatalf("the first production register: %v", out)
	}
	if code := errorCode(post(t, base, "", `mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }`)); code != "ACCOUNT_PENDING" {
		t.Fatalf("login of the pending first account: %s", code)
	}

	code, stdout, stderr := e.runMain(t, "correct horse battery\n", "users", "create-admin", "--email", " Root@Example.com ")
	if code != 0 || !strings.Contains(stdout, "created root@example.com: an approved admin") {
		t.Fatalf("create-admin: exit %d\n%s%s", code, stdout, stderr)
	}
	out = post(t, base, "", `mutation { login(email: "root@example.com", password: "correct horse battery") { accessToken user { isAdmin status } } }`)
	login, _ := out["data"].(map[string]any)["login"].(map[string]any)
	if login == nil || login["user"].(map[string]any)["isAdmin"] != true || login["user"].(map[string]any)["status"] != "APPROVED" {
		t.Fatalf("login of the created admin: %v", out)
	}
	token := login["accessToken"].(string)
	out = post(t, base, token, `mutation { updateUser(id: "`+ada["id"].(string)+`", input: {status: APPROVED}) { status approvedBy { email } } }`)
	if u, _ := out["data"].(map[string]any)["updateUser"].(map[string]any); u == nil || u["status"] != "APPROVED" {
		t.Fatalf("the admin approves the first account: %v", out)
	}
	if out := post(t, base, "", `mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }`); out["errors"] != nil {
		t.Fatalf("login once approved: %v", out)
	}
}

// CLOUDKEYS_FIRST_USER_ADMIN=true restores, in production, the first
// register as an approved admin; and it can be turned off in development.
func TestFirstUserAdminSetting(t *testing.T) {
	for _, tc := range []struct {
		production bool
		setting    string
		admin      bool
	}{
		{true, "", false},
		{true, "true", true},
		{false, "", true},
		{false, "false", false},
	} {
		vars := testEnv(t.TempDir())
		if tc.production {
			for k, v := range initVars(t, t.TempDir()) {
				vars[k] = v
			}
		}
		if tc.setting != "" {
			vars["CLOUDKEYS_FIRST_USER_ADMIN"] = tc.setting
		}
		base, _, stop := startRun(t, vars)
		out := post(t, base, "", `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { isAdmin status } }`)
		u, _ := out["data"].(map[string]any)["register"].(map[string]any)
		wantStatus := map[bool]string{true: "APPROVED", false: "PENDING"}[tc.admin]
		if u == nil || u["isAdmin"] != tc.admin || u["status"] != wantStatus {
			t.Fatalf("production=%v CLOUDKEYS_FIRST_USER_ADMIN=%q: %v", tc.production, tc.setting, out)
		}
		// Later accounts are pending whatever the setting.
		out = post(t, base, "", `mutation { register(input: {email: "bob@example.com", password: "correct horse"}) { isAdmin status } }`)
		if u, _ := out["data"].(map[string]any)["register"].(map[string]any); u == nil || u["isAdmin"] != false || u["status"] != "PENDING" {
			t.Fatalf("second register: %v", out)
		}
		stop()
	}
}

// errorCode is the extensions.code of a GraphQL response's first error.
func errorCode(out map[string]any) string {
	errs, _ := out["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}
