package server_test

import (
	"testing"
)

func TestRegisterFirstUserIsApprovedAdmin(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	c := app.client(t)
	first := c.register("  Ada@Example.COM ", "correct horse")
	if first.Email != "ada@example.com" || !first.IsAdmin || first.Status != "APPROVED" {
		t.Fatalf("first user: %+v", first)
	}
	second := c.register("bob@example.com", "correct horse")
	if second.IsAdmin || second.Status != "PENDING" {
		t.Fatalf("second user: %+v", second)
	}
	if first.ID == second.ID || len(first.ID) != 36 {
		t.Fatalf("ids: %q %q", first.ID, second.ID)
	}
}
