// Package models holds cloudkeys' data: the GORM models, the rules that
// decide what may be stored (validation, ownership, the last-admin
// invariant), the queries, and the migrations for SQLite and PostgreSQL.
package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Options says which database to open.
type Options struct {
	// URL is a postgres:// (or postgresql://) URL for PostgreSQL; anything
	// else is an SQLite file path, and empty means DataDir/cloudkeys.db.
	URL     string
	DataDir string
	// MaxOpenConns bounds the pool (0: a default suited to the dialect).
	MaxOpenConns int
	// NoMigrate makes Open refuse (*PendingMigrationsError) while
	// migrations are pending instead of applying them.
	NoMigrate bool
}

// IsPostgres reports whether url selects PostgreSQL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// SQLitePath returns the SQLite file that o selects.
func (o Options) SQLitePath() string {
	if o.URL != "" {
		return strings.TrimPrefix(o.URL, "sqlite://")
	}
	return filepath.Join(o.DataDir, "cloudkeys.db")
}

func (o Options) dialect() string {
	if IsPostgres(o.URL) {
		return "postgres"
	}
	return "sqlite"
}

// dsn is the connection string of database/sql (migrations) and,
// for SQLite, of GORM too. WAL lets readers run beside the one writer;
// BEGIN IMMEDIATE takes the write lock up front so that concurrent writers
// wait (busy timeout) instead of failing with SQLITE_BUSY on lock upgrade.
func (o Options) dsn() string {
	if IsPostgres(o.URL) {
		return o.URL
	}
	return "file:" + o.SQLitePath() + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL"
}

// createSQLiteFile creates the SQLite file (and its directory) if missing.
// The file holds password hashes and ciphertexts: it is created 0600
// (SQLite gives its -wal and -shm files the same mode).
func (o Options) createSQLiteFile() error {
	if IsPostgres(o.URL) {
		return nil
	}
	path := o.SQLitePath()
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database file: %w", err)
	}
	return f.Close()
}

// Now is the clock of every stored time: UTC, at the microsecond precision
// both SQLite and PostgreSQL keep, so values compare the same in both.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Open connects to the database, applies pending migrations (with
// NoMigrate: refuses while any is pending) and returns a handle ready for
// concurrent use. Plugins (such as the API-key encryption
// plugin) are registered on the returned handle.
func Open(ctx context.Context, o Options, plugins ...gorm.Plugin) (*gorm.DB, error) {
	if o.NoMigrate {
		state, err := MigrationStatus(ctx, o)
		if err != nil {
			return nil, err
		}
		if state.Dirty || len(state.Pending) > 0 {
			return nil, &PendingMigrationsError{State: state}
		}
	}
	if err := o.createSQLiteFile(); err != nil {
		return nil, err
	}
	var dialector gorm.Dialector
	if IsPostgres(o.URL) {
		dialector = postgres.New(postgres.Config{DSN: o.URL})
	} else {
		dialector = sqlite.Open(o.dsn())
	}
	if !o.NoMigrate {
		if err := runMigrations(ctx, o.dialect(), o.dsn()); err != nil {
			return nil, err
		}
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		NowFunc: Now,
		// SQL is never logged: statements carry password hashes and
		// ciphertexts. Errors reach the server log through the caller.
		Logger:                                   logger.Default.LogMode(logger.Silent),
		TranslateError:                           false,
		DisableForeignKeyConstraintWhenMigrating: true,
		PrepareStmt:                              true,
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	maxOpen := o.MaxOpenConns
	if maxOpen == 0 {
		maxOpen = 16
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(maxOpen)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	for _, p := range plugins {
		if err := db.Use(p); err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("register %s: %w", p.Name(), err)
		}
	}
	return db, nil
}

// Close closes the database handle.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
//
// It reads a row of the schema's migration table, not only the connection:
// on SQLite a ping touches no file, so a database file gone or unreadable
// would still look ready (SPEC §10: /readyz answers from a read).
func Ping(ctx context.Context, db *gorm.DB) error {
	var version []int64
	return db.WithContext(ctx).Raw("SELECT version FROM schema_migrations LIMIT 1").Scan(&version).Error
}

func isPostgres(db *gorm.DB) bool { return db.Dialector.Name() == "postgres" }

// lock serialises the transactions that take the same named lock, for rules
// that read before they write (the first user becomes admin; there is always
// an approved admin). SQLite transactions are already serialised by BEGIN
// IMMEDIATE; PostgreSQL takes a transaction-scoped advisory lock.
func lock(tx *gorm.DB, name string) error {
	if !isPostgres(tx) {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("cloudkeys:" + name))
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", int64(h.Sum64())).Error
}

// isUniqueViolation reports whether err is a unique-constraint violation.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return false
}

// notFound reports whether err says a lookup found no row.
func notFound(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows)
}
