package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ckapp "cloudkeys/app"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

// env is a test environment for run: a data directory of its own.
type env map[string]string

func newEnv(t *testing.T) env { return env{"CLOUDKEYS_DATA_DIR": t.TempDir()} }

func (e env) get(k string) string { return e[k] }

// run runs the command line in-process and returns stdout, stderr and the
// error.
func (e env) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"cloudkeys"}, args...), e.get, nil, &out, &errOut)
	return out.String(), errOut.String(), err
}

func (e env) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(t, args...)
	if err != nil {
		t.Fatalf("cloudkeys %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// open starts the wiring `serve` uses on the environment (and so
// generates the development key file on first use).
func (e env) open(t *testing.T) *ckapp.App {
	t.Helper()
	cfg, err := config.Load(nil, e.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	app, err := ckapp.Open(context.Background(), cfg, ckapp.NewLogger(io.Discard, "text", "info"))
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// seed stores n credentials of one user and returns their IDs and keys.
func seed(t *testing.T, app *ckapp.App, email string, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	u, err := models.CreateUser(ctx, app.DB, email, "not-a-hash")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range n {
		key := fmt.Sprintf("sk-keys-test-%s-%03d-abcdefgh", email, i)
		c, err := models.CreateCredential(ctx, app.DB, u.ID, app.Config.MaxCredentialsPerUser, models.NewCredential{Name: fmt.Sprint(i), BackendType: models.BackendOpenAI, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		out[c.ID] = key
	}
	return out
}

// kids returns the key_id column of every row.
func kids(t *testing.T, app *ckapp.App) map[string]string {
	t.Helper()
	rows, err := app.DB.Raw("SELECT id, key_id FROM cloud_credentials").Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, kid string
		rows.Scan(&id, &kid)
		out[id] = kid
	}
	return out
}

// mustOpenAll checks that every credential opens to its key.
func mustOpenAll(t *testing.T, app *ckapp.App, keys map[string]string) {
	t.Helper()
	var creds []*models.CloudCredential
	if err := app.DB.Find(&creds).Error; err != nil {
		t.Fatal(err)
	}
	if len(creds) != len(keys) {
		t.Fatalf("%d credentials stored, want %d", len(creds), len(keys))
	}
	for _, c := range creds {
		if c.KeyStatus() != models.KeyOK || c.APIKey != keys[c.ID] {
			t.Fatalf("credential %s does not open to its key: %v", c.ID, c.KeyStatusMessage())
		}
	}
}

func TestKeysRotateRewrapRetire(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	keys := seed(t, app, "ada@example.com", 3)
	k1 := app.Keys().ActiveKID()
	app.Close()

	status := e.mustRun(t, "keys", "status")
	if !strings.Contains(status, k1) || !strings.Contains(status, "3 stored API keys, 0 cannot be opened") {
		t.Fatalf("status:\n%s", status)
	}

	out := e.mustRun(t, "keys", "rotate")
	set, err := keyring.LoadFile(e["CLOUDKEYS_DATA_DIR"] + "/encryption-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	// The new key is added after the old one, then activated in the
	// database (no server is running: none to wait for).
	k2 := set.KIDs()[len(set.KIDs())-1]
	if k2 == k1 || len(set.KIDs()) != 2 || set.FirstKID() != k1 || !strings.Contains(out, "added key "+k2) ||
		!strings.Contains(out, "key "+k2+" is now the active key (it was "+k1+")") {
		t.Fatalf("after rotate: %v\n%s", set, out)
	}
	if info, _ := os.Stat(e["CLOUDKEYS_DATA_DIR"] + "/encryption-keys.json"); info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", info.Mode().Perm())
	}

	// A server on the rotated file opens the old keys and seals new ones
	// with the new key.
	app = e.open(t)
	if app.Keys().ActiveKID() != k2 {
		t.Fatal("the server does not use the rotated file")
	}
	for id, kid := range kids(t, app) {
		if kid != k1 {
			t.Fatalf("row %s moved before rewrap", id)
		}
	}
	mustOpenAll(t, app, keys)
	for id, key := range seed(t, app, "bob@example.com", 2) {
		keys[id] = key
		if kids(t, app)[id] != k2 {
			t.Fatal("a new credential was not sealed with the new key")
		}
	}

	// The old key cannot be retired while rows use it; nor the active one.
	_, _, err = e.run(t, "keys", "retire", k1)
	if err == nil || !strings.Contains(err.Error(), "3 stored API keys still use key") {
		t.Fatalf("retire while in use: %v", err)
	}
	if _, _, err := e.run(t, "keys", "retire", k2); err == nil || !strings.Contains(err.Error(), "active key") {
		t.Fatalf("retire of the active key: %v", err)
	}
	if _, _, err := e.run(t, "keys", "retire", "k-nope"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("retire of an unknown key: %v", err)
	}
	if _, _, err := e.run(t, "keys", "retire"); err == nil {
		t.Fatal("retire without a kid succeeded")
	}

	// Rewrap, with the server still running on the same database.
	out = e.mustRun(t, "keys", "rewrap")
	if !strings.Contains(out, "rewrapped 3 API keys under the active key "+k2) {
		t.Fatalf("rewrap:\n%s", out)
	}
	for id, kid := range kids(t, app) {
		if kid != k2 {
			t.Fatalf("row %s still uses %s", id, kid)
		}
	}
	mustOpenAll(t, app, keys)
	if out := e.mustRun(t, "keys", "rewrap"); !strings.Contains(out, "rewrapped 0 API keys") {
		t.Fatalf("a second rewrap did something:\n%s", out)
	}

	out = e.mustRun(t, "keys", "retire", k1)
	if !strings.Contains(out, "removed key "+k1) {
		t.Fatalf("retire:\n%s", out)
	}
	set, _ = keyring.LoadFile(e["CLOUDKEYS_DATA_DIR"] + "/encryption-keys.json")
	if set.Has(k1) || !set.Has(k2) || len(set.KIDs()) != 1 {
		t.Fatalf("after retire: %v", set)
	}
	app.Close()
	app = e.open(t) // starts: no row uses a missing kid
	defer app.Close()
	mustOpenAll(t, app, keys)
	status = e.mustRun(t, "keys", "status")
	if strings.Contains(status, k1) || !strings.Contains(status, "5 stored API keys, 0 cannot be opened") {
		t.Fatalf("status:\n%s", status)
	}
}

func TestKeysStatusCountsUnreadable(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	keys := seed(t, app, "ada@example.com", 4)
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	// An imported legacy value, with no kid.
	app.DB.Exec("UPDATE cloud_credentials SET api_key_jwe = 'gAAAAABlegacy', key_id = '' WHERE id = ?", ids[0])
	app.DB.Exec("UPDATE cloud_credentials SET api_key_jwe = (SELECT api_key_jwe FROM cloud_credentials WHERE id = ?) WHERE id = ?", ids[2], ids[1])
	app.DB.Exec("UPDATE cloud_credentials SET key_id = 'k-gone' WHERE id = ?", ids[3])
	app.Close()

	status := e.mustRun(t, "keys", "status")
	for _, want := range []string{
		"4 stored API keys, 2 cannot be opened (bound to another record: 1, legacy Fernet token: 1)",
		"k-gone",
		"(none)",
	} {
		if !strings.Contains(status, want) {
			t.Fatalf("status does not say %q:\n%s", want, status)
		}
	}
	// Each kid's row: rows using it, and how many of those do not open.
	rows := statusRows(status)
	active := app.Keys().ActiveKID()
	for kid, want := range map[string]string{active: "yes yes ok 2 1", "(none)": "no no - 1 1", "k-gone": "no no - 1 0"} {
		if rows[kid] != want {
			t.Fatalf("status row of %s is %q, want %q:\n%s", kid, rows[kid], want, status)
		}
	}
	if strings.Contains(status, "sk-keys-test") {
		t.Fatal("status printed a key")
	}
	// The server refuses to start: a row names a kid the set lacks.
	cfg, _ := config.Load(nil, e.get, io.Discard)
	if _, err := ckapp.Open(context.Background(), cfg, ckapp.NewLogger(io.Discard, "text", "info")); err == nil || !strings.Contains(err.Error(), `"k-gone" (1 credentials)`) {
		t.Fatalf("start-up check: %v", err)
	}
	// The row whose kid column names a missing key is sealed with the
	// active key: status shows the disagreement, and rewrap repairs the
	// column (nothing to re-encrypt), leaves the unreadable legacy row
	// alone and says so.
	if want := fmt.Sprintf("1 rows whose key_id column disagrees with the kid of their JWE header (%s: key_id k-gone, JWE kid %s)", ids[3], active); !strings.Contains(status, want) {
		t.Fatalf("status does not say %q:\n%s", want, status)
	}
	out := e.mustRun(t, "keys", "rewrap")
	if !strings.Contains(out, "rewrapped 0 API keys") || !strings.Contains(out, "repaired 1 rows whose key_id column disagreed") ||
		!strings.Contains(out, "1 cannot be opened and were left as they are") {
		t.Fatalf("rewrap:\n%s", out)
	}
	if status := e.mustRun(t, "keys", "status"); strings.Contains(status, "k-gone") || strings.Contains(status, "disagrees") {
		t.Fatalf("after rewrap:\n%s", status)
	}
}

// statusRows returns the key table of keys status: kid → the other
// columns (ACTIVE, IN KEY SET, CHECK, API KEYS, CANNOT OPEN).
func statusRows(status string) map[string]string {
	rows := map[string]string{}
	table := false
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "KID":
			table = true
		case len(f) == 0:
			table = false
		case table && len(f) == 6:
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return rows
}

// With the keys in CLOUDKEYS_ENCRYPTION_KEYS there is no file to change:
// rotate prints the new set instead and explains.
func TestKeysRotateFromEnvironment(t *testing.T) {
	e := newEnv(t)
	k, _ := keyring.New()
	set, _ := k.JSON()
	e["CLOUDKEYS_ENCRYPTION_KEYS"] = string(set)
	out, errOut, err := e.run(t, "keys", "rotate")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := keyring.Parse([]byte(out))
	if err != nil {
		t.Fatalf("stdout is not the rotated key set: %v", err)
	}
	// The new key comes after the old one; a server cannot reload keys
	// from the environment, so activating is left to the operator.
	fresh := rotated.KIDs()[len(rotated.KIDs())-1]
	if len(rotated.KIDs()) != 2 || rotated.FirstKID() != k.ActiveKID() || fresh == k.ActiveKID() {
		t.Fatalf("rotated set: %v", rotated)
	}
	if !strings.Contains(errOut, "CLOUDKEYS_ENCRYPTION_KEYS") || !strings.Contains(errOut, "cloudkeys keys activate "+fresh) || !strings.Contains(errOut, "rewrap") {
		t.Fatalf("no explanation on stderr:\n%s", errOut)
	}
	if _, err := os.Stat(e["CLOUDKEYS_DATA_DIR"] + "/encryption-keys.json"); err == nil {
		t.Fatal("a key file was written")
	}
}

func TestKeysUsage(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.run(t, "keys"); err == nil {
		t.Fatal("keys without a command succeeded")
	}
	if _, _, err := e.run(t, "keys", "destroy"); err == nil {
		t.Fatal("an unknown keys command succeeded")
	}
	if out := e.mustRun(t, "keys", "help"); !strings.Contains(out, "retire KID") {
		t.Fatalf("help:\n%s", out)
	}
}

// The keys commands never create a key set or a database. Pointed at a
// data directory that has neither (a typo), each fails naming where it
// looked and how to point it elsewhere, and leaves nothing behind.
func TestKeysNeverCreate(t *testing.T) {
	for _, args := range [][]string{{"status"}, {"add"}, {"activate", "k-20260101-00000000"}, {"rotate"}, {"rewrap"}, {"retire", "k-20260101-00000000"}} {
		t.Run(args[0], func(t *testing.T) {
			parent := t.TempDir()
			empty, typo := filepath.Join(parent, "empty"), filepath.Join(parent, "typo")
			if err := os.Mkdir(empty, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{empty, typo} {
				_, _, err := env{"CLOUDKEYS_DATA_DIR": dir}.run(t, append([]string{"keys"}, args...)...)
				if err == nil {
					t.Fatalf("keys %s on %s succeeded", args[0], dir)
				}
				for _, want := range []string{filepath.Join(dir, "encryption-keys.json"), "--data-dir", "CLOUDKEYS_ENCRYPTION_KEYS_FILE"} {
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("keys %s: the error does not say %q: %v", args[0], want, err)
					}
				}
			}
			wantEntries(t, empty)
			if _, err := os.Stat(typo); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("keys %s created %s (%v)", args[0], typo, err)
			}
		})
	}

	// A key set but no database: the commands that read the database
	// refuse rather than create an empty one.
	k, err := keyring.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := keyring.WriteFile(filepath.Join(dir, "encryption-keys.json"), k); err != nil {
		t.Fatal(err)
	}
	set, _ := k.JSON()
	for _, e := range []env{
		{"CLOUDKEYS_DATA_DIR": dir},
		{"CLOUDKEYS_DATA_DIR": t.TempDir(), "CLOUDKEYS_ENCRYPTION_KEYS": string(set)},
	} {
		cmds := [][]string{{"status"}, {"activate", k.ActiveKID()}, {"rewrap"}, {"retire", k.ActiveKID()}}
		if e["CLOUDKEYS_ENCRYPTION_KEYS"] == "" {
			cmds = append(cmds, []string{"rotate"}) // and the key file is left as it is
		}
		for _, args := range cmds {
			_, _, err := e.run(t, append([]string{"keys"}, args...)...)
			db := filepath.Join(e["CLOUDKEYS_DATA_DIR"], "cloudkeys.db")
			if err == nil || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "--database-url") {
				t.Fatalf("keys %s without a database: %v", args[0], err)
			}
		}
	}
	wantEntries(t, dir, "encryption-keys.json")
	if after, err := keyring.LoadFile(filepath.Join(dir, "encryption-keys.json")); err != nil || !after.SameKeys(k) {
		t.Fatalf("a refused command changed the key file: %v", err)
	}
}

// wantEntries asserts that dir holds exactly the named entries.
func wantEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// In production the keys commands need the key set and the database, not
// the JWT secret: they never sign or verify a token.
func TestKeysInProductionWithoutJWTSecret(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	keys := seed(t, app, "ada@example.com", 2)
	app.Close()
	dir := e["CLOUDKEYS_DATA_DIR"]
	if err := os.Remove(filepath.Join(dir, "jwt-secret")); err != nil {
		t.Fatal(err)
	}
	prod := env{
		"CLOUDKEYS_ENV":                  "production",
		"CLOUDKEYS_DATA_DIR":             dir,
		"CLOUDKEYS_ENCRYPTION_KEYS_FILE": filepath.Join(dir, "encryption-keys.json"),
	}
	if out := prod.mustRun(t, "keys", "status"); !strings.Contains(out, "2 stored API keys, 0 cannot be opened") {
		t.Fatalf("status:\n%s", out)
	}
	// Changing keys is audited: in production, without the audit key, refused.
	if _, _, err := prod.run(t, "keys", "rotate"); err == nil || !strings.Contains(err.Error(), "CLOUDKEYS_AUDIT_KEY") {
		t.Fatalf("keys rotate in production without an audit key: %v", err)
	}
	prod["CLOUDKEYS_AUDIT_KEY_FILE"] = filepath.Join(dir, "audit-key")
	if out := prod.mustRun(t, "keys", "status"); !strings.Contains(out, "2 stored API keys, 0 cannot be opened") {
		t.Fatalf("status:\n%s", out)
	}
	prod.mustRun(t, "keys", "rotate")
	if out := prod.mustRun(t, "keys", "rewrap"); !strings.Contains(out, "rewrapped 2 API keys") {
		t.Fatalf("rewrap:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a keys command wrote a JWT secret (%v)", err)
	}
	// serve, by contrast, still refuses to start without one.
	if _, _, err := prod.run(t, "serve", "--addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "JWT secret") {
		t.Fatalf("serve in production without a JWT secret: %v", err)
	}
	app = e.open(t)
	defer app.Close()
	mustOpenAll(t, app, keys)
}
