package main

import (
	"context"
	"fmt"
	"io"
)

const usage = `usage: cloudkeys <command> [flags]

commands:
  serve     run the server (GraphQL at /graphql, playground at /)
  schema    print the GraphQL schema (SDL)
  keys      manage the encryption keys of stored API keys (status, rotate, rewrap, retire)

Run 'cloudkeys serve -h' for the flags; the README lists every environment variable.
`

// run is the whole program: main only adds the process's arguments,
// environment, streams and signals, so tests can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[1] {
	case "serve":
		return serve(ctx, args[2:], getenv, stdout, stderr)
	case "schema":
		return printSchema(stdout)
	case "keys":
		return keysCommand(ctx, args[2:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[1])
	}
}
