package main

import (
	"fmt"
	"io"
	"strings"

	"cloudkeys/app"
)

const initAbout = `Write the secrets a production server needs into DIR (created 0700 if
missing), each file mode 0600:

  jwt-secret            the JWT secret (256 random bits): CLOUDKEYS_JWT_SECRET_FILE
  encryption-keys.json  a JWK Set with one new A256KW key: CLOUDKEYS_ENCRYPTION_KEYS_FILE
  audit-key             the audit key (256 random bits): CLOUDKEYS_AUDIT_KEY_FILE

It never overwrites: if any of them exists, it writes nothing and fails. On
standard output it prints the variables to set, as NAME=value lines (an
environment file for systemd or docker, or 'set -a; . FILE' in a shell) with
comments. Back the key file up apart from the database: it is the only way to
read the stored API keys.`

// initCommand runs `cloudkeys init`.
func initCommand(args []string, stdout, stderr io.Writer) error {
	c := newCommand("init", "cloudkeys init [--dir DIR]", initAbout)
	dir := c.fs.String("dir", ".", "directory to write the files into")
	rest, err := c.parse(args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest, stderr); err != nil {
		return err
	}
	if *dir == "" {
		return c.usageError(stderr, "--dir must name a directory")
	}
	f, err := app.Init(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `# cloudkeys init wrote (each mode 0600, readable by its owner only):
#   %s (the JWT secret)
#   %s (the encryption keys; active key %s)
#   %s (the audit key)
# Back up the key file apart from the database: without it no stored API key can be read.
# Give every server, and the cloudkeys commands, these variables:
CLOUDKEYS_ENV=production
CLOUDKEYS_JWT_SECRET_FILE=%s
CLOUDKEYS_ENCRYPTION_KEYS_FILE=%s
CLOUDKEYS_AUDIT_KEY_FILE=%s
# Then: cloudkeys migrate; cloudkeys users create-admin --email you@example.com (password on standard input); cloudkeys serve
`, f.JWTSecret, f.EncryptionKeys, f.ActiveKID, f.AuditKey,
		shellQuote(f.JWTSecret), shellQuote(f.EncryptionKeys), shellQuote(f.AuditKey))
	return nil
}

// shellQuote quotes a value for a NAME=value line when it needs it.
func shellQuote(s string) string {
	if !strings.ContainsAny(s, " \t\n'\"\\$`#;&|<>()*?[]{}~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
