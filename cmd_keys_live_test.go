package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ckapp "cloudkeys/app"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

// gql posts a GraphQL query with variables and returns the decoded answer.
func gql(t testing.TB, base, token, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Errorf("answer (status %d) is not JSON: %v", res.StatusCode, err)
		return nil
	}
	return out
}

// field returns data.name of an answer that must have no errors.
func field(t testing.TB, out map[string]any, name string) any {
	t.Helper()
	if out == nil || out["errors"] != nil {
		t.Errorf("errors: %v", out)
		return nil
	}
	return out["data"].(map[string]any)[name]
}

// signUp registers the first account of a development server (an
// approved admin) and returns its access token.
func signUp(t testing.TB, base, email string) string {
	t.Helper()
	field(t, gql(t, base, "", `mutation($e: String!) { register(input: {email: $e, password: "correct horse"}) { id } }`, map[string]any{"e": email}), "register")
	login := field(t, gql(t, base, "", `mutation($e: String!) { login(email: $e, password: "correct horse") { accessToken } }`, map[string]any{"e": email}), "login")
	if login == nil {
		t.FailNow()
	}
	return login.(map[string]any)["accessToken"].(string)
}

// signIn signs an existing account in.
func signIn(t testing.TB, base, email string) string {
	t.Helper()
	login := field(t, gql(t, base, "", `mutation($e: String!) { login(email: $e, password: "correct horse") { accessToken } }`, map[string]any{"e": email}), "login")
	if login == nil {
		t.FailNow()
	}
	return login.(map[string]any)["accessToken"].(string)
}

// createCred stores an OpenAI credential and returns its ID ("" when it
// failed; the test is marked failed).
func createCred(t testing.TB, base, token, name, key string) string {
	t.Helper()
	c := field(t, gql(t, base, token, `mutation($n: String!, $k: String!) { createCloudCredential(input: {name: $n, backendType: OPENAI, apiKey: $k}) { id keyStatus } }`,
		map[string]any{"n": name, "k": key}), "createCloudCredential")
	if c == nil {
		return ""
	}
	return c.(map[string]any)["id"].(string)
}

// updateKey replaces a credential's key; it reports whether that worked.
func updateKey(t testing.TB, base, token, id, key string) bool {
	t.Helper()
	return field(t, gql(t, base, token, `mutation($id: ID!, $k: String!) { updateCloudCredential(id: $id, input: {apiKey: $k}) { id } }`,
		map[string]any{"id": id, "k": key}), "updateCloudCredential") != nil
}

// credStatuses lists the caller's credentials: ID → keyStatus and hint.
func credStatuses(t testing.TB, base, token string) map[string][2]string {
	t.Helper()
	list, _ := field(t, gql(t, base, token, `{ cloudCredentials { id keyStatus apiKeyHint } }`, nil), "cloudCredentials").([]any)
	out := map[string][2]string{}
	for _, c := range list {
		m := c.(map[string]any)
		out[m["id"].(string)] = [2]string{m["keyStatus"].(string), m["apiKeyHint"].(string)}
	}
	return out
}

// The rotation procedure with a server running on the same key file, as
// the README tells it: keys rotate, then keys rewrap, while the server
// serves and writes (creates and key changes in a bounded loop). The
// server loads the new key from the changed file, follows the active key
// the database records, and afterwards every credential reads OK on it
// without a restart, each with the last key written: no update was lost.
func TestRotationWithALiveServer(t *testing.T) {
	dir := t.TempDir()
	vars := keysVars(dir, "server-1")
	base, logs, _ := startRun(t, vars)
	op := env(vars)
	file := filepath.Join(dir, "encryption-keys.json")
	k1 := lastKID(t, file)
	token := signUp(t, base, "ada@example.com")

	// want is every credential's last key written with success.
	var mu sync.Mutex
	want := map[string]string{}
	for i := range 20 {
		key := fmt.Sprintf("sk-rotation-seed-%02d-abcdefgh", i)
		if id := createCred(t, base, token, fmt.Sprintf("seed-%02d", i), key); id != "" {
			want[id] = key
		}
	}
	ids := slices.Collect(maps.Keys(want))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%5 == 4 && i < 75 { // a create now and then (60 in all: the cap is 100)
					key := fmt.Sprintf("sk-rotation-new-%d-%04d-abcdefgh", w, i)
					if id := createCred(t, base, token, fmt.Sprintf("w%d-%04d", w, i), key); id != "" {
						mu.Lock()
						want[id] = key
						mu.Unlock()
						writes.Add(1)
					}
					continue
				}
				// Each writer changes the keys of its own share of the seeds.
				// (20 seeds: writer w has those whose index is w mod 4).
				id := ids[(i*4+w)%len(ids)]
				key := fmt.Sprintf("sk-rotation-upd-%d-%04d-abcdefgh", w, i)
				if updateKey(t, base, token, id, key) {
					mu.Lock()
					want[id] = key
					mu.Unlock()
					writes.Add(1)
				}
			}
		})
	}

	waitFor(t, "the writers to start", func() bool { return writes.Load() > 0 })
	before := writes.Load()
	out := op.mustRun(t, "keys", "rotate")
	k2 := lastKID(t, file)
	if k2 == k1 || !strings.Contains(out, "key "+k2+" is now the active key") {
		t.Fatalf("rotate:\n%s", out)
	}
	out = op.mustRun(t, "keys", "rewrap")
	if !strings.Contains(out, "under the active key "+k2) {
		t.Fatalf("rewrap:\n%s", out)
	}
	if writes.Load() == before {
		t.Fatal("no write ran during rotate and rewrap")
	}
	t.Logf("%d writes during rotate and rewrap; rewrap said:\n%s", writes.Load()-before, out)
	time.Sleep(200 * time.Millisecond) // a few more writes after the rewrap
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if writes.Load() < 20 {
		t.Fatalf("only %d writes ran during the rotation", writes.Load())
	}

	got := credStatuses(t, base, token)
	if len(got) != len(want) {
		t.Fatalf("%d credentials listed, %d stored", len(got), len(want))
	}
	for id, key := range want {
		if got[id][0] != "OK" || got[id][1] != key[:3]+"…"+key[len(key)-4:] {
			t.Fatalf("credential %s reads %v on the running server", id, got[id])
		}
	}
	// The plaintext of each is the last key written; every row is under
	// the new key (rewrap waited for the server to seal with it).
	k, err := keyring.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, _ = k.WithActive(k2)
	cfg := config.Read(op.get)
	cfg.Finish(false)
	db, err := ckapp.OpenExistingDB(context.Background(), cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	var creds []*models.CloudCredential
	if err := db.Find(&creds).Error; err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		if c.APIKey != want[c.ID] {
			t.Fatalf("credential %s holds %q, want the last key written %q", c.ID, c.APIKey, want[c.ID])
		}
		if c.KeyID != k2 {
			t.Fatalf("credential %s is still under %s after rewrap", c.ID, c.KeyID)
		}
	}
	for _, msg := range []string{"encryption key file reloaded", "added=[" + k2 + "]", "the active encryption key changed", "active=" + k2} {
		if !strings.Contains(logs.String(), msg) {
			t.Fatalf("the server log does not say %q:\n%s", msg, logs)
		}
	}
	if strings.Contains(logs.String(), "sk-rotation") {
		t.Fatal("a plaintext key reached the log")
	}
	// The old key is retired; the server drops it and still reads all.
	if out := op.mustRun(t, "keys", "retire", k1); !strings.Contains(out, "removed key "+k1) {
		t.Fatalf("retire:\n%s", out)
	}
	waitFor(t, "the server to drop the retired key", func() bool { return strings.Contains(logs.String(), "removed=["+k1+"]") })
	for id, st := range credStatuses(t, base, token) {
		if st[0] != "OK" {
			t.Fatalf("after retire, %s reads %v", id, st)
		}
	}
}

// Two servers on PostgreSQL with different key files: activate refuses
// and names the one lacking the key; once its file is given the key
// (a file change, no restart) activate succeeds, and both encrypt with it.
func TestActivateAcrossServersOnPostgres(t *testing.T) {
	pg := env{}
	postgresEnv(t, pg)
	k, _ := keyring.New()
	dirA, dirB := t.TempDir(), t.TempDir()
	fileA, fileB := filepath.Join(dirA, "keys.json"), filepath.Join(dirB, "keys.json")
	for _, f := range []string{fileA, fileB} {
		if err := keyring.WriteFile(f, k); err != nil {
			t.Fatal(err)
		}
	}
	start := func(dir, file, name string) (string, *lockedBuffer) {
		vars := keysVars(dir, name)
		vars["CLOUDKEYS_DATABASE_URL"] = pg["CLOUDKEYS_DATABASE_URL"]
		vars["CLOUDKEYS_ENCRYPTION_KEYS_FILE"] = file
		base, logs, _ := startRun(t, vars)
		return base, logs
	}
	baseA, _ := start(dirA, fileA, "server-a")
	baseB, logsB := start(dirB, fileB, "server-b")
	opA := env{"CLOUDKEYS_DATA_DIR": dirA, "CLOUDKEYS_DATABASE_URL": pg["CLOUDKEYS_DATABASE_URL"], "CLOUDKEYS_ENCRYPTION_KEYS_FILE": fileA}

	// The new key goes into A's file only; A loads it.
	opA.mustRun(t, "keys", "add")
	k2 := lastKID(t, fileA)
	waitFor(t, "server-a to hold the new key", func() bool {
		status := opA.mustRun(t, "keys", "status")
		for _, line := range strings.Split(status, "\n") {
			if strings.HasPrefix(line, "server-a ") && strings.Contains(line, k2) {
				return true
			}
		}
		return false
	})
	_, _, err := opA.run(t, "keys", "activate", k2)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 live servers do not hold key "+k2+": server-b (host") || strings.Contains(err.Error(), "server-a") {
		t.Fatalf("activate while server-b lacks the key: %v", err)
	}

	// Give B the key: its file changes, it reloads without a restart.
	added, _ := keyring.LoadFile(fileA)
	if err := keyring.WriteFile(fileB, added); err != nil {
		t.Fatal(err)
	}
	var out string
	waitFor(t, "activate to succeed once server-b holds the key", func() bool {
		var err error
		out, _, err = opA.run(t, "keys", "activate", k2)
		return err == nil
	})
	if !strings.Contains(out, "key "+k2+" is now the active key") || !strings.Contains(logsB.String(), "added=["+k2+"]") {
		t.Fatalf("activate:\n%s\nserver-b:\n%s", out, logsB)
	}
	// Both follow the database: what each stores is sealed with k2, and
	// each reads what the other stored.
	waitFor(t, "both servers to encrypt with the new key", func() bool {
		status := opA.mustRun(t, "keys", "status")
		return !strings.Contains(status, "not encrypting with the active key yet") && strings.Contains(status, "live servers: 2")
	})
	token := signUp(t, baseA, "ada@example.com")
	idA := createCred(t, baseA, token, "on-a", "sk-on-server-a-0123456789")
	tokenB := signIn(t, baseB, "ada@example.com")
	idB := createCred(t, baseB, tokenB, "on-b", "sk-on-server-b-0123456789")
	for _, id := range []string{idA, idB} {
		if kid := rowKID(t, opA, fileA, id); kid != k2 {
			t.Fatalf("credential %s sealed with %s, want %s", id, kid, k2)
		}
	}
	for _, c := range []struct{ base, token string }{{baseA, token}, {baseB, tokenB}} {
		if st := credStatuses(t, c.base, c.token); len(st) != 2 || st[idA][0] != "OK" || st[idB][0] != "OK" {
			t.Fatalf("credentials on %s: %v", c.base, st)
		}
	}
}

// A reload that fails keeps the keys held and logs why: a file that is
// not a key set, one with other bytes under a known kid, one without the
// active key. SIGHUP reloads at once (and says when nothing changed);
// keys from the environment need a restart, which SIGHUP says.
func TestFailedReloadKeepsTheKeys(t *testing.T) {
	dir := t.TempDir()
	vars := keysVars(dir, "server-r")
	vars["CLOUDKEYS_KEY_CHECK_INTERVAL"] = "10s" // reloads come from SIGHUP here
	base, logs, _ := startRun(t, vars)
	file := filepath.Join(dir, "encryption-keys.json")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k1 := lastKID(t, file)
	token := signUp(t, base, "ada@example.com")
	id := createCred(t, base, token, "a", "sk-reload-0123456789abcdef")
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	stillOK := func() {
		t.Helper()
		if st := credStatuses(t, base, token); st[id][0] != "OK" {
			t.Fatalf("after a failed reload the credential reads %v", st[id])
		}
	}

	hup()
	waitFor(t, "the unchanged reload", func() bool {
		return strings.Contains(logs.String(), `msg="encryption key file reloaded: the keys are unchanged" reason=SIGHUP`)
	})

	other, _ := keyring.New()
	otherSet, _ := other.JSON()
	forged := strings.Replace(string(good), `"k": "`, `"k": "`+strings.Repeat("B", 42)+`A", "x": "`, 1)
	for _, c := range []struct{ name, content, says string }{
		{"not JSON", `{"keys": [`, "not valid JSON"},
		{"an empty set", `{"keys": []}`, "no keys"},
		{"other bytes under the kid", forged, `the key under kid \"` + k1 + `\" is not the one the database recorded`},
		{"without the active key", string(otherSet), `the new key set lacks the active key \"` + k1 + `\"`},
	} {
		if err := os.WriteFile(file, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		mark := len(logs.String())
		hup()
		waitFor(t, "the refused reload of "+c.name, func() bool {
			l := logs.String()[mark:]
			return strings.Contains(l, "reloading the encryption key file failed: keeping the keys held") && strings.Contains(l, c.says)
		})
		stillOK()
	}
	if strings.Contains(logs.String(), strings.Repeat("B", 42)) {
		t.Fatal("key material reached the log")
	}
	// The good file again: it loads, and a new key in it too.
	if err := os.WriteFile(file, good, 0o600); err != nil {
		t.Fatal(err)
	}
	env(vars).mustRun(t, "keys", "add")
	k2 := lastKID(t, file)
	hup()
	waitFor(t, "the reload of the good file", func() bool { return strings.Contains(logs.String(), "added=["+k2+"]") })
	stillOK()

	// Keys from the environment: SIGHUP says a restart is needed.
	envVars := keysVars(t.TempDir(), "server-e")
	envVars["CLOUDKEYS_ENCRYPTION_KEYS"] = string(otherSet)
	_, envLogs, _ := startRun(t, envVars)
	hup()
	waitFor(t, "the environment's answer to SIGHUP", func() bool {
		return strings.Contains(envLogs.String(), "the keys come from CLOUDKEYS_ENCRYPTION_KEYS; restart the server to change them")
	})
}

// A secret file readable by group or others: a warning in development,
// a refusal in production, each naming the file and chmod 600.
func TestSecretFilePermissions(t *testing.T) {
	// Development: the generated key file made readable by others.
	dir := t.TempDir()
	vars := testEnv(dir)
	_, _, stop := startRun(t, vars)
	stop()
	file := filepath.Join(dir, "encryption-keys.json")
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	_, logs, _ := startRun(t, vars)
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "readable by group and others (mode 0644)") ||
		!strings.Contains(l, "chmod 600 "+file) {
		t.Fatalf("no warning for a world-readable key file:\n%s", l)
	}

	// Production: init's files, each in turn made readable by its group.
	prod := initVars(t, t.TempDir())
	for k, v := range testEnv(t.TempDir()) {
		prod[k] = v
	}
	for _, name := range []string{"CLOUDKEYS_ENCRYPTION_KEYS_FILE", "CLOUDKEYS_JWT_SECRET_FILE", "CLOUDKEYS_AUDIT_KEY_FILE"} {
		path := prod[name]
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := env(prod).runMain(t, "", "serve", "--addr", "127.0.0.1:0")
		if code != 1 || !strings.Contains(errOut, "refusing to use the") || !strings.Contains(errOut, path) ||
			!strings.Contains(errOut, "readable by group (mode 0640)") || !strings.Contains(errOut, "chmod 600 "+path) {
			t.Fatalf("%s readable by its group: exit %d\n%s", name, code, errOut)
		}
		os.Chmod(path, 0o600)
	}
	// With every file 0600, production starts.
	startRun(t, prod)
}
