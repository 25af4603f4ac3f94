package app

import (
	"context"
	"errors"
	"fmt"

	"cloudkeys/config"
	"cloudkeys/models"
)

// dbOptions says which database the configuration names and whether
// opening it may migrate it.
func dbOptions(cfg *config.Config) models.Options {
	return models.Options{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, NoMigrate: cfg.NoMigrate}
}

// migrateFirst explains a refusal to open a database with pending
// migrations: which database, how many, which, why they were not applied
// (here: who does not apply them) and what to run.
func migrateFirst(cfg *config.Config, err error, here string) error {
	pending, ok := errors.AsType[*models.PendingMigrationsError](err)
	if !ok {
		return err
	}
	if pending.State.Dirty {
		return fmt.Errorf("the database %s is dirty at migration version %d: a migration failed half-way; repair it, then mark the version with golang-migrate's force",
			cfg.DatabaseName(), pending.State.Version)
	}
	return fmt.Errorf("the database %s has %d pending migrations (%s), which %s does not apply: run 'cloudkeys migrate' with the same configuration first",
		cfg.DatabaseName(), len(pending.State.Pending), models.MigrationList(pending.State.Pending), here)
}

// MigrationResult is what Migrate did.
type MigrationResult struct {
	Applied []models.Migration
	Version uint // the version the database is at now
}

// Migrate applies the pending migrations of the configured database,
// creating an SQLite file that does not exist yet (it is the first step of
// a new installation). It needs no secret or key.
func Migrate(ctx context.Context, cfg *config.Config) (MigrationResult, error) {
	applied, version, err := models.Migrate(ctx, dbOptions(cfg))
	return MigrationResult{Applied: applied, Version: version}, err
}
