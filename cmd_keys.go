package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"gorm.io/gorm"

	"cloudkeys/app"
	"cloudkeys/audit"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

const keysUsage = `usage: cloudkeys keys <command> [flags]

commands:
  status        show the key set, the active key, how many stored API keys use
                each key (and how many cannot be opened), and the live servers
                with the keys they hold
  add           add a new encryption key to the key file; it decrypts, but does
                not encrypt until it is activated
  activate KID  make KID the key every server encrypts with, once every live
                server holds it (recorded in the database)
  rotate        add, then activate once every live server holds the new key
  rewrap        re-encrypt every stored API key under the active key, in
                batches; safe while servers run, and can be run again
  retire KID    remove key KID from the key file, once no stored key uses it

Keys follow the add → distribute → promote order: add the key, let every
server hold it (servers reload a changed key file within 10 s, or on
SIGHUP), activate it, then rewrap and retire the old key.

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
	"status": {"cloudkeys keys status [flags]", `Show the key set (where it comes from, its kids), the active key the database
records, and per kid: whether its key-check value matches the one recorded,
how many stored API keys use it and how many of those cannot be opened. Then
the live servers (a heartbeat in the last 30 s) with the keys they hold and the
one they encrypt with, and the rows whose key_id column disagrees with the kid
of their JWE header.`},
	"add": {"cloudkeys keys add [flags]", `Add a new encryption key at the end of the key file. It decrypts but does not
encrypt: servers sharing the file reload it (within 10 s, or on SIGHUP) and
can then open values sealed with it; 'cloudkeys keys activate KID' makes it
the key they seal with. A key file that holds no key yet (empty, or
{"keys": []}) gets its first key. With the keys in CLOUDKEYS_ENCRYPTION_KEYS,
the new key set is printed on standard output instead (it is secret).`},
	"activate": {"cloudkeys keys activate [flags] KID", `Record KID in the database as the key every server encrypts new API keys
with; servers pick it up within 10 s. Refused while a live server does not
hold KID (each is named), unless --force: such a server keeps encrypting with
a key it holds, and values sealed with KID read NEEDS_REENTRY on it until it
gets the key.`},
	"rotate": {"cloudkeys keys rotate [flags]", `Add a new encryption key to the key file (as 'keys add'), wait up to --wait for
every live server to report holding it (servers sharing the file reload it),
then activate it (as 'keys activate'). If some do not, the key stays added but
not active, they are named, and the command fails: give them the key, then run
'cloudkeys keys activate KID'. With the keys in CLOUDKEYS_ENCRYPTION_KEYS, the
new key set is printed on standard output instead (it is secret).`},
	"rewrap": {"cloudkeys keys rewrap [flags]", `Re-encrypt every stored API key that is not under the active key, in batches of
100, and repair every row whose key_id column disagrees with its JWE header's
kid. Safe while servers run (a concurrent change is never overwritten) and can
be run again; values that cannot be opened are left as they are and counted.
Refused while a live server does not hold the active key (unless --force);
first waits up to --wait for every live server to encrypt with it.`},
	"retire": {"cloudkeys keys retire [flags] KID", `Remove key KID from the key file, once no stored API key uses it (run rewrap
first); never the active key, nor one a live server still encrypts with.
Servers sharing the file drop it within 10 s. With the keys in
CLOUDKEYS_ENCRYPTION_KEYS, the new key set is printed on standard output
instead (it is secret).`},
}

// rewrapBatch is how many rows rewrap and status read at a time.
const rewrapBatch = 100

// keysPoll is how often rotate and rewrap look at the heartbeats while
// they wait.
const keysPoll = 200 * time.Millisecond

// keysCommand runs `cloudkeys keys …`.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	g := group{name: "keys", usage: keysUsage}
	sub, rest, done, err := g.pick(args, slices.Sorted(maps.Keys(keysCommands)), stdout, stderr)
	if done {
		return err
	}
	c := newCommand("keys "+sub, keysCommands[sub][0], keysCommands[sub][1]+"\n\n"+keysFinding)
	cfg := config.Read(getenv)
	if sub == "add" {
		cfg.DataDirFlag(c.fs) // add reads no database
	} else {
		cfg.DatabaseFlags(c.fs)
	}
	var force bool
	if sub == "activate" || sub == "rewrap" {
		c.fs.BoolVar(&force, "force", false, "go ahead although a live server does not hold the key (it is named)")
	}
	var wait time.Duration
	switch sub {
	case "rotate":
		c.fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for every live server to hold the new key before activating it")
	case "rewrap":
		c.fs.DurationVar(&wait, "wait", 15*time.Second, "how long to wait for every live server to encrypt with the active key before rewrapping")
	}
	positional, err := c.parse(rest, stdout, stderr)
	if err != nil {
		return err
	}
	var kid string
	if sub == "retire" || sub == "activate" {
		if len(positional) == 0 {
			what := map[string]string{"retire": "remove", "activate": "activate"}[sub]
			return c.usageError(stderr, "name the key to %s: cloudkeys keys %s KID", what, sub)
		}
		kid, positional = positional[0], positional[1:]
	}
	if err := c.noArgs(positional, stderr); err != nil {
		return err
	}
	if wait < 0 {
		return c.usageError(stderr, "--wait must not be negative")
	}
	// No keys command signs or verifies a token: no JWT secret is read or
	// required, in production either.
	if err := cfg.Finish(false); err != nil {
		return err
	}
	switch sub {
	case "add":
		return keysAdd(ctx, cfg, stdout, stderr)
	case "rotate":
		return keysRotate(ctx, cfg, wait, stdout, stderr)
	}
	k, src, err := app.ExistingKeys(cfg)
	if err != nil {
		return err
	}
	db, err := app.OpenExistingDB(ctx, cfg, k)
	if err != nil {
		return err
	}
	defer models.Close(db)
	if sub == "status" {
		return keysStatus(ctx, db, k, src, stdout)
	}
	trail, err := app.OpenAudit(cfg, db)
	if err != nil {
		return err
	}
	switch sub {
	case "activate":
		err = keysActivate(ctx, db, k, src, kid, force, stdout)
		return recordKey(ctx, trail, err, audit.KeyActivated, kid, forced(force))
	case "rewrap":
		err = keysRewrap(ctx, db, k, src, force, wait, stdout)
		return recordKey(ctx, trail, err, audit.KeyRewrapped, "", forced(force))
	default:
		err = keysRetire(ctx, db, k, src, kid, stdout, stderr)
		return recordKey(ctx, trail, err, audit.KeyRetired, kid, "")
	}
}

// recordKey records a key command that succeeded (err nil) in the audit
// trail. Its change is made by then (a file written, a row updated): if
// the event cannot be recorded, the command fails saying so.
func recordKey(ctx context.Context, trail *audit.Log, err error, action audit.Action, kid, detail string) error {
	if err != nil {
		return err
	}
	e := audit.Event{Action: action, Outcome: audit.Succeeded, TargetType: "key", TargetID: kid, Detail: detail}
	if err := trail.Append(ctx, nil, e); err != nil {
		return fmt.Errorf("done, but not recorded in the audit trail: %w", err)
	}
	return nil
}

func forced(force bool) string {
	if force {
		return "--force"
	}
	return ""
}

// addToKeySet reads the configured key set (an existing file may be
// empty) and returns it with a new key appended, and where it came from;
// nothing is written yet.
func addToKeySet(cfg *config.Config) (*keyring.Keyring, string, app.KeySource, error) {
	k, src, err := app.ExistingKeysOrEmpty(cfg)
	if err != nil {
		return nil, "", src, err
	}
	added, kid, err := addKey(k)
	return added, kid, src, err
}

// addKey returns the key set with a new key appended (the first key of an
// empty set).
func addKey(k *keyring.Keyring) (*keyring.Keyring, string, error) {
	if k == nil {
		fresh, err := keyring.New()
		if err != nil {
			return nil, "", err
		}
		return fresh, fresh.FirstKID(), nil
	}
	added, err := k.Add()
	if err != nil {
		return nil, "", err
	}
	kids := added.KIDs()
	return added, kids[len(kids)-1], nil
}

// keysAdd adds a key that decrypts but does not encrypt yet. A key set
// from the environment cannot be changed from here: the new set goes to
// stdout for the operator to store where the environment comes from.
//
// The addition is recorded in the audit trail of the servers' database
// when there is one; before the first server ever ran there is none, and
// the command says so.
func keysAdd(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	added, kid, src, err := addToKeySet(cfg)
	if err != nil {
		return err
	}
	var trail *audit.Log
	if db, err := app.OpenExistingDB(ctx, cfg, added); err == nil {
		defer models.Close(db)
		if trail, err = app.OpenAudit(cfg, db); err != nil {
			return err
		}
	} else if !errors.Is(err, app.ErrNoDatabase) {
		return err
	}
	if src.Env {
		return printKeySet(added, stdout, stderr, "with the new key "+kid,
			fmt.Sprintf("restart every server with it, then run 'cloudkeys keys activate %s' and 'cloudkeys keys rewrap'", kid))
	}
	if err := keyring.WriteFile(src.File, added); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added key %s to %s (%d keys); it decrypts but does not encrypt yet.\n"+
		"Servers using this file load it within 10 s (or on SIGHUP); give the other servers the new file.\n"+
		"Once 'cloudkeys keys status' shows every live server holding it, run 'cloudkeys keys activate %s'.\n",
		kid, src.File, len(added.KIDs()), kid)
	if trail == nil {
		fmt.Fprintln(stdout, "there is no database yet, so no audit trail to record the addition in.")
		return nil
	}
	return recordKey(ctx, trail, nil, audit.KeyAdded, kid, "")
}

// keysRotate is add, then activate once every live server holds the new
// key (waiting up to wait).
func keysRotate(ctx context.Context, cfg *config.Config, wait time.Duration, stdout, stderr io.Writer) error {
	added, kid, src, err := addToKeySet(cfg)
	if err != nil {
		return err
	}
	if src.Env {
		return printKeySet(added, stdout, stderr, "with the new key "+kid,
			fmt.Sprintf("restart every server with it, then run 'cloudkeys keys activate %s' and 'cloudkeys keys rewrap' "+
				"(a server cannot reload keys from the environment, so rotate cannot activate the key itself)", kid))
	}
	// The database first: a mistyped --database-url must not leave a key
	// added to the file.
	db, err := app.OpenExistingDB(ctx, cfg, added)
	if err != nil {
		return err
	}
	defer models.Close(db)
	trail, err := app.OpenAudit(cfg, db)
	if err != nil {
		return err
	}
	if err := checkValues(ctx, db, added, src); err != nil {
		return err
	}
	if err := keyring.WriteFile(src.File, added); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added key %s to %s (%d keys).\n", kid, src.File, len(added.KIDs()))
	if err := recordKey(ctx, trail, nil, audit.KeyAdded, kid, "keys rotate"); err != nil {
		return err
	}
	kcv, _ := added.CheckValue(kid)
	deadline := time.Now().Add(wait)
	announced := false
	for {
		live, err := models.LiveServers(ctx, db, time.Now())
		if err != nil {
			return err
		}
		lacking := lackingKey(live, kid, kcv)
		if len(lacking) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("keys rotate: added key %s to %s but did not activate it: after %s, %d of %d live servers do not hold it: %s. "+
				"Give them the key file (a server reloads it within 10 s of a change, or on SIGHUP; one with its keys in the environment needs a restart), "+
				"then run 'cloudkeys keys activate %s'", kid, src.File, wait, len(lacking), len(live), serverList(lacking), kid)
		}
		if !announced {
			fmt.Fprintf(stdout, "waiting up to %s for %d live servers to load it: %s\n", wait, len(lacking), serverNames(lacking))
			announced = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("keys rotate: interrupted: added key %s to %s but did not activate it (run 'cloudkeys keys activate %s'): %w",
				kid, src.File, kid, ctx.Err())
		case <-time.After(keysPoll):
		}
	}
	return recordKey(ctx, trail, activate(ctx, db, added, kid, nil, stdout), audit.KeyActivated, kid, "keys rotate")
}

// checkValues compares the key-check values of k with those the database
// records (recording those of new kids): a key under a known kid with
// other bytes must not seal or be activated.
func checkValues(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource) error {
	err := models.CheckKeyValues(ctx, db, k)
	if bad, ok := errors.AsType[*models.KeyMismatchError](err); ok {
		return fmt.Errorf("%s: %w. This key set is not the one the servers use; restore it from your backup ('cloudkeys keys status' shows the mismatch)", src, bad)
	}
	return err
}

// activeKey is the kid that seals: the one the database records, or, when
// it records none, the first key of k.
func activeKey(ctx context.Context, db *gorm.DB, k *keyring.Keyring) (kid string, recorded *models.ActiveKey, err error) {
	a, ok, err := models.RecordedActiveKey(ctx, db)
	if err != nil {
		return "", nil, err
	}
	if !ok {
		return k.FirstKID(), nil, nil
	}
	return a.KID, &a, nil
}

func keysActivate(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource, kid string, force bool, stdout io.Writer) error {
	if !k.Has(kid) {
		return fmt.Errorf("keys activate: there is no key %q in %s (keys: %s); add it first ('cloudkeys keys add')", kid, src, strings.Join(k.KIDs(), ", "))
	}
	if err := checkValues(ctx, db, k, src); err != nil {
		return err
	}
	current, recorded, err := activeKey(ctx, db, k)
	if err != nil {
		return err
	}
	if recorded != nil && current == kid {
		fmt.Fprintf(stdout, "key %s is already the active key (since %s).\n", kid, recorded.ActivatedAt.UTC().Format(time.RFC3339))
		return nil
	}
	live, err := models.LiveServers(ctx, db, time.Now())
	if err != nil {
		return err
	}
	kcv, _ := k.CheckValue(kid)
	lacking := lackingKey(live, kid, kcv)
	if len(lacking) > 0 && !force {
		return fmt.Errorf("keys activate: %d of %d live servers do not hold key %s: %s. "+
			"Give them the key file (a server reloads it within 10 s of a change, or on SIGHUP; one with its keys in the environment needs a restart) "+
			"and run this again; or --force: those servers keep encrypting with a key they hold, and values sealed with %s read NEEDS_REENTRY there until they get it",
			len(lacking), len(live), kid, serverList(lacking), kid)
	}
	return activate(ctx, db, k, kid, lacking, stdout)
}

// activate records kid as the active key and says what happens next.
func activate(ctx context.Context, db *gorm.DB, k *keyring.Keyring, kid string, forcedPast []models.Heartbeat, stdout io.Writer) error {
	previous, _, err := activeKey(ctx, db, k)
	if err != nil {
		return err
	}
	if err := models.SetActiveKey(ctx, db, kid); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s is now the active key (it was %s): servers encrypt new API keys with it within 10 s.\n"+
		"Then run 'cloudkeys keys rewrap' to move the stored API keys onto it.\n", kid, previous)
	if len(forcedPast) > 0 {
		fmt.Fprintf(stdout, "forced: %d live servers do not hold it and keep encrypting with a key they hold: %s\n", len(forcedPast), serverNames(forcedPast))
	}
	return nil
}

// lackingKey returns the servers that do not hold the key kid with the
// key-check value kcv.
func lackingKey(live []models.Heartbeat, kid, kcv string) []models.Heartbeat {
	var out []models.Heartbeat
	for _, h := range live {
		if v, ok := h.CheckValue(kid); !ok || v != kcv {
			out = append(out, h)
		}
	}
	return out
}

// serverList names servers with the keys they hold and when they were
// last seen.
func serverList(servers []models.Heartbeat) string {
	parts := make([]string, len(servers))
	for i, h := range servers {
		parts[i] = fmt.Sprintf("%s, holding %s, seen %s ago", h.Name(), strings.Join(h.KIDs(), " "), since(h.LastSeen))
	}
	return strings.Join(parts, "; ")
}

// serverNames names servers by instance ID.
func serverNames(servers []models.Heartbeat) string {
	names := make([]string, len(servers))
	for i, h := range servers {
		names[i] = h.InstanceID
	}
	return strings.Join(names, ", ")
}

func since(t time.Time) string {
	return max(time.Since(t), 0).Round(100 * time.Millisecond).String()
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

func keysRewrap(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource, force bool, wait time.Duration, stdout io.Writer) error {
	if err := checkValues(ctx, db, k, src); err != nil {
		return err
	}
	active, _, err := activeKey(ctx, db, k)
	if err != nil {
		return err
	}
	sealer, err := k.WithActive(active)
	if err != nil {
		return fmt.Errorf("keys rewrap: the active key %s (recorded in the database) is not in %s (keys: %s): "+
			"give this machine the key file the servers use", active, src, strings.Join(k.KIDs(), ", "))
	}
	if err := models.SetKeyring(db, sealer); err != nil {
		return err
	}
	kcv, _ := sealer.CheckValue(active)
	live, err := models.LiveServers(ctx, db, time.Now())
	if err != nil {
		return err
	}
	if lacking := lackingKey(live, active, kcv); len(lacking) > 0 {
		if !force {
			return fmt.Errorf("keys rewrap: %d of %d live servers do not hold the active key %s: %s. "+
				"Values rewrapped now would read NEEDS_REENTRY on them: give them the key file (reloaded within 10 s of a change, or on SIGHUP) "+
				"and run this again, or --force", len(lacking), len(live), active, serverList(lacking))
		}
		fmt.Fprintf(stdout, "forced: %d live servers do not hold the active key %s: %s\n", len(lacking), active, serverNames(lacking))
	}
	// Servers pick up a new active key within their check interval: rows
	// they seal meanwhile would still use the old key.
	behind, err := waitSealing(ctx, db, active, kcv, wait)
	if err != nil {
		return err
	}
	if len(behind) > 0 {
		fmt.Fprintf(stdout, "after %s, %d live servers still encrypt with another key: %s\n", wait, len(behind), serverNames(behind))
	}
	res, err := models.Rewrap(ctx, db, rewrapBatch, func(r models.RewrapResult) {
		fmt.Fprintf(stdout, "… %d rewrapped so far\n", r.Rewrapped)
	})
	if err != nil {
		return fmt.Errorf("rewrap stopped (run it again to continue): %w", err)
	}
	fmt.Fprintf(stdout, "rewrapped %d API keys under the active key %s.\n", res.Rewrapped, res.ActiveKID)
	if res.Repaired > 0 {
		fmt.Fprintf(stdout, "repaired %d rows whose key_id column disagreed with the kid of their JWE header.\n", res.Repaired)
	}
	if res.Changed > 0 {
		fmt.Fprintf(stdout, "%d changed while being rewrapped (their owners saved them meanwhile); run rewrap again to pick up any a server sealed with an old key.\n", res.Changed)
	}
	if res.Unreadable > 0 {
		fmt.Fprintf(stdout, "%d cannot be opened and were left as they are: 'cloudkeys keys status' says why; they read NEEDS_REENTRY until their owners enter the keys again.\n", res.Unreadable)
	}
	if len(behind) > 0 {
		fmt.Fprintf(stdout, "run rewrap again once 'cloudkeys keys status' shows every live server encrypting with %s.\n", active)
	}
	return nil
}

// waitSealing waits up to wait for every live server that holds the
// active key to encrypt with it, and returns those that still do not.
func waitSealing(ctx context.Context, db *gorm.DB, active, kcv string, wait time.Duration) ([]models.Heartbeat, error) {
	deadline := time.Now().Add(wait)
	for {
		live, err := models.LiveServers(ctx, db, time.Now())
		if err != nil {
			return nil, err
		}
		var behind []models.Heartbeat
		for _, h := range live {
			if v, ok := h.CheckValue(active); ok && v == kcv && h.ActiveKID != active {
				behind = append(behind, h)
			}
		}
		if len(behind) == 0 || !time.Now().Before(deadline) {
			return behind, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(keysPoll):
		}
	}
}

func keysRetire(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource, kid string, stdout, stderr io.Writer) error {
	if !k.Has(kid) {
		return fmt.Errorf("keys retire: there is no key %q in %s (keys: %s)", kid, src, strings.Join(k.KIDs(), ", "))
	}
	active, _, err := activeKey(ctx, db, k)
	if err != nil {
		return err
	}
	if kid == active {
		return fmt.Errorf("keys retire: %w: %q is the active key; activate another key first ('cloudkeys keys activate')", keyring.ErrActiveKey, kid)
	}
	// The database, not the file's order, says which key is active.
	for _, other := range append([]string{active}, k.KIDs()...) {
		if other != kid {
			if ka, err := k.WithActive(other); err == nil {
				k = ka
				break
			}
		}
	}
	rest, err := k.Without(kid)
	if err != nil {
		return fmt.Errorf("keys retire: %w", err)
	}
	live, err := models.LiveServers(ctx, db, time.Now())
	if err != nil {
		return err
	}
	var sealing []models.Heartbeat
	for _, h := range live {
		if h.ActiveKID == kid {
			sealing = append(sealing, h)
		}
	}
	if len(sealing) > 0 {
		return fmt.Errorf("keys retire: %d live servers still encrypt new API keys with key %q: %s. "+
			"Give them the active key %s first, then rewrap", len(sealing), kid, serverList(sealing), active)
	}
	n, err := models.CountKeyUse(ctx, db, kid, rewrapBatch)
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
	fmt.Fprintf(stdout, "removed key %s from %s (%d keys left); servers using this file drop it within 10 s (or on SIGHUP).\n", kid, src.File, len(rest.KIDs()))
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func keysStatus(ctx context.Context, db *gorm.DB, k *keyring.Keyring, src app.KeySource, stdout io.Writer) error {
	active, recorded, err := activeKey(ctx, db, k)
	if err != nil {
		return err
	}
	if sealer, err := k.WithActive(active); err == nil {
		if err := models.SetKeyring(db, sealer); err != nil {
			return err
		}
	}
	checks, err := models.KeyCheckValues(ctx, db)
	if err != nil {
		return err
	}
	live, err := models.LiveServers(ctx, db, time.Now())
	if err != nil {
		return err
	}
	u, err := models.KeyReport(ctx, db, rewrapBatch)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "key set: %s (%d keys)\n", src, len(k.KIDs()))
	if recorded != nil {
		fmt.Fprintf(stdout, "active key: %s (recorded in the database, since %s)\n", active, recorded.ActivatedAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "active key: none recorded in the database yet; servers use the first key of their set (here %s)\n", active)
	}
	if !k.Has(active) {
		fmt.Fprintf(stdout, "warning: the active key %s is not in this key set\n", active)
	}
	fmt.Fprintln(stdout)

	// The CHECK column: ok (the key's check value is the one recorded),
	// new (none recorded yet), MISMATCH (same kid, other bytes), - (not in
	// this key set).
	var mismatched []string
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tACTIVE\tIN KEY SET\tCHECK\tAPI KEYS\tCANNOT OPEN")
	for _, ku := range u.Keys {
		name := ku.KID
		if name == "" {
			name = "(none)"
		}
		check := "-"
		if kcv, ok := k.CheckValue(ku.KID); ok {
			switch rec, known := checks[ku.KID]; {
			case !known:
				check = "new"
			case rec == kcv:
				check = "ok"
			default:
				check = "MISMATCH"
				mismatched = append(mismatched, ku.KID)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", name, yesNo(ku.KID == active), yesNo(ku.InSet), check, ku.Rows, ku.Unreadable)
	}
	tw.Flush()

	fmt.Fprintf(stdout, "\nlive servers: %d\n", len(live))
	var serverMismatch, lacking, behind []string
	if len(live) > 0 {
		tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tHOST\tPID\tVERSION\tENCRYPTS WITH\tHOLDS\tLAST SEEN")
		for _, h := range live {
			holds := make([]string, len(h.Keys))
			for i, hk := range h.Keys {
				holds[i] = hk.KID
				if rec, ok := checks[hk.KID]; ok && rec != hk.KCV {
					holds[i] += "(MISMATCH)"
					serverMismatch = append(serverMismatch, fmt.Sprintf("%s under %s", h.InstanceID, hk.KID))
				}
			}
			if !h.Holds(active) {
				lacking = append(lacking, h.InstanceID)
			} else if h.ActiveKID != active {
				behind = append(behind, h.InstanceID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s ago\n", h.InstanceID, h.Hostname, h.PID, strings.ReplaceAll(h.Version, " ", "-"),
				h.ActiveKID, strings.Join(holds, ","), since(h.LastSeen))
		}
		tw.Flush()
	}
	fmt.Fprintln(stdout)

	for _, kid := range mismatched {
		fmt.Fprintf(stdout, "key-check value MISMATCH: the key under kid %s in %s is not the key the database recorded for it (same kid, other bytes); "+
			"a server with it refuses to start. Restore the key file from your backup.\n", kid, src)
	}
	if len(serverMismatch) > 0 {
		fmt.Fprintf(stdout, "key-check value MISMATCH on live servers: %s\n", strings.Join(serverMismatch, ", "))
	}
	if len(lacking) > 0 {
		fmt.Fprintf(stdout, "live servers without the active key %s: %s (they encrypt with another key; values sealed with %s read NEEDS_REENTRY there)\n",
			active, strings.Join(lacking, ", "), active)
	}
	if len(behind) > 0 {
		fmt.Fprintf(stdout, "live servers not encrypting with the active key yet: %s (they pick it up within 10 s)\n", strings.Join(behind, ", "))
	}
	if u.Mismatched > 0 {
		parts := make([]string, len(u.MismatchedIDs))
		for i, m := range u.MismatchedIDs {
			col := m.Column
			if col == "" {
				col = "(none)"
			}
			parts[i] = fmt.Sprintf("%s: key_id %s, JWE kid %s", m.ID, col, m.Header)
		}
		more := ""
		if u.Mismatched > len(parts) {
			more = fmt.Sprintf(", and %d more", u.Mismatched-len(parts))
		}
		fmt.Fprintf(stdout, "%d rows whose key_id column disagrees with the kid of their JWE header (%s%s); 'cloudkeys keys rewrap' repairs them.\n",
			u.Mismatched, strings.Join(parts, "; "), more)
	}

	unreadable := 0
	for _, n := range u.Unreadable {
		unreadable += n
	}
	fmt.Fprintf(stdout, "%d stored API keys, %d cannot be opened", u.Total, unreadable)
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
