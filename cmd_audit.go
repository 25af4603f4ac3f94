package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"cloudkeys/app"
	"cloudkeys/audit"
	"cloudkeys/config"
)

const auditUsage = `usage: cloudkeys audit <command> [flags]

commands:
  verify   recompute the audit trail's chain and name the first row altered,
           inserted or removed

Run 'cloudkeys audit <command> -h' for a command's flags.
`

const auditVerifyAbout = `Recompute the audit trail's chain (HMAC-SHA256 under the audit key, SPEC §9)
and exit 0 if every row verifies, 1 naming the first row that was altered,
inserted or removed. The database is found as 'cloudkeys serve' finds it; the
key is CLOUDKEYS_AUDIT_KEY or CLOUDKEYS_AUDIT_KEY_FILE (in development, the
data directory's generated audit-key). It writes nothing and may run while
servers run.

Removing the newest rows leaves a chain that verifies: compare the head this
prints with the head servers log once a minute ("audit chain head") and
export in their metrics, or pass the last head you trust as --head SEQ:MAC.`

// auditCommand runs `cloudkeys audit …`.
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	g := group{name: "audit", usage: auditUsage}
	_, rest, done, err := g.pick(args, []string{"verify"}, stdout, stderr)
	if done {
		return err
	}
	c := newCommand("audit verify", "cloudkeys audit verify [flags]", auditVerifyAbout)
	cfg := config.Read(getenv)
	cfg.DatabaseFlags(c.fs)
	head := c.fs.String("head", "", "a head seen before, SEQ or SEQ:MAC (a server's \"audit chain head\" log line or its metrics): fail unless the chain still holds it")
	positional, err := c.parse(rest, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(positional, stderr); err != nil {
		return err
	}
	if err := cfg.Finish(false); err != nil {
		return err
	}
	var seen audit.Link
	if *head != "" {
		seqText, mac, _ := strings.Cut(*head, ":")
		seq, err := strconv.ParseInt(seqText, 10, 64)
		if err != nil || seq < 1 {
			return c.usageError(stderr, "--head is SEQ or SEQ:MAC, e.g. --head 1042:9f86d08…, not %q", *head)
		}
		seen = audit.Link{Seq: seq, MAC: mac}
	}
	rep, err := app.VerifyAudit(ctx, cfg, seen)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("the audit trail of %s does not verify: %s", cfg.DatabaseName(), rep.FirstBad)
	}
	if rep.Rows == 0 {
		fmt.Fprintf(stdout, "the audit trail of %s is empty.\n", cfg.DatabaseName())
		return nil
	}
	fmt.Fprintf(stdout, "the audit trail of %s verifies: %d rows (%d to %d); head %d %s\n",
		cfg.DatabaseName(), rep.Rows, rep.From, rep.Head.Seq, rep.Head.Seq, rep.Head.MAC)
	return nil
}
