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
