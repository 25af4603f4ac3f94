// Package pgtest gives tests the PostgreSQL server they run against: its
// URL, and a fresh schema of it per test. PostgreSQL tests never skip
// silently: without a server they fail, unless CLOUDKEYS_TEST_POSTGRES_URL=off
// says so explicitly outside CI.
//
// What may import it: tests only (it imports testing).
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// URL returns the PostgreSQL server tests use:
// CLOUDKEYS_TEST_POSTGRES_URL, or the local test database.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CLOUDKEYS_TEST_POSTGRES_URL")
	if u == "off" {
		if os.Getenv("CI") != "" {
			t.Fatal("CLOUDKEYS_TEST_POSTGRES_URL=off is not allowed in CI: PostgreSQL tests must run")
		}
		t.Skip("PostgreSQL tests turned off with CLOUDKEYS_TEST_POSTGRES_URL=off")
	}
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	return u
}

// Schema creates a fresh schema on the test server, dropped when the test
// ends, and returns the URL that uses it (search_path).
func Schema(t testing.TB) string {
	t.Helper()
	base := URL(t)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is required for this test and is not reachable at %s: %v\n"+
			"start it (see README) or set CLOUDKEYS_TEST_POSTGRES_URL", base, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
