package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/internal/pgtest"
	"cloudkeys/models"
)

// testKey is the audit key of the tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// freshPostgres returns the URL of a new schema of the test server,
// dropped when the test ends (pgtest.Schema).
func freshPostgres(t testing.TB) string { return pgtest.Schema(t) }

// testDB is one test database: open returns a new handle on it (a
// replica), migrated by models.Open.
type testDB struct {
	backend string
	opts    models.Options
}

func (d testDB) open(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := models.Open(context.Background(), d.opts)
	if err != nil {
		t.Fatalf("models.Open: %v", err)
	}
	t.Cleanup(func() { models.Close(db) })
	return db
}

// eachBackend runs f, in parallel, on a fresh SQLite file and on a fresh
// PostgreSQL schema.
func eachBackend(t *testing.T, f func(t *testing.T, d testDB)) {
	t.Helper()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			d := testDB{backend: backend, opts: models.Options{MaxOpenConns: 8}}
			if backend == "postgres" {
				d.opts.URL = freshPostgres(t)
			} else {
				d.opts.URL = filepath.Join(t.TempDir(), "cloudkeys.db")
			}
			f(t, d)
		})
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLog(t testing.TB, db *gorm.DB, c *clock) *audit.Log {
	t.Helper()
	var now func() time.Time
	if c != nil {
		now = c.now
	}
	l, err := audit.New(db, testKey, now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// event is the i-th event of fill: varied actions, actors and targets.
func event(i int) audit.Event {
	acts := audit.Actions()
	return audit.Event{
		Action:     acts[i%(len(acts)-1)], // never CHAIN_CHECKPOINT
		Outcome:    []audit.Outcome{audit.Succeeded, audit.Failed, audit.Refused}[i%3],
		ActorID:    fmt.Sprintf("actor-%d", i%3),
		TargetType: "user",
		TargetID:   fmt.Sprintf("target-%d", i%4),
		ClientAddr: "192.0.2.7",
		RequestID:  fmt.Sprintf("req-%d", i),
		Detail:     fmt.Sprintf("event %d — ünïcode", i),
	}
}

// fill appends n events, the clock moving a day after each.
func fill(t testing.TB, l *audit.Log, c *clock, n int) {
	t.Helper()
	for i := range n {
		if err := l.Append(context.Background(), nil, event(i)); err != nil {
			t.Fatal(err)
		}
		if c != nil {
			c.add(24 * time.Hour)
		}
	}
}

func verify(t testing.TB, db *gorm.DB) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), db, testKey)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func mustOK(t testing.TB, db *gorm.DB) audit.Report {
	t.Helper()
	rep := verify(t, db)
	if !rep.OK {
		t.Fatalf("Verify: not OK: %v", rep.FirstBad)
	}
	return rep
}

func exec(t testing.TB, db *gorm.DB, q string, args ...any) {
	t.Helper()
	if err := db.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func idOf(t testing.TB, db *gorm.DB, seq int64) string {
	t.Helper()
	var id string
	if err := db.Raw("SELECT id FROM audit_events WHERE seq = ?", seq).Row().Scan(&id); err != nil {
		t.Fatalf("id of row %d: %v", seq, err)
	}
	return id
}
