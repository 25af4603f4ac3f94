package main

import (
	"context"
	"fmt"
	"io"

	"cloudkeys/app"
	"cloudkeys/config"
	"cloudkeys/models"
)

const migrateAbout = `Apply the pending database migrations and exit: the database is found as
'cloudkeys serve' finds it (CLOUDKEYS_DATABASE_URL, or the SQLite file in the
data directory, created if missing). Safe to run while servers run and on
several machines at once (golang-migrate's lock: each migration is applied
once). Needs no secret or key. Run it before starting servers with
'serve --no-migrate'.`

// migrateCommand runs `cloudkeys migrate`.
func migrateCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("migrate", "cloudkeys migrate [flags]", migrateAbout)
	cfg := config.Read(getenv)
	cfg.DatabaseFlags(c.fs)
	rest, err := c.parse(args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest, stderr); err != nil {
		return err
	}
	if err := cfg.Finish(false); err != nil {
		return err
	}
	res, err := app.Migrate(ctx, cfg)
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(stdout, "no pending migrations: %s is at version %d.\n", cfg.DatabaseName(), res.Version)
		return nil
	}
	fmt.Fprintf(stdout, "applied %d migrations to %s: %s; it is at version %d now.\n",
		len(res.Applied), cfg.DatabaseName(), models.MigrationList(res.Applied), res.Version)
	return nil
}
