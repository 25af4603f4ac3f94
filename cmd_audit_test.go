package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"cloudkeys/audit"
)

// cloudkeys audit verify passes on an intact chain and names the row after
// an update, a delete and an insert made directly in the database, on
// SQLite and PostgreSQL.
func TestAuditVerifyCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t)
			if backend == "postgres" {
				postgresEnv(t, e)
			}
			app := e.open(t)
			ctx := context.Background()
			for i := range 5 {
				if err := app.Audit.Append(ctx, nil, audit.Event{Action: audit.UserRegistered, Outcome: audit.Succeeded,
					TargetType: "user", TargetID: "u" + strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
			app.Close()
			if out := e.mustRun(t, "audit", "verify"); !strings.Contains(out, "verifies: 5 rows (1 to 5)") {
				t.Fatalf("intact chain: %s", out)
			}
			if _, _, err := e.run(t, "audit", "verify", "--head", "7"); err == nil || !strings.Contains(err.Error(), "newest rows were removed") {
				t.Fatalf("--head past the chain: %v", err)
			}
			// The head a server exported: its MAC must still be the row's.
			app = e.open(t)
			seq, mac, err := audit.Head(ctx, app.DB)
			app.Close()
			if err != nil || seq != 5 {
				t.Fatalf("head %d %v", seq, err)
			}
			e.mustRun(t, "audit", "verify", "--head", "5:"+mac)
			if _, _, err := e.run(t, "audit", "verify", "--head", "5:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "rewritten") {
				t.Fatalf("--head with another MAC: %v", err)
			}
			if _, _, err := e.run(t, "audit", "verify", "--head", "x"); err == nil {
				t.Fatal("--head x accepted")
			}

			exec := func(sql string) {
				t.Helper()
				app := e.open(t)
				defer app.Close()
				if err := app.DB.Exec(sql).Error; err != nil {
					t.Fatal(err)
				}
			}
			fails := func(want string) {
				t.Helper()
				_, _, err := e.run(t, "audit", "verify")
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("verify: %v, want it to name %q", err, want)
				}
			}
			exec("UPDATE audit_events SET target_id = 'someone-else' WHERE seq = 3")
			fails("row 3 (")
			fails("ALTERED")
			exec("UPDATE audit_events SET target_id = 'u2' WHERE seq = 3")
			e.mustRun(t, "audit", "verify")

			exec("DELETE FROM audit_events WHERE seq = 2")
			fails("REMOVED")
		})
	}
}

// An inserted row is named too (on a fresh chain).
func TestAuditVerifyNamesAnInsertedRow(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	ctx := context.Background()
	for range 3 {
		if err := app.Audit.Append(ctx, nil, audit.Event{Action: audit.SignedOut, Outcome: audit.Succeeded}); err != nil {
			t.Fatal(err)
		}
	}
	// A forged row appended by someone without the key: any MAC they choose is wrong.
	if err := app.DB.Exec(`INSERT INTO audit_events (seq, id, at, action, outcome, prev_mac, mac)
		SELECT 4, '00000000-0000-0000-0000-000000000004', at, 'USER_DELETED', 'SUCCEEDED', mac, mac FROM audit_events WHERE seq = 3`).Error; err != nil {
		t.Fatal(err)
	}
	app.Close()
	_, _, err := e.run(t, "audit", "verify")
	if err == nil || !strings.Contains(err.Error(), "row 4 (") {
		t.Fatalf("verify: %v, want it to name row 4", err)
	}
}

// The key commands are in the audit trail, and it still verifies.
func TestKeyCommandsAreAudited(t *testing.T) {
	e := newEnv(t)
	app := e.open(t)
	old := app.Keys().ActiveKID()
	app.Close()
	e.mustRun(t, "keys", "rotate")
	e.mustRun(t, "keys", "rewrap")
	e.mustRun(t, "keys", "retire", old)
	e.mustRun(t, "keys", "add")
	app = e.open(t)
	defer app.Close()
	rows, _, err := audit.List(context.Background(), app.DB, audit.Filter{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if strings.HasPrefix(string(r.Action), "KEY_") {
			got = append(got, string(r.Action))
			if r.ClientAddr == nil || !strings.HasPrefix(*r.ClientAddr, "cli@") {
				t.Errorf("%s: client address %v", r.Action, r.ClientAddr)
			}
		}
	}
	want := "KEY_ADDED KEY_ACTIVATED KEY_REWRAPPED KEY_RETIRED KEY_ADDED"
	if strings.Join(got, " ") != want {
		t.Fatalf("key events %v, want %s", got, want)
	}
	if out := e.mustRun(t, "audit", "verify"); !strings.Contains(out, "verifies") {
		t.Fatal(out)
	}
}
