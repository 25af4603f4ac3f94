package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"gorm.io/gorm"

	"cloudkeys/app"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

const keysUsage = `usage: cloudkeys keys <command> [flags]

commands:
  status        show how many stored API keys use each encryption key, and
                how many cannot be opened
  rotate        add a new encryption key to the key file and make it the
                active one (old keys keep decrypting)
  rewrap        re-encrypt every stored API key under the active key, in
                batches; safe while servers run, and can be run again
  retire KID    remove key KID from the key file, once no stored key uses it

` + keysFinding + `
Run 'cloudkeys keys <command> -h' for a command's flags.
`

// keysFinding is how every keys command finds the keys and the database.
const keysFinding = `The keys and the database are found as 'cloudkeys serve' finds them
(CLOUDKEYS_ENCRYPTION_KEYS, CLOUDKEYS_ENCRYPTION_KEYS_FILE or the data
directory; CLOUDKEYS_DATABASE_URL), but never created: where there is no
key file or SQLite database, the command stops. No JWT secret is needed,
in production either.
`

// keysCommands are the keys subcommands: synopsis and description.
var keysCommands = map[string][2]string{
	"status": {"cloudkeys keys status [flags]", `Show the key set (where it comes from, its kids, the active one) and, per kid,
how many stored API keys use it and how many of those cannot be opened.`},
	"rotate": {"cloudkeys keys rotate [flags]", `Add a new encryption key to the key file and make it the active one; the old
keys stay and keep decrypting. With the keys in CLOUDKEYS_ENCRYPTION_KEYS, the
new key set is printed on standard output instead (it is secret).`},
	"rewrap": {"cloudkeys keys rewrap [flags]", `Re-encrypt every stored API key that is not under the active key, in batches of
100. Safe while servers run (a concurrent change is never overwritten) and can
be run again; values that cannot be opened are left as they are and counted.`},
	"retire": {"cloudkeys keys retire [flags] KID", `Remove key KID from the key file, once no stored API key uses it (run rewrap
first); never the active key. With the keys in CLOUDKEYS_ENCRYPTION_KEYS, the
new key set is printed on standard output instead (it is secret).`},
}

// rewrapBatch is how many rows rewrap and status read at a time.
const rewrapBatch = 100

// keysCommand runs `cloudkeys keys …`.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	g := group{name: "keys", usage: keysUsage}
	sub, rest, done, err := g.pick(args, slices.Sorted(maps.Keys(keysCommands)), stdout, stderr)
	if done {
		return err
	}
	c := newCommand("keys "+sub, keysCommands[sub][0], keysCommands[sub][1]+"\n\n"+keysFinding)
	cfg := config.Read(getenv)
	if sub == "rotate" {
		cfg.DataDirFlag(c.fs) // rotate reads no database
	} else {
		cfg.DatabaseFlags(c.fs)
	}
	positional, err := c.parse(rest, stdout, stderr)
	if err != nil {
		return err
	}
	var kid string
	if sub == "retire" {
		if len(positional) == 0 {
			return c.usageError(stderr, "name the key to remove: cloudkeys keys retire KID")
		}
		kid, positional = positional[0], positional[1:]
	}
	if err := c.noArgs(positional, stderr); err != nil {
		return err
	}
	// No keys command signs or verifies a token: no JWT secret is read or
	// required, in production either.
	if err := cfg.Finish(false); err != nil {
		return err
	}
	k, src, err := app.ExistingKeys(cfg)
	if err != nil {
		return err
	}
	if sub == "rotate" {
		return keysRotate(k, src, stdout, stderr)
	}
	db, err := app.OpenExistingDB(ctx, cfg, k)
	if err != nil {
		return err
	}
	defer models.Close(db)
	switch sub {
	case "status":
		return keysStatus(ctx, db, k, src, stdout)
	case "rewrap":
		return keysRewrap(ctx, db, stdout)
	default:
		return keysRetire(ctx, db, k, src, kid, stdout, stderr)
	}
}

// keysRotate adds a fresh active key. A key set from the environment cannot
// be changed from here: the rotated set goes to stdout for the operator to
// store where the environment comes from.
func keysRotate(k *keyring.Keyring, src app.KeySource, stdout, stderr io.Writer) error {
	rotated, err := k.Rotate()
	if err != nil {
		return err
	}
	if src.Env {
		return printKeySet(rotated, stdout, stderr, fmt.Sprintf("added key %s as the active key", rotated.ActiveKID()),
			"restart every server with it, then run 'cloudkeys keys rewrap'")
	}
	if err := keyring.WriteFile(src.File, rotated); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added key %s to %s; it is now the active key (%d keys).\n"+
		"Restart every server so that new API keys are sealed with it (a server still running with the old\n"+
		"file cannot open them), then run 'cloudkeys keys rewrap' to move the stored keys onto it.\n",
		rotated.ActiveKID(), src.File, len(rotated.KIDs()))
	return nil
}

// printKeySet writes a key set the command could not store itself to
// stdout, and to stderr what to do with it.
func printKeySet(k *keyring.Keyring, stdout, stderr io.Writer, what, then string) error {
	set, err := k.JSON()
	if err != nil {
		return err
	}
	defer clear(set)
	fmt.Fprintf(stderr, "The keys come from CLOUDKEYS_ENCRYPTION_KEYS, which this command cannot change.\n"+
		"The new key set (%s) is on standard output: store it as the new\n"+
		"CLOUDKEYS_ENCRYPTION_KEYS in your secret store, %s.\n", what, then)
	_, err = stdout.Write(set)
	return err
}

func keysRewrap(ctx context.Context, db *gorm.DB, stdout io.Writer) error {
	res, err := models.Rewrap(ctx, db, rewrapBatch, func(r models.RewrapResult) {
		fmt.Fprintf(stdout, "… %d rewrapped so far\n", r.Rewrapped)
	})
	if err != nil {
		return fmt.Errorf("rewrap stopped (run it again to continue): %w", err)
	}
	fmt.Fprintf(stdout, "rewrapped %d API keys under the active key %s.\n", res.Rewrapped, res.ActiveKID)
	if res.Changed > 0 {
		fmt.Fprintf(stdout, "%d changed while being rewrapped (their owners saved them meanwhile); run rewrap again to pick up any a server sealed with an old key.\n", res.Changed)
	}
	if res.Unreadable > 0 {
		fmt.Fprintf(stdout, "%d cannot be opened and were left as they are: 'cloudkeys keys status' says why; they read NEEDS_REENTRY until their owners enter the keys again.\n", res.Unreadable)
	}
	return nil
}

func keysRetire(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource, kid string, stdout, stderr io.Writer) error {
	if !k.Has(kid) {
		return fmt.Errorf("keys retire: there is no key %q in %s (keys: %s)", kid, src, strings.Join(k.KIDs(), ", "))
	}
	rest, err := k.Without(kid)
	if err != nil {
		return fmt.Errorf("keys retire: %w", err)
	}
	n, err := models.CountKeyID(ctx, db, kid)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("keys retire: %d stored API keys still use key %q; run 'cloudkeys keys rewrap' first "+
			"(keys that cannot be opened stay on their old key until their owners enter them again: 'cloudkeys keys status' counts them)", n, kid)
	}
	if src.Env {
		return printKeySet(rest, stdout, stderr, "without key "+kid, "and restart every server with it")
	}
	if err := keyring.WriteFile(src.File, rest); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed key %s from %s (%d keys left); restart every server to drop it from memory too.\n", kid, src.File, len(rest.KIDs()))
	return nil
}

func keysStatus(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource, stdout io.Writer) error {
	u, err := models.KeyReport(ctx, db, rewrapBatch)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key set: %s (%d keys, active %s)\n\n", src, len(k.KIDs()), k.ActiveKID())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tACTIVE\tIN KEY SET\tAPI KEYS\tCANNOT OPEN")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, ku := range u.Keys {
		name := ku.KID
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", name, yes(ku.Active), yes(ku.InSet), ku.Rows, ku.Unreadable)
	}
	tw.Flush()
	unreadable := 0
	for _, n := range u.Unreadable {
		unreadable += n
	}
	fmt.Fprintf(stdout, "\n%d stored API keys, %d cannot be opened", u.Total, unreadable)
	if unreadable > 0 {
		var parts []string
		for _, kind := range slices.Sorted(maps.Keys(u.Unreadable)) {
			parts = append(parts, fmt.Sprintf("%s: %d", kind, u.Unreadable[kind]))
		}
		fmt.Fprintf(stdout, " (%s); they read NEEDS_REENTRY until their owners enter them again", strings.Join(parts, ", "))
	}
	fmt.Fprintln(stdout, ".")
	return nil
}
