package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"cloudkeys/app"
	"cloudkeys/config"
)

const usersUsage = `usage: cloudkeys users <command> [flags]

commands:
  create-admin --email E   create an approved admin; the password is read
                           from standard input (one line)

Run 'cloudkeys users <command> -h' for a command's flags.
`

const createAdminAbout = `Create a new account that is an approved admin, with the password read from
standard input (one line, 8 to 128 characters; the line break is not part of
it), e.g.

  printf '%s\n' "$PASSWORD" | cloudkeys users create-admin --email ada@example.com

This is how the first admin of a production server is made: there the first
'register' is not an admin (unless CLOUDKEYS_FIRST_USER_ADMIN=true). An
email that already has an account is refused and that account left as it is;
to make it an admin, sign in as an admin and use updateUser. The database is
found as 'cloudkeys serve' finds it and must be migrated ('cloudkeys
migrate'); the password is hashed with the configured Argon2id parameters.
No JWT secret or key is needed.`

// usersCommand runs `cloudkeys users …`.
func usersCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := group{name: "users", usage: usersUsage}
	_, rest, done, err := g.pick(args, []string{"create-admin"}, stdout, stderr)
	if done {
		return err
	}
	c := newCommand("users create-admin", "cloudkeys users create-admin --email E [flags] < password", createAdminAbout)
	cfg := config.Read(getenv)
	email := c.fs.String("email", "", "the new admin's email (required)")
	cfg.DatabaseFlags(c.fs)
	positional, err := c.parse(rest, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(positional, stderr); err != nil {
		return err
	}
	if strings.TrimSpace(*email) == "" {
		return c.usageError(stderr, "--email is required")
	}
	if err := cfg.Finish(false); err != nil {
		return err
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	u, err := app.CreateAdmin(ctx, cfg, *email, password)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s: an approved admin (id %s) in %s. Sign in with login.\n", u.Email, u.ID, cfg.DatabaseName())
	return nil
}

// maxPasswordLine bounds the line read: far above the 128 characters a
// password may have (4 bytes each), so a longer one is refused by the
// password rule rather than cut.
const maxPasswordLine = 4096

// readPassword reads one line from r, without its line break.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no password: pipe it on standard input, one line")
	}
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxPasswordLine), maxPasswordLine).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on standard input: give it as one line, e.g. printf '%s\\n' \"$PASSWORD\" | cloudkeys users create-admin --email E")
	}
	return line, nil
}
