package main

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cloudkeys/internal/pgtest"
	"cloudkeys/models"
)

// allMigrations are the embedded migrations, from an empty database's
// point of view.
func allMigrations(t *testing.T) []models.Migration {
	t.Helper()
	state, err := models.MigrationStatus(context.Background(), models.Options{DataDir: t.TempDir()})
	if err != nil || len(state.Pending) < 3 {
		t.Fatalf("embedded migrations: %v %v", state, err)
	}
	return state.Pending
}

// postgresEnv points e at a fresh schema of the test PostgreSQL server
// (pgtest.Schema), dropped when the test ends.
func postgresEnv(t *testing.T, e env) { e["CLOUDKEYS_DATABASE_URL"] = pgtest.Schema(t) }

// migrate applies the pending migrations and reports them; serve
// --no-migrate refuses to start while any is pending, naming how many and
// which, and starts once there are none.
func TestMigrateAndNoMigrate(t *testing.T) {
	all := allMigrations(t)
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			e := env(testEnv(t.TempDir()))
			db := "sqlite " + filepath.Join(e["CLOUDKEYS_DATA_DIR"], "cloudkeys.db")
			if dialect == "postgres" {
				postgresEnv(t, e)
				db = "postgres://"
			}

			// A new database: every migration pending, and nothing created.
			code, out, errOut := e.runMain(t, "", "serve", "--no-migrate", "--addr", "127.0.0.1:0")
			if code != 1 || out != "" {
				t.Fatalf("serve --no-migrate on a new database: exit %d", code)
			}
			for _, want := range []string{db, "has " + strconv.Itoa(len(all)) + " pending migrations (" + models.MigrationList(all) + ")", "serve --no-migrate", "cloudkeys migrate"} {
				if !strings.Contains(errOut, want) {
					t.Fatalf("the refusal does not say %q:\n%s", want, errOut)
				}
			}
			if _, err := os.Stat(filepath.Join(e["CLOUDKEYS_DATA_DIR"], "cloudkeys.db")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("serve --no-migrate created the database (%v)", err)
			}

			code, out, errOut = e.runMain(t, "", "migrate")
			last := all[len(all)-1]
			if code != 0 || !strings.Contains(out, "applied "+strconv.Itoa(len(all))+" migrations to "+db) ||
				!strings.Contains(out, models.MigrationList(all)) || !strings.Contains(out, "at version "+strconv.Itoa(int(last.Version))) {
				t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
			}
			code, out, _ = e.runMain(t, "", "migrate")
			if code != 0 || !strings.Contains(out, "no pending migrations") {
				t.Fatalf("second migrate: exit %d\n%s", code, out)
			}

			base, _, stop := startRun(t, e, "--no-migrate")
			res, err := http.Get(base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("/readyz: %d", res.StatusCode)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			// A database one release behind: the newer migrations are
			// named, and only those.
			setMigrationVersion(t, e, all[len(all)-3].Version)
			_, _, errOut = e.runMain(t, "", "serve", "--no-migrate", "--addr", "127.0.0.1:0")
			if want := "has 2 pending migrations (" + models.MigrationList(all[len(all)-2:]) + ")"; !strings.Contains(errOut, want) {
				t.Fatalf("the refusal does not say %q:\n%s", want, errOut)
			}
		})
	}
}

// setMigrationVersion rewrites golang-migrate's version record.
func setMigrationVersion(t *testing.T, e env, v uint) {
	t.Helper()
	driver, dsn := "sqlite3", filepath.Join(e["CLOUDKEYS_DATA_DIR"], "cloudkeys.db")
	if u := e["CLOUDKEYS_DATABASE_URL"]; u != "" {
		driver, dsn = "pgx", u
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE schema_migrations SET version = $1", v); err != nil {
		t.Fatal(err)
	}
}
