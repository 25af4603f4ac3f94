// Command cloudkeys is a GraphQL API server where the users of a
// model-serving dashboard sign in and keep the API keys of their cloud LLM
// providers, encrypted at rest.
//
//	cloudkeys serve [--addr host:port] [--data-dir dir] [--allow-missing-keys]
//	cloudkeys schema
//	cloudkeys keys status|rotate|rewrap|retire KID [--data-dir dir] [--database-url url]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cloudkeys:", err)
		os.Exit(1)
	}
}

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
