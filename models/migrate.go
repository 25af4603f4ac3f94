package models

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite3"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for migrations
)

//go:embed migrations
var migrations embed.FS

// runMigrations applies the pending migrations of the dialect, on a connection of
// its own. golang-migrate holds a lock while it works (an advisory lock on
// PostgreSQL), so replicas starting together migrate once.
func runMigrations(ctx context.Context, dialect, dsn string) error {
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
	source, err := iofs.New(migrations, "migrations/"+dialect)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", source, dialect, target)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}
