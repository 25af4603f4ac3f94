package main

import (
	"io"

	"cloudkeys/schema"
)

// schemaCommand runs `cloudkeys schema`: the SDL of the API on stdout.
func schemaCommand(args []string, stdout, stderr io.Writer) error {
	c := newCommand("schema", "cloudkeys schema",
		"Print the GraphQL schema of the API (SDL) on standard output: the schema files,\nas the server serves them at /schema.graphql in development.")
	rest, err := c.parse(args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest, stderr); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, schema.SDL())
	return err
}
