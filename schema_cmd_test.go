package main

import (
	"bytes"
	"context"
	"testing"

	"cloudkeys/schema"
)

// TestSchemaCommand: `cloudkeys schema` prints the schema files, the same
// SDL /schema.graphql serves.
func TestSchemaCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	getenv := func(string) string { return "" }
	if err := run(context.Background(), []string{"cloudkeys", "schema"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("cloudkeys schema: %v (%s)", err, stderr.String())
	}
	if stdout.String() != schema.SDL() || stdout.Len() == 0 {
		t.Fatalf("cloudkeys schema printed %d bytes, want schema.SDL() (%d bytes)", stdout.Len(), len(schema.SDL()))
	}
}
