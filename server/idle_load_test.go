package server_test

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

// BenchmarkIdleServerLoad counts the statements an idle server sends to
// its database (heartbeats, the active-key check, the audit head, usage
// flushes, pruning), with the intervals shortened, and reports them per
// minute at the default intervals (10 s each; the audit head once a
// minute):
//
//	go test -run '^$' -bench IdleServerLoad -benchtime 1x ./server/
func BenchmarkIdleServerLoad(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			cfg := testConfig(b)
			if backend == "postgres" {
				usePostgres(b, cfg)
			}
			const speedup = 50 // 10 s → 200 ms
			cfg.HeartbeatInterval = 10 * time.Second / speedup
			cfg.HeartbeatLive = 3 * cfg.HeartbeatInterval
			cfg.KeyCheckInterval = 10 * time.Second / speedup
			cfg.RelayUsageFlush = 10 * time.Second / speedup
			app := startApp(b, cfg)
			var mu sync.Mutex
			counts := map[string]int{}
			count := func(db *gorm.DB) {
				sql := strings.ToUpper(strings.TrimSpace(db.Statement.SQL.String()))
				verb, _, _ := strings.Cut(sql, " ")
				mu.Lock()
				counts[verb+" "+db.Statement.Table]++
				mu.Unlock()
			}
			cb := app.DB.Callback()
			for name, p := range map[string]interface {
				Register(string, func(*gorm.DB)) error
			}{"create": cb.Create().After("*"), "query": cb.Query().After("*"), "update": cb.Update().After("*"),
				"delete": cb.Delete().After("*"), "row": cb.Row().After("*"), "raw": cb.Raw().After("*")} {
				if err := p.Register("bench:count:"+name, count); err != nil {
					b.Fatal(err)
				}
			}
			const window = 4 * time.Second // 200 s of default intervals
			b.ResetTimer()
			for range b.N {
				time.Sleep(window)
			}
			b.StopTimer()
			mu.Lock()
			defer mu.Unlock()
			total := 0
			var kinds []string
			for k, n := range counts {
				total += n
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			perMinute := float64(total) / float64(b.N) / (window.Seconds() * speedup / 60)
			b.ReportMetric(perMinute, "statements/min")
			for _, k := range kinds {
				b.Logf("%-40s %6.1f per minute", k, float64(counts[k])/float64(b.N)/(window.Seconds()*speedup/60))
			}
		})
	}
}
