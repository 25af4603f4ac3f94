package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ckapp "cloudkeys/app"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

// keysVars is an environment whose servers check their key file and the
// active key every 50 ms and beat every 100 ms, so that the tests of the
// key operations wait little.
func keysVars(dir, instance string) map[string]string {
	vars := testEnv(dir)
	vars["CLOUDKEYS_KEY_CHECK_INTERVAL"] = "50ms"
	vars["CLOUDKEYS_HEARTBEAT_INTERVAL"] = "100ms"
	vars["CLOUDKEYS_HEARTBEAT_LIVE"] = "3s"
	vars["CLOUDKEYS_INSTANCE_ID"] = instance
	return vars
}

// lastKID is the kid of the last key of the key file at path.
func lastKID(t *testing.T, path string) string {
	t.Helper()
	k, err := keyring.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kids := k.KIDs()
	return kids[len(kids)-1]
}

// keys add starts a key set in an empty file, and adds keys that decrypt
// without encrypting; activate records the encrypting one in the
// database, which every server then follows, whatever the file's order.
func TestKeysAddThenActivate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e := env{"CLOUDKEYS_DATA_DIR": dir, "CLOUDKEYS_ENCRYPTION_KEYS_FILE": file}
	out := e.mustRun(t, "keys", "add")
	k1 := lastKID(t, file)
	if !strings.Contains(out, "added key "+k1+" to "+file+" (1 keys)") {
		t.Fatalf("add on an empty file:\n%s", out)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", info.Mode().Perm())
	}
	app := e.open(t)
	keys := seed(t, app, "ada@example.com", 2)
	app.Close()

	out = e.mustRun(t, "keys", "add")
	k2 := lastKID(t, file)
	if k2 == k1 || !strings.Contains(out, "it decrypts but does not encrypt yet") || !strings.Contains(out, "cloudkeys keys activate "+k2) {
		t.Fatalf("add:\n%s", out)
	}
	status := e.mustRun(t, "keys", "status")
	rows := statusRows(status)
	if rows[k1] != "yes yes ok 2 0" || rows[k2] != "no yes new 0 0" || !strings.Contains(status, "active key: "+k1+" (recorded in the database") {
		t.Fatalf("status after add:\n%s", status)
	}

	// A server on the file with the new key still encrypts with the old one.
	app = e.open(t)
	if app.Keys().ActiveKID() != k1 {
		t.Fatalf("the server encrypts with %s after add", app.Keys().ActiveKID())
	}
	for id, key := range seed(t, app, "bob@example.com", 1) {
		keys[id] = key
		if kids(t, app)[id] != k1 {
			t.Fatal("a key added but not activated encrypted a new credential")
		}
	}
	app.Close()

	if _, _, err := e.run(t, "keys", "activate", "k-nope"); err == nil || !strings.Contains(err.Error(), `there is no key "k-nope"`) {
		t.Fatalf("activate of an unknown kid: %v", err)
	}
	out = e.mustRun(t, "keys", "activate", k2)
	if !strings.Contains(out, "key "+k2+" is now the active key (it was "+k1+")") || !strings.Contains(out, "keys rewrap") {
		t.Fatalf("activate:\n%s", out)
	}
	if out := e.mustRun(t, "keys", "activate", k2); !strings.Contains(out, "already the active key") {
		t.Fatalf("activate twice:\n%s", out)
	}
	app = e.open(t)
	defer app.Close()
	if app.Keys().ActiveKID() != k2 {
		t.Fatalf("after activate the server encrypts with %s", app.Keys().ActiveKID())
	}
	if out := e.mustRun(t, "keys", "rewrap", "--wait", "0s"); !strings.Contains(out, "rewrapped 3 API keys under the active key "+k2) {
		t.Fatalf("rewrap:\n%s", out)
	}
	mustOpenAll(t, app, keys)
	if out := e.mustRun(t, "keys", "retire", k1); !strings.Contains(out, "removed key "+k1) {
		t.Fatalf("retire:\n%s", out)
	}
	// The database, not the file, says which key is active: the file now
	// starts with k2, and retiring it is refused all the same.
	if _, _, err := e.run(t, "keys", "retire", k2); err == nil || !strings.Contains(err.Error(), "is the active key") {
		t.Fatalf("retire of the active key: %v", err)
	}
}

// rotate on an empty key file makes its first key, active at once.
func TestKeysRotateEmptySet(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	app.Close()
	file := filepath.Join(e["CLOUDKEYS_DATA_DIR"], "encryption-keys.json")
	// An SQLite database without rows, and a key file emptied to start over.
	if err := os.WriteFile(file, []byte(`{"keys": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun(t, "keys", "rotate", "--wait", "0s")
	k := lastKID(t, file)
	if !strings.Contains(out, "added key "+k) || !strings.Contains(out, "key "+k+" is now the active key") {
		t.Fatalf("rotate on an empty set:\n%s", out)
	}
}

// The same kid with other key bytes (bit rot, a bad hand edit): the
// server refuses to start naming the kid, status shows the mismatch, and
// the commands that would seal or activate with it refuse.
func TestKeysSameKidOtherBytes(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	seed(t, app, "ada@example.com", 1)
	kid := app.Keys().ActiveKID()
	app.Close()
	file := filepath.Join(e["CLOUDKEYS_DATA_DIR"], "encryption-keys.json")
	forgeKey(t, file, kid)

	cfg, err := config.Load(nil, e.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ckapp.Open(context.Background(), cfg, ckapp.NewLogger(io.Discard, "text", "info"))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the key under kid %q", kid)) || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("start with other bytes under a known kid: %v", err)
	}
	code, _, errOut := env(e).runMain(t, "", "serve", "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, kid) {
		t.Fatalf("serve: exit %d\n%s", code, errOut)
	}
	status := e.mustRun(t, "keys", "status")
	if rows := statusRows(status); rows[kid] != "yes yes MISMATCH 1 1" || !strings.Contains(status, "key-check value MISMATCH: the key under kid "+kid) {
		t.Fatalf("status:\n%s", status)
	}
	for _, args := range [][]string{{"rewrap"}, {"activate", kid}, {"rotate", "--wait", "0s"}} {
		if _, _, err := e.run(t, append([]string{"keys"}, args...)...); err == nil || !strings.Contains(err.Error(), kid) {
			t.Fatalf("keys %s with a mismatched key: %v", args[0], err)
		}
	}
	if k, _ := keyring.LoadFile(file); len(k.KIDs()) != 1 {
		t.Fatal("a refused rotate added a key")
	}
}

// forgeKey rewrites the key file at path with new key bytes under kid.
func forgeKey(t *testing.T, path, kid string) {
	t.Helper()
	set := fmt.Appendf(nil, `{"keys":[{"kty":"oct","kid":%q,"use":"enc","alg":"A256KW","k":"%s"}]}`,
		kid, strings.Repeat("A", 43))
	if err := os.WriteFile(path, set, 0o600); err != nil {
		t.Fatal(err)
	}
}

// activate and rotate refuse while a live server lacks the key, naming
// it; rotate leaves the key added but not active; --force goes ahead, and
// the server lacking the key keeps encrypting with one it holds.
func TestKeysActivateNamesServersLackingTheKey(t *testing.T) {
	dir := t.TempDir()
	served := filepath.Join(dir, "served.json")
	k, _ := keyring.New()
	if err := keyring.WriteFile(served, k); err != nil {
		t.Fatal(err)
	}
	vars := keysVars(dir, "server-x")
	vars["CLOUDKEYS_ENCRYPTION_KEYS_FILE"] = served
	base, logs, _ := startRun(t, vars)

	// The operator's copy of the file, which the server does not read.
	copyFile := filepath.Join(dir, "copy.json")
	if err := keyring.WriteFile(copyFile, k); err != nil {
		t.Fatal(err)
	}
	op := env{"CLOUDKEYS_DATA_DIR": dir, "CLOUDKEYS_ENCRYPTION_KEYS_FILE": copyFile}
	op.mustRun(t, "keys", "add")
	k2 := lastKID(t, copyFile)
	_, _, err := op.run(t, "keys", "activate", k2)
	if err == nil || !strings.Contains(err.Error(), "1 of 1 live servers do not hold key "+k2+": server-x (host") {
		t.Fatalf("activate with a server lacking the key: %v", err)
	}
	out, _, err := op.run(t, "keys", "rotate", "--wait", "300ms")
	k3 := lastKID(t, copyFile)
	if err == nil || !strings.Contains(err.Error(), "did not activate it") || !strings.Contains(err.Error(), "server-x") ||
		!strings.Contains(err.Error(), "cloudkeys keys activate "+k3) || !strings.Contains(out, "added key "+k3) {
		t.Fatalf("rotate with a server lacking the key: %v\n%s", err, out)
	}
	if status := op.mustRun(t, "keys", "status"); !strings.Contains(status, "active key: "+k.ActiveKID()) {
		t.Fatalf("a refused rotate activated its key:\n%s", status)
	}

	out = op.mustRun(t, "keys", "activate", k2, "--force")
	if !strings.Contains(out, "forced: 1 live servers do not hold it") || !strings.Contains(out, "server-x") {
		t.Fatalf("activate --force:\n%s", out)
	}
	waitFor(t, "the server to log that it lacks the active key", func() bool {
		return strings.Contains(logs.String(), "the database's active encryption key is not in this server's key set")
	})
	status := op.mustRun(t, "keys", "status")
	if !strings.Contains(status, "live servers without the active key "+k2+": server-x") {
		t.Fatalf("status:\n%s", status)
	}
	// It still serves, and seals with the key it holds.
	token := signUp(t, base, "ada@example.com")
	id := createCred(t, base, token, "a", "sk-lacking-0123456789abcdef")
	if kid := rowKID(t, op, copyFile, id); kid != k.ActiveKID() {
		t.Fatalf("the server lacking the active key sealed with %s", kid)
	}
	// rewrap refuses: rows under k2 would not open there.
	if _, _, err := op.run(t, "keys", "rewrap"); err == nil || !strings.Contains(err.Error(), "server-x") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("rewrap with a server lacking the active key: %v", err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rowKID reads a credential's key_id column.
func rowKID(t *testing.T, e env, keyFile, id string) string {
	t.Helper()
	k, err := keyring.LoadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Read(e.get)
	if err := cfg.Finish(false); err != nil {
		t.Fatal(err)
	}
	db, err := ckapp.OpenExistingDB(context.Background(), cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	var kid string
	if err := db.Raw("SELECT key_id FROM cloud_credentials WHERE id = ?", id).Row().Scan(&kid); err != nil {
		t.Fatal(err)
	}
	return kid
}
