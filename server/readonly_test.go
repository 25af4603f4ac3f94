package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"strings"
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
