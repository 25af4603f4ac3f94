package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"cloudkeys/app"
)

const usage = `usage: cloudkeys <command> [flags]

commands:
  serve                run the server (GraphQL at /graphql, playground at /)
  init                 write a production JWT secret, key set and audit key; print the variables to set
  migrate              apply the pending database migrations
  users create-admin   create an approved admin (password on standard input)
  keys                 manage the encryption keys of stored API keys (status, add, activate, rotate, rewrap, retire)
  audit verify         check the audit trail's chain; name the first row altered, inserted or removed
  schema               print the GraphQL schema (SDL)
  version              print the version and VCS revision (also --version)

Run 'cloudkeys <command> -h' for a command's flags; the README lists every
environment variable.
`

// run is the whole program: main only adds the process's arguments,
// environment, streams and signals, so tests can run it in-process. A
// wrong command line returns a *usageError (exit 2) after printing the
// usage; -h/--help prints it and returns nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return &usageError{errors.New("no command given")}
	}
	cmd, rest := args[1], args[2:]
	if cmd == "help" && len(rest) > 0 { // cloudkeys help serve = cloudkeys serve -h
		cmd, rest = rest[0], append(rest[1:], "-h")
	}
	switch cmd {
	case "serve":
		return serveCommand(ctx, rest, getenv, stdout, stderr)
	case "init":
		return initCommand(rest, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, rest, getenv, stdout, stderr)
	case "users":
		return usersCommand(ctx, rest, getenv, stdin, stdout, stderr)
	case "keys":
		return keysCommand(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return auditCommand(ctx, rest, getenv, stdout, stderr)
	case "schema":
		return schemaCommand(rest, stdout, stderr)
	case "version", "--version", "-version":
		return versionCommand(rest, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "cloudkeys: unknown command %q\n\n%s", cmd, usage)
		return &usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}

// runMain runs the program and returns the process's exit status: 0, 2 for
// a wrong command line (the usage is printed already), 1 for a failure,
// which it reports on stderr in the configured log format: always through
// the logger for serve (its start-up failures read like its other log
// lines), and for the other commands as JSON when CLOUDKEYS_LOG_FORMAT=json
// and as one plain line otherwise.
func runMain(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, getenv, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		return 2
	}
	name := "cloudkeys"
	if len(args) > 1 {
		name += " " + args[1]
		if (args[1] == "keys" || args[1] == "users") && len(args) > 2 && !strings.HasPrefix(args[2], "-") {
			name += " " + args[2]
		}
	}
	format := getenv("CLOUDKEYS_LOG_FORMAT")
	if strings.EqualFold(format, "json") || (len(args) > 1 && args[1] == "serve") {
		app.NewLogger(stderr, format, "info").Error(name+" failed", "error", err.Error())
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return 1
}
