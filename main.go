// Command cloudkeys is a GraphQL API server where the users of a
// model-serving dashboard sign in and keep the API keys of their cloud LLM
// providers, encrypted at rest.
//
//	cloudkeys serve [--addr host:port] [--data-dir dir] [--database-url url] [--allow-missing-keys] [--no-migrate]
//	cloudkeys init [--dir dir]
//	cloudkeys migrate [--data-dir dir] [--database-url url]
//	cloudkeys users create-admin --email E [--data-dir dir] [--database-url url]  (password on stdin)
//	cloudkeys keys status|add|activate KID|rotate|rewrap|retire KID [--data-dir dir] [--database-url url] [--force] [--wait d]
//	cloudkeys schema
//	cloudkeys version
//
// Every command answers -h/--help with its flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
