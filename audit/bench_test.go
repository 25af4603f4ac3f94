package audit_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/models"
)

// BenchmarkAuditedWrite measures what recording an event adds to a write:
// a transaction inserting one row (the operation), alone and with an
// audit.Log.Do around it (the operation and its event in one transaction,
// the chain locked and its head read), interleaved in one run so that the
// ratio, not an absolute time, is the result.
//
//	go test -run '^$' -bench AuditedWrite -benchtime 2000x -count 3 ./audit/
func BenchmarkAuditedWrite(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			opts := models.Options{URL: filepath.Join(b.TempDir(), "cloudkeys.db")}
			if backend == "postgres" {
				opts.URL = freshPostgres(b)
			}
			db, err := models.Open(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer models.Close(db)
			if err := db.Exec("CREATE TABLE bench_ops (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").Error; err != nil {
				b.Fatal(err)
			}
			trail, err := audit.New(db, testKey, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			n := 0
			insert := func(tx *gorm.DB) error {
				n++
				return tx.Exec("INSERT INTO bench_ops (id, v) VALUES (?, ?)", n, "value").Error
			}
			var plain, audited time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := db.WithContext(ctx).Transaction(insert); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := trail.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
					return audit.Event{Action: audit.CredentialCreated, Outcome: audit.Succeeded, ActorID: "u", TargetType: "credential", TargetID: "c"}, insert(tx)
				}); err != nil {
					b.Fatal(err)
				}
				plain, audited = plain+mid.Sub(start), audited+time.Since(mid)
			}
			b.ReportMetric(float64(plain.Nanoseconds())/float64(b.N), "plain-ns/op")
			b.ReportMetric(float64(audited.Nanoseconds())/float64(b.N), "audited-ns/op")
			b.ReportMetric(float64(audited)/float64(plain), "audited/plain")
		})
	}
}
