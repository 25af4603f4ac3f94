package models

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite3"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for migrations
)

//go:embed migrations
var migrations embed.FS

// Migration is one embedded migration.
type Migration struct {
	Version uint
	Name    string
}

// String is the migration's file name without its suffix: 0003_relay.
func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// MigrationState is where a database stands against the embedded
// migrations.
type MigrationState struct {
	// Version is the last migration applied (0: none).
	Version uint
	// Dirty is set when a migration failed half-way: golang-migrate will
	// not go on until the database is repaired and the version forced.
	Dirty bool
	// Pending are the migrations not applied yet, oldest first.
	Pending []Migration
}

// PendingMigrationsError is Open's refusal with Options.NoMigrate.
type PendingMigrationsError struct{ State MigrationState }

func (e *PendingMigrationsError) Error() string {
	if e.State.Dirty {
		return fmt.Sprintf("the database is dirty at migration version %d: a migration failed half-way and must be repaired by hand", e.State.Version)
	}
	return fmt.Sprintf("the database has %d pending migrations (%s)", len(e.State.Pending), MigrationList(e.State.Pending))
}

// MigrationList names migrations: "0001_init, 0002_login_attempts".
func MigrationList(ms []Migration) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.String()
	}
	return strings.Join(names, ", ")
}

// MigrationStatus reports which embedded migrations the database o selects
// has not applied, changing nothing: an SQLite file that does not exist is
// not created (every migration is pending).
func MigrationStatus(ctx context.Context, o Options) (MigrationState, error) {
	if !IsPostgres(o.URL) {
		if _, err := os.Stat(o.SQLitePath()); errors.Is(err, fs.ErrNotExist) {
			src, err := migrationSource(o.dialect())
			if err != nil {
				return MigrationState{}, err
			}
			pending, err := migrationsAfter(src, 0)
			return MigrationState{Pending: pending}, err
		}
	}
	var state MigrationState
	err := withMigrate(ctx, o.dialect(), o.dsn(), func(m *migrate.Migrate, src source.Driver) error {
		var err error
		state, err = migrationState(m, src)
		return err
	})
	return state, err
}

// Migrate applies the pending migrations of the database o selects
// (creating an SQLite file that does not exist yet) and returns those it
// applied and the version the database is at now. Replicas or commands
// migrating together apply each migration once (golang-migrate's lock).
func Migrate(ctx context.Context, o Options) (applied []Migration, version uint, err error) {
	if err := o.createSQLiteFile(); err != nil {
		return nil, 0, err
	}
	err = withMigrate(ctx, o.dialect(), o.dsn(), func(m *migrate.Migrate, src source.Driver) error {
		before, err := migrationState(m, src)
		if err != nil {
			return err
		}
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate database: %w", err)
		}
		after, err := migrationState(m, src)
		if err != nil {
			return err
		}
		version = after.Version
		for _, p := range before.Pending {
			if p.Version <= after.Version {
				applied = append(applied, p) // not by a concurrent migrator
			}
		}
		return nil
	})
	return applied, version, err
}

// runMigrations applies the pending migrations of the dialect, on a connection of
// its own. golang-migrate holds a lock while it works (an advisory lock on
// PostgreSQL), so replicas starting together migrate once.
func runMigrations(ctx context.Context, dialect, dsn string) error {
	return withMigrate(ctx, dialect, dsn, func(m *migrate.Migrate, _ source.Driver) error {
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate database: %w", err)
		}
		return nil
	})
}

// withMigrate runs f with golang-migrate on a connection of its own to the
// database and the embedded migrations of the dialect.
func withMigrate(ctx context.Context, dialect, dsn string, f func(*migrate.Migrate, source.Driver) error) error {
	driverName := "sqlite3"
	if dialect == "postgres" {
		driverName = "pgx"
	}
	conn, err := sql.Open(driverName, dsn)
	if err != nil {
		return fmt.Errorf("open database for migrations: %w", err)
	}
	defer conn.Close()
	if err := conn.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	var target database.Driver
	if dialect == "postgres" {
		target, err = migratepgx.WithInstance(conn, &migratepgx.Config{})
	} else {
		target, err = migratesqlite.WithInstance(conn, &migratesqlite.Config{})
	}
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	src, err := migrationSource(dialect)
	if err != nil {
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, dialect, target)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	return f(m, src)
}

func migrationSource(dialect string) (source.Driver, error) {
	src, err := iofs.New(migrations, "migrations/"+dialect)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return src, nil
}

func migrationState(m *migrate.Migrate, src source.Driver) (MigrationState, error) {
	v, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		v, err = 0, nil
	}
	if err != nil {
		return MigrationState{}, fmt.Errorf("read the migration version: %w", err)
	}
	pending, err := migrationsAfter(src, v)
	return MigrationState{Version: v, Dirty: dirty, Pending: pending}, err
}

// migrationsAfter lists the source's migrations newer than version.
func migrationsAfter(src source.Driver, version uint) ([]Migration, error) {
	var out []Migration
	v, err := src.First()
	for err == nil {
		if v > version {
			r, name, err := src.ReadUp(v)
			if err != nil {
				return nil, fmt.Errorf("read migration %d: %w", v, err)
			}
			r.Close()
			out = append(out, Migration{Version: v, Name: name})
		}
		v, err = src.Next(v)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return out, nil
}
