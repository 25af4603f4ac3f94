package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A database that becomes read-only: writes fail as a masked internal
// error (the cause only in the log), reads and /readyz go on, and service
// recovers without a restart once it is writable again (SPEC §10).
func TestReadOnlyDatabaseRecovers(t *testing.T) {
	t.Parallel()
	base := postgresURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // runs last
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	name := "ck_ro_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL is required for this test: %v", err)
	}
	terminate := func() {
		t.Helper()
		if _, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		terminate()
		admin.Exec("DROP DATABASE IF EXISTS " + name)
	})
	readOnly := func(on bool) {
		t.Helper()
		v := map[bool]string{true: "on", false: "off"}[on]
		if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" SET default_transaction_read_only = "+v); err != nil {
			t.Fatal(err)
		}
		terminate() // the pool reconnects with the new setting
	}

	cfg := testConfig(t)
	cfg.DatabaseURL = strings.Replace(base, "/test?", "/"+name+"?", 1)
	if cfg.DatabaseURL == base {
		t.Fatalf("cannot point %s at another database", base)
	}
	app := credApp(t, cfg)
	c, _ := app.user(t, "ada@example.com")
	c.createCred(openAIInput("before", apiKey(t)))

	// reconnected waits until the pool's connections are new ones: a query
	// meeting a connection the server terminated fails once.
	reconnected := func() {
		t.Helper()
		for range 40 { // bounded
			if r := c.do(`{ cloudCredentials { id } }`, nil); len(r.Errors) == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("reads did not come back after the connections were terminated")
	}
	readOnly(true)
	reconnected()
	r := c.do(createMutation, map[string]any{"input": openAIInput("during", apiKey(t))})
	e := r.wantCode(t, "createCloudCredential", "INTERNAL_SERVER_ERROR")
	if e.Message != "internal server error" || strings.Contains(string(r.Raw), "read-only") {
		t.Fatalf("the database's error reached the client: %s", r)
	}
	if !strings.Contains(app.Logs(), "read-only") {
		t.Error("the cause is not in the log")
	}
	if n := len(c.listCreds()); n != 1 {
		t.Fatalf("reads while read-only: %d credentials, want 1", n)
	}
	res, err := http.Get(app.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("/readyz while read-only: %d (reads still work)", res.StatusCode)
	}

	readOnly(false)
	reconnected()
	if r = c.do(createMutation, map[string]any{"input": openAIInput("after", apiKey(t))}); len(r.Errors) > 0 {
		t.Fatalf("writes did not recover without a restart: %s", r)
	}
	if n := len(c.listCreds()); n != 2 {
		t.Fatalf("%d credentials after recovery, want 2 (nothing of the failed write kept)", n)
	}
}

// PostgreSQL going away under a bounded load: requests fail cleanly (a
// masked INTERNAL_SERVER_ERROR, /readyz 503) and recover without a restart
// of cloudkeys, and no write is half done: every credential stored has its
// audit event, and every failed one left nothing.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	t.Parallel()
	base := postgresURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	name := "ck_out_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL is required for this test: %v", err)
	}
	setOutage := func(down bool) {
		t.Helper()
		allow := map[bool]string{true: "false", false: "true"}[down]
		if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS "+allow); err != nil {
			t.Fatal(err)
		}
		if down {
			if _, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		setOutage(true)
		admin.Exec("DROP DATABASE IF EXISTS " + name)
	})

	cfg := testConfig(t)
	cfg.DatabaseURL = strings.Replace(base, "/test?", "/"+name+"?", 1)
	app := credApp(t, cfg)
	ready := func() int {
		res, err := http.Get(app.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	waitReady := func(want int) {
		t.Helper()
		for range 100 { // bounded: 10 s
			if ready() == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("/readyz never answered %d", want)
	}
	const writers, each = 4, 30
	clients := make([]*client, writers)
	for i := range clients {
		clients[i], _ = app.user(t, fmt.Sprintf("w%d@example.com", i))
	}
	var ok, failed atomic.Int64
	var badCode atomic.Value
	started := make(chan struct{}, writers*each)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for j := range each {
				r := c.do(createMutation, map[string]any{"input": openAIInput(fmt.Sprintf("k%d", j), apiKey(t))})
				switch {
				case len(r.Errors) == 0:
					ok.Add(1)
				case r.Errors[0].Extensions["code"] == "INTERNAL_SERVER_ERROR" && r.Errors[0].Message == "internal server error":
					failed.Add(1)
				default:
					badCode.Store(r.String())
				}
				started <- struct{}{}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	for range writers * 5 { // some writes land first
		<-started
	}
	setOutage(true)
	waitReady(http.StatusServiceUnavailable)
	time.Sleep(300 * time.Millisecond) // writes meet the outage
	setOutage(false)
	waitReady(http.StatusOK)
	wg.Wait()

	if v := badCode.Load(); v != nil {
		t.Fatalf("a write during the outage failed otherwise than a masked internal error: %s", v)
	}
	if failed.Load() == 0 {
		t.Fatal("no write met the outage: the test proved nothing")
	}
	stored := int64(0)
	for _, c := range clients {
		stored += int64(len(c.listCreds()))
	}
	audited := int64(app.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'CREDENTIAL_CREATED'"))
	t.Logf("%d writes succeeded, %d failed during the outage; %d stored, %d audited", ok.Load(), failed.Load(), stored, audited)
	if stored != ok.Load() || audited != ok.Load() {
		t.Fatalf("%d writes answered success, %d credentials stored, %d audited: a write was half done", ok.Load(), stored, audited)
	}
	// And it serves again, without a restart.
	clients[0].createCred(openAIInput("after", apiKey(t)))
}

// An SQLite database file that becomes read-only (made immutable with
// chattr +i, which binds root too, and already open descriptors): writes
// fail cleanly and nothing of them is kept; once the file is writable
// again, service recovers without a restart.
func TestSQLiteFileReadOnlyRecovers(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("chattr"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root and chattr (e2fsprogs) in CI")
		}
		t.Skip("this test needs root and chattr (e2fsprogs)")
	}
	cfg := testConfig(t)
	app := credApp(t, cfg)
	c, _ := app.user(t, "ada@example.com")
	c.createCred(openAIInput("before", apiKey(t)))
	// The database and its write-ahead log; not the -shm index, which
	// SQLite maps in memory: an immutable mapping faults (SIGBUS), which
	// is not a read-only database but a broken machine.
	files := []string{filepath.Join(cfg.DataDir, "cloudkeys.db"), filepath.Join(cfg.DataDir, "cloudkeys.db-wal")}
	chattr := func(flag string) {
		t.Helper()
		if out, err := exec.Command("chattr", append([]string{flag}, files...)...).CombinedOutput(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("chattr %s: %v %s", flag, err, out)
			}
			t.Skipf("chattr %s does not work here: %v %s", flag, err, out)
		}
	}
	chattr("+i")
	t.Cleanup(func() { exec.Command("chattr", append([]string{"-i"}, files...)...).Run() })

	failed := 0
	for i := range 5 {
		r := c.do(createMutation, map[string]any{"input": openAIInput(fmt.Sprintf("during%d", i), apiKey(t))})
		if len(r.Errors) == 0 {
			t.Fatalf("a write succeeded on a read-only database file: %s", r)
		}
		if e := r.Errors[0]; e.Extensions["code"] != "INTERNAL_SERVER_ERROR" || e.Message != "internal server error" {
			t.Fatalf("not a masked internal error: %s", r)
		}
		failed++
	}
	chattr("-i")
	var r *response
	for range 40 { // bounded
		if r = c.do(createMutation, map[string]any{"input": openAIInput("after", apiKey(t))}); len(r.Errors) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("writes did not recover without a restart: %s", r)
	}
	if n := len(c.listCreds()); n != 2 {
		t.Fatalf("%d credentials after %d failed writes, want 2: a failed write left something", n, failed)
	}
	if n := app.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'CREDENTIAL_CREATED'"); n != 2 {
		t.Fatalf("%d credential events, want 2", n)
	}
}
