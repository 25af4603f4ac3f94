package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite3"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"cloudkeys/apperr"
	"cloudkeys/audit"
)

func TestNewRefusesShortKey(t *testing.T) {
	if _, err := audit.New(nil, make([]byte, audit.MinKeyLen-1), nil); !errors.Is(err, audit.ErrShortKey) {
		t.Fatalf("New with a short key: %v", err)
	}
	if _, err := audit.Verify(context.Background(), nil, []byte("short")); !errors.Is(err, audit.ErrShortKey) {
		t.Fatalf("Verify with a short key: %v", err)
	}
}

func TestActions(t *testing.T) {
	seen := map[audit.Action]bool{}
	for _, a := range audit.Actions() {
		if seen[a] || !a.Valid() || string(a) != strings.ToUpper(string(a)) {
			t.Errorf("action %q: duplicate or not a GraphQL enum name", a)
		}
		seen[a] = true
	}
	if len(seen) != 24 || !seen[audit.SignIn] || !seen[audit.ChainCheckpoint] {
		t.Fatalf("actions: %v", audit.Actions())
	}
}

func TestAppendAndVerify(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		ctx := context.Background()
		if rep := mustOK(t, db); rep.Rows != 0 || rep.Head != (audit.Link{}) {
			t.Fatalf("empty chain: %+v", rep)
		}
		c := newClock()
		l := newLog(t, db, c)
		fill(t, l, c, 10)
		// An event with every optional field empty is stored with NULLs.
		if err := l.Append(ctx, nil, audit.Event{Action: audit.KeyAdded, Outcome: audit.Succeeded}); err != nil {
			t.Fatal(err)
		}
		rep := mustOK(t, db)
		seq, mac, err := audit.Head(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != 11 || rep.From != 1 || rep.Head != (audit.Link{Seq: 11, MAC: mac}) || seq != 11 || len(mac) != 64 {
			t.Fatalf("report %+v, head %d %s", rep, seq, mac)
		}
		rows, _, err := audit.List(ctx, db, audit.Filter{First: 11})
		if err != nil {
			t.Fatal(err)
		}
		last, first := rows[0], rows[10]
		if last.ActorID != nil || last.Detail != nil || last.TargetID != nil || last.Action != audit.KeyAdded {
			t.Errorf("empty fields not NULL: %+v", last)
		}
		want := event(0)
		if first.Seq != 1 || first.PrevMAC != audit.Genesis || *first.ActorID != want.ActorID ||
			*first.Detail != want.Detail || *first.RequestID != want.RequestID || first.Outcome != want.Outcome ||
			!first.At.Equal(newClock().now()) || first.At.Location() != time.UTC {
			t.Errorf("first row: %+v", first)
		}
		if _, err := uuid.Parse(first.ID); err != nil {
			t.Errorf("id %q: %v", first.ID, err)
		}
	})
}

// Changes made directly in SQL, by someone without the key, are named.
func TestVerifyNamesTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *gorm.DB)
		seq    int64       // the row named
		fault  audit.Fault // and why
	}{
		{"update detail", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET detail = 'nothing happened' WHERE seq = 4")
		}, 4, audit.Altered},
		{"update actor to NULL", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET actor_id = NULL WHERE seq = 7")
		}, 7, audit.Altered},
		{"update a column to empty", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET target_type = '' WHERE seq = 3")
		}, 3, audit.Altered},
		{"update time", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET at = ? WHERE seq = 2", newClock().now().Add(time.Microsecond))
		}, 2, audit.Altered},
		{"update outcome", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET outcome = 'SUCCEEDED' WHERE seq = 5")
		}, 5, audit.Altered},
		{"update the mac too, without the key", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET detail = 'x', mac = ? WHERE seq = 6", strings.Repeat("ab", 32))
		}, 6, audit.Altered},
		{"delete a middle row", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE seq = 5")
		}, 6, audit.Removed},
		{"delete a middle row and renumber", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE seq = 5")
			exec(t, db, "UPDATE audit_events SET seq = seq + 1000 WHERE seq > 5")
			exec(t, db, "UPDATE audit_events SET seq = seq - 1001 WHERE seq > 1000")
		}, 5, audit.Inserted},
		{"delete the oldest rows", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE seq <= 3")
		}, 4, audit.Removed},
		{"insert a forged row at the head", func(t *testing.T, db *gorm.DB) {
			var mac string
			db.Raw("SELECT mac FROM audit_events WHERE seq = 10").Row().Scan(&mac)
			exec(t, db, `INSERT INTO audit_events (seq, id, at, action, outcome, actor_id, prev_mac, mac)
				VALUES (11, ?, ?, 'USER_PROMOTED', 'SUCCEEDED', 'mallory', ?, ?)`,
				uuid.NewString(), newClock().now().Add(11*24*time.Hour), mac, strings.Repeat("cd", 32))
		}, 11, audit.Altered},
		{"insert a copy of a genuine row", func(t *testing.T, db *gorm.DB) {
			exec(t, db, `INSERT INTO audit_events (seq, id, at, action, outcome, actor_id, target_type, target_id,
				client_addr, request_id, detail, prev_mac, mac)
				SELECT 11, ?, at, action, outcome, actor_id, target_type, target_id,
				client_addr, request_id, detail, prev_mac, mac FROM audit_events WHERE seq = 3`, uuid.NewString())
		}, 11, audit.Inserted},
		{"insert a forged row in the middle", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "UPDATE audit_events SET seq = seq + 1000 WHERE seq > 5")
			exec(t, db, "UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000")
			var mac string
			db.Raw("SELECT mac FROM audit_events WHERE seq = 5").Row().Scan(&mac)
			exec(t, db, `INSERT INTO audit_events (seq, id, at, action, outcome, prev_mac, mac)
				VALUES (6, ?, ?, 'USER_DELETED', 'SUCCEEDED', ?, ?)`,
				uuid.NewString(), newClock().now(), mac, strings.Repeat("ef", 32))
		}, 6, audit.Altered},
	}
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				exec(t, db, "DELETE FROM audit_events")
				c := newClock()
				fill(t, newLog(t, db, c), c, 10)
				mustOK(t, db)
				tc.tamper(t, db)
				rep := verify(t, db)
				if rep.OK || rep.FirstBad == nil || rep.FirstBad.Seq != tc.seq || rep.FirstBad.Fault != tc.fault {
					t.Fatalf("want row %d %s, got %+v (%v)", tc.seq, tc.fault, rep, rep.FirstBad)
				}
				if rep.FirstBad.ID != idOf(t, db, tc.seq) || rep.FirstBad.Reason == "" {
					t.Fatalf("the row named: %+v", rep.FirstBad)
				}
			})
		}
	})
}

func TestPrune(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		ctx := context.Background()
		c := newClock()
		start := c.now()
		l := newLog(t, db, c)
		fill(t, l, c, 10) // rows 1–10 at days 0–9

		if n, err := l.Prune(ctx, start); err != nil || n != 0 {
			t.Fatalf("prune with nothing to prune: %d, %v", n, err)
		}
		n, err := l.Prune(ctx, start.Add(5*24*time.Hour)) // rows 1–5
		if err != nil || n != 5 {
			t.Fatalf("prune: %d, %v", n, err)
		}
		rep := mustOK(t, db)
		if rep.From != 6 || rep.Rows != 6 || rep.Head.Seq != 11 {
			t.Fatalf("after the prune: %+v", rep)
		}
		rows, _, _ := audit.List(ctx, db, audit.Filter{Action: audit.ChainCheckpoint, First: 10})
		if len(rows) != 1 || rows[0].Seq != 11 || !strings.Contains(*rows[0].Detail, `"pruned_through_seq":5`) {
			t.Fatalf("the checkpoint: %+v", rows)
		}

		// More rows, then a second prune that deletes the first checkpoint.
		fill(t, l, c, 4) // rows 12–15
		n, err = l.Prune(ctx, c.now().Add(-2*24*time.Hour))
		if err != nil || n != 8 { // rows 6–13
			t.Fatalf("second prune: %d, %v", n, err)
		}
		if rep := mustOK(t, db); rep.From != 14 || rep.Rows != 3 || rep.Head.Seq != 16 {
			t.Fatalf("after the second prune: %+v", rep)
		}

		// Tampering after a prune is still caught.
		exec(t, db, "UPDATE audit_events SET detail = 'y' WHERE seq = 15")
		if rep := verify(t, db); rep.OK || rep.FirstBad.Seq != 15 || rep.FirstBad.Fault != audit.Altered {
			t.Fatalf("update after prune: %+v", rep.FirstBad)
		}
		// And Prune refuses to delete tampered rows.
		n, err = l.Prune(ctx, c.now())
		var broken *audit.BrokenError
		if !errors.As(err, &broken) || broken.Problem.Seq != 15 || n != 0 {
			t.Fatalf("prune over a tampered row: %d, %v", n, err)
		}
		if rep := verify(t, db); rep.Rows != 3 {
			t.Fatalf("the refused prune deleted rows: %+v", rep)
		}
	})
}

func TestPruneThenTamper(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *gorm.DB)
		seq    int64
		fault  audit.Fault
	}{
		{"delete the oldest remaining row", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE seq = 6")
		}, 7, audit.Removed},
		{"delete the checkpoint", func(t *testing.T, db *gorm.DB) {
			exec(t, db, "DELETE FROM audit_events WHERE seq = 11")
		}, 12, audit.Removed},
		{"alter the checkpoint's claim", func(t *testing.T, db *gorm.DB) {
			exec(t, db, `UPDATE audit_events SET detail = REPLACE(detail, '"pruned_through_seq":5', '"pruned_through_seq":4') WHERE seq = 11`)
			exec(t, db, "DELETE FROM audit_events WHERE seq = 6") // hoping the claim now covers it
		}, 11, audit.Altered},
	}
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				exec(t, db, "DELETE FROM audit_events")
				c := newClock()
				start := c.now()
				l := newLog(t, db, c)
				fill(t, l, c, 10)
				if _, err := l.Prune(context.Background(), start.Add(5*24*time.Hour)); err != nil {
					t.Fatal(err)
				}
				fill(t, l, c, 2) // rows 12, 13 after the checkpoint
				mustOK(t, db)
				tc.tamper(t, db)
				rep := verify(t, db)
				if rep.OK || rep.FirstBad.Seq != tc.seq || rep.FirstBad.Fault != tc.fault {
					t.Fatalf("want row %d %s, got %v", tc.seq, tc.fault, rep.FirstBad)
				}
			})
		}
	})
}

// Pruning every row leaves the checkpoint alone, which verifies.
func TestPruneEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		c := newClock()
		l := newLog(t, db, c)
		fill(t, l, c, 5)
		if n, err := l.Prune(context.Background(), c.now().Add(time.Hour)); err != nil || n != 5 {
			t.Fatalf("prune: %d, %v", n, err)
		}
		if rep := mustOK(t, db); rep.Rows != 1 || rep.From != 6 {
			t.Fatalf("%+v", rep)
		}
		fill(t, l, c, 1)
		if n, err := l.Prune(context.Background(), c.now().Add(time.Hour)); err != nil || n != 2 {
			t.Fatalf("prune again: %d, %v", n, err)
		}
		if rep := mustOK(t, db); rep.Rows != 1 || rep.From != 8 {
			t.Fatalf("%+v", rep)
		}
	})
}

// Two replicas appending at once keep one contiguous, verifiable chain.
func TestConcurrentReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		a, b := d.open(t), d.open(t)
		const each = 50
		var wg sync.WaitGroup
		errs := make(chan error, 2*each)
		for r, db := range []*gorm.DB{a, b} {
			l := newLog(t, db, nil)
			for i := range each {
				wg.Go(func() {
					e := event(i)
					e.Detail = fmt.Sprintf("replica %d event %d", r, i)
					if i%2 == 0 {
						errs <- db.Transaction(func(tx *gorm.DB) error { return l.Append(context.Background(), tx, e) })
					} else {
						errs <- l.Append(context.Background(), nil, e)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		rep := mustOK(t, a)
		var n, lo, hi int64
		a.Raw("SELECT COUNT(*), MIN(seq), MAX(seq) FROM audit_events").Row().Scan(&n, &lo, &hi)
		if rep.Rows != 2*each || n != 2*each || lo != 1 || hi != 2*each {
			t.Fatalf("rows %d, seq %d–%d, report %+v", n, lo, hi, rep)
		}
	})
}

// An audit row commits or rolls back with its operation.
func TestAppendInCallerTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		l := newLog(t, db, nil)
		ctx := context.Background()
		failed := errors.New("the operation failed")
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := l.Append(ctx, tx, event(1)); err != nil {
				return err
			}
			return failed
		})
		if !errors.Is(err, failed) {
			t.Fatal(err)
		}
		if seq, _, _ := audit.Head(ctx, db); seq != 0 {
			t.Fatalf("a rolled-back operation left its audit row: head %d", seq)
		}
		// A row that cannot be written fails the operation.
		err = db.Transaction(func(tx *gorm.DB) error {
			return l.Append(ctx, tx, audit.Event{Action: "SOMETHING", Outcome: audit.Succeeded})
		})
		if err == nil {
			t.Fatal("an unknown action was recorded")
		}
		if err := l.Append(ctx, nil, audit.Event{Action: audit.ChainCheckpoint, Outcome: audit.Succeeded}); err == nil {
			t.Fatal("Append wrote a checkpoint")
		}
		if err := l.Append(ctx, nil, audit.Event{Action: audit.SignIn}); err == nil {
			t.Fatal("Append took an event without an outcome")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := l.Append(cctx, nil, event(2)); err == nil {
			t.Fatal("Append with a cancelled context reported success")
		}
		if err := db.Transaction(func(tx *gorm.DB) error { return l.Append(ctx, tx, event(3)) }); err != nil {
			t.Fatal(err)
		}
		if rep := mustOK(t, db); rep.Rows != 1 || rep.Head.Seq != 1 {
			t.Fatalf("%+v", rep)
		}
	})
}

func TestAppendOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		a, b := d.open(t), d.open(t)
		ctx := context.Background()
		c := newClock()
		la, lb := newLog(t, a, c), newLog(t, b, c)
		refusal := audit.Event{Action: audit.SignIn, Outcome: audit.Refused, TargetType: "email", ClientAddr: "198.51.100.1"}
		const window = 15 * time.Minute

		// A flood from two replicas at once records one refusal.
		var wg sync.WaitGroup
		var mu sync.Mutex
		recorded := 0
		for i := range 40 {
			l := la
			if i%2 == 1 {
				l = lb
			}
			wg.Go(func() {
				ok, err := l.AppendOnce(ctx, nil, refusal, window, "email:ann@example.com", "addr:198.51.100.1")
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					recorded++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if recorded != 1 || mustOK(t, a).Rows != 1 {
			t.Fatalf("a flood recorded %d refusals", recorded)
		}
		// Another address is recorded once too; a known one is not.
		for range 3 {
			la.AppendOnce(ctx, nil, refusal, window, "email:ann@example.com", "addr:203.0.113.9")
		}
		if ok, _ := la.AppendOnce(ctx, nil, refusal, window, "email:ann@example.com"); ok {
			t.Fatal("a refusal within the window was recorded")
		}
		// The same key for another action has a window of its own.
		if ok, err := la.AppendOnce(ctx, nil, audit.Event{Action: audit.RefreshTokenReused, Outcome: audit.Refused},
			window, "email:ann@example.com"); !ok || err != nil {
			t.Fatalf("another action: %v, %v", ok, err)
		}
		// After the window, the next refusal is recorded.
		c.add(window)
		if ok, err := lb.AppendOnce(ctx, nil, refusal, window, "email:ann@example.com"); !ok || err != nil {
			t.Fatalf("after the window: %v, %v", ok, err)
		}
		if rep := mustOK(t, a); rep.Rows != 4 {
			t.Fatalf("rows: %+v", rep)
		}
		if _, err := la.AppendOnce(ctx, nil, refusal, window); err == nil {
			t.Fatal("AppendOnce without a key")
		}
		// Prune forgets ended windows.
		c.add(window)
		if _, err := la.Prune(ctx, c.now().Add(-365*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		var windows int64
		a.Raw("SELECT COUNT(*) FROM audit_dedup").Row().Scan(&windows)
		if windows != 0 {
			t.Fatalf("%d ended windows kept", windows)
		}
	})
}

// Every field is bounded and cleaned, and what is stored is what verifies.
func TestFieldsBounded(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		ctx := context.Background()
		l := newLog(t, db, nil)
		e := audit.Event{
			Action:     audit.CredentialUpdated,
			Outcome:    audit.Succeeded,
			ActorID:    strings.Repeat("a", 1000),
			TargetType: strings.Repeat("t", 1000),
			TargetID:   strings.Repeat("é", 1000), // 2 bytes each: cut at a character boundary
			ClientAddr: strings.Repeat("1", 1000),
			RequestID:  "req\x00\n\x1b[31m" + strings.Repeat("r", 1000) + "\xff",
			Detail:     strings.Repeat("€", 10000),
		}
		if err := l.Append(ctx, nil, e); err != nil {
			t.Fatal(err)
		}
		rows, _, err := audit.List(ctx, db, audit.Filter{First: 1})
		if err != nil {
			t.Fatal(err)
		}
		r := rows[0]
		for _, f := range []struct {
			name string
			v    *string
			max  int
		}{
			{"actor", r.ActorID, audit.MaxIDLen}, {"target type", r.TargetType, audit.MaxTargetTypeLen},
			{"target", r.TargetID, audit.MaxIDLen}, {"address", r.ClientAddr, audit.MaxClientAddrLen},
			{"request", r.RequestID, audit.MaxIDLen}, {"detail", r.Detail, audit.MaxDetailLen},
		} {
			if f.v == nil || len(*f.v) > f.max || len(*f.v) < f.max-3 || !utf8.ValidString(*f.v) {
				t.Errorf("%s: %d bytes, valid %v", f.name, len(*f.v), utf8.ValidString(*f.v))
			}
			for _, ch := range *f.v {
				if ch < 0x20 || ch == 0x7f {
					t.Errorf("%s keeps control character %q", f.name, ch)
				}
			}
		}
		mustOK(t, db)
	})
}

func TestList(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		ctx := context.Background()
		c := newClock()
		l := newLog(t, db, c)
		fill(t, l, c, 30)

		// Pages of 7, newest first, each going on after the last.
		var seqs []int64
		after := ""
		for pages := 0; ; pages++ {
			rows, more, err := audit.List(ctx, db, audit.Filter{First: 7, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				seqs = append(seqs, r.Seq)
			}
			if !more {
				if pages != 4 || len(rows) != 2 {
					t.Fatalf("page %d has %d rows", pages, len(rows))
				}
				break
			}
			after = rows[len(rows)-1].Cursor()
		}
		for i, s := range seqs {
			if s != int64(30-i) {
				t.Fatalf("order: %v", seqs)
			}
		}

		count := func(f audit.Filter, want int, check func(audit.Row) bool) {
			t.Helper()
			f.First = audit.MaxPage
			rows, more, err := audit.List(ctx, db, f)
			if err != nil || more || len(rows) != want {
				t.Fatalf("%+v: %d rows, more %v, %v", f, len(rows), more, err)
			}
			for _, r := range rows {
				if !check(r) {
					t.Fatalf("%+v: row %+v", f, r)
				}
			}
		}
		is := func(p *string, v string) bool { return p != nil && *p == v }
		count(audit.Filter{Action: audit.SignIn}, 2, func(r audit.Row) bool { return r.Action == audit.SignIn })
		count(audit.Filter{ActorID: "actor-1"}, 10, func(r audit.Row) bool { return is(r.ActorID, "actor-1") })
		count(audit.Filter{TargetID: "target-2"}, 7, func(r audit.Row) bool { return is(r.TargetID, "target-2") })
		count(audit.Filter{ActorID: "actor-1", TargetID: "target-1"}, 3, func(r audit.Row) bool { return r.Seq%12 == 2 })
		// actor-0 (i%3 == 0) or target-0 (i%4 == 0): 10 + 8 - 3.
		count(audit.Filter{User: "actor-0"}, 10, func(r audit.Row) bool { return is(r.ActorID, "actor-0") })
		exec(t, db, "UPDATE audit_events SET target_id = 'actor-0' WHERE target_id = 'target-0'") // (breaks the chain; listing does not care)
		count(audit.Filter{User: "actor-0"}, 15, func(r audit.Row) bool { return is(r.ActorID, "actor-0") || is(r.TargetID, "actor-0") })
		count(audit.Filter{Since: newClock().now().Add(25 * 24 * time.Hour)}, 5, func(r audit.Row) bool { return r.Seq > 25 })

		for _, tc := range []struct {
			f     audit.Filter
			field string
		}{
			{audit.Filter{}, "first"},
			{audit.Filter{First: audit.MaxPage + 1}, "first"},
			{audit.Filter{First: 1, After: "not a cursor"}, "after"},
			{audit.Filter{First: 1, After: "MTIz"}, "after"}, // base64 of "123": another list's
			{audit.Filter{First: 1, Action: "DROP_TABLE"}, "action"},
		} {
			_, _, err := audit.List(ctx, db, tc.f)
			if e := apperr.As(err); e == nil || e.Code != apperr.Invalid || e.Field != tc.field {
				t.Errorf("%+v: %v", tc.f, err)
			}
		}
	})
}

// The migration goes down and up again (models only ever migrates up).
func TestMigrationDownAndUp(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		db := d.open(t)
		fill(t, newLog(t, db, nil), nil, 3)
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		var target database.Driver
		if d.backend == "postgres" {
			target, err = migratepgx.WithInstance(sqlDB, &migratepgx.Config{})
		} else {
			target, err = migratesqlite.WithInstance(sqlDB, &migratesqlite.Config{})
		}
		if err != nil {
			t.Fatal(err)
		}
		src, err := iofs.New(os.DirFS(filepath.Join("..", "models", "migrations", d.backend)), ".")
		if err != nil {
			t.Fatal(err)
		}
		m, err := migrate.NewWithInstance("iofs", src, d.backend, target)
		if err != nil {
			t.Fatal(err)
		}
		count := func() int64 {
			var n int64
			db.Raw("SELECT COUNT(*) FROM audit_events").Row().Scan(&n)
			return n
		}
		prev, err := src.Prev(5)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Migrate(prev); err != nil {
			t.Fatalf("down to %d: %v", prev, err)
		}
		if err := db.Exec("SELECT 1 FROM audit_events").Error; err == nil {
			t.Fatal("audit_events survived its down migration")
		}
		if err := m.Up(); err != nil {
			t.Fatalf("up again: %v", err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d rows after up", n)
		}
	})
}
