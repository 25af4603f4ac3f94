package server_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"cloudkeys/audit"
	"cloudkeys/auth"
)

// BenchmarkAuditCost estimates what the audit row costs `login` and
// `createCloudCredential`, through the real handler, in one run: each
// operation is timed as it is (with its audit row), and the append of one
// such row alone is timed on the same database; without = with − append.
// The server has no switch to turn the audit off (by design), so the
// "without" is this difference, not a second server. Login uses the tests'
// small Argon2id parameters (the worst case for the ratio) and the
// production ones.
//
//	go test -run '^$' -bench AuditCost -benchtime 200x -count 3 ./server/
func BenchmarkAuditCost(b *testing.B) {
	for _, params := range []struct {
		name string
		p    auth.Params
	}{{"small-argon2", testParams}, {"production-argon2", auth.DefaultParams}} {
		b.Run(params.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Argon2 = params.p
			cfg.LoginMaxPerEmail, cfg.LoginMaxPerAddr = 0, 0
			app := credApp(b, cfg)
			c, u := app.user(b, "bench@example.com")
			ctx := context.Background()
			median := func(d []time.Duration) time.Duration {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return d[len(d)/2]
			}
			var logins, creates, appends []time.Duration
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				p := app.client(b).login("bench@example.com", "password-bench@example.com")
				logins = append(logins, time.Since(start))
				c = app.client(b).withToken(p.AccessToken) // at most 50 live sessions: keep the newest
				if i%90 == 0 {                             // stay under the credential cap
					b.StopTimer()
					for _, cr := range c.listCreds() {
						c.must(`mutation($id: ID!) { deleteCloudCredential(id: $id) }`, map[string]any{"id": cr.ID}, "deleteCloudCredential", new(bool))
					}
					b.StartTimer()
				}
				start = time.Now()
				c.createCred(openAIInput(fmt.Sprint(i), apiKey(b)))
				creates = append(creates, time.Since(start))
				start = time.Now()
				if err := app.Audit.Append(ctx, nil, audit.Event{Action: audit.CredentialCreated, Outcome: audit.Succeeded,
					ActorID: u.ID, TargetType: "credential", TargetID: u.ID, Detail: "name=bench"}); err != nil {
					b.Fatal(err)
				}
				appends = append(appends, time.Since(start))
			}
			b.StopTimer()
			l, cr, a := median(logins), median(creates), median(appends)
			b.ReportMetric(float64(l.Microseconds()), "login-µs")
			b.ReportMetric(float64(cr.Microseconds()), "create-µs")
			b.ReportMetric(float64(a.Microseconds()), "append-µs")
			b.ReportMetric(float64(l)/float64(l-a), "login-with/without")
			b.ReportMetric(float64(cr)/float64(cr-a), "create-with/without")
		})
	}
}
