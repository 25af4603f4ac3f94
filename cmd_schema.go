package main

import (
	"io"

	"cloudkeys/schema"
)

// printSchema runs `cloudkeys schema`: the SDL of the API on stdout.
func printSchema(stdout io.Writer) error {
	_, err := io.WriteString(stdout, schema.SDL())
	return err
}
