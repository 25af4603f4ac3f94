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

// Now is the clock of every stored time: UTC, at the microsecond precision
// both SQLite and PostgreSQL keep, so values compare the same in both.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Open connects to the database, applies pending migrations and returns a
// handle ready for concurrent use. Plugins (such as the API-key encryption
// plugin) are registered on the returned handle.
func Open(ctx context.Context, o Options, plugins ...gorm.Plugin) (*gorm.DB, error) {
	var dialector gorm.Dialector
	var migrationDSN string
	if IsPostgres(o.URL) {
		dialector = postgres.New(postgres.Config{DSN: o.URL})
		migrationDSN = o.URL
	} else {
		path := o.SQLitePath()
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		// The file holds password hashes and ciphertexts: create it 0600
		// (SQLite gives its -wal and -shm files the same mode).
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open database file: %w", err)
		}
		f.Close()
		// WAL lets readers run beside the one writer; BEGIN IMMEDIATE takes
		// the write lock up front so that concurrent writers wait (busy
		// timeout) instead of failing with SQLITE_BUSY on lock upgrade.
		migrationDSN = "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL"
		dialector = sqlite.Open(migrationDSN)
	}
	if err := runMigrations(ctx, dialector.Name(), migrationDSN); err != nil {
		return nil, err
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
func Ping(ctx context.Context, db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
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
