package server_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"cloudkeys/auth"
)

// BenchmarkLoginVsVerify compares a whole login (GraphQL request, throttle
// bookkeeping, user lookup, Argon2id verify, session insert, token signing)
// with one bare Argon2id verify at the same production parameters — SPEC
// §7: login ≤ 1.1× verify. The two alternate in rounds, so load from other
// processes hits both alike; it reports the median of each and their ratio.
//
//	go test -run x -bench LoginVsVerify -benchtime 1x -v ./server/
func BenchmarkLoginVsVerify(b *testing.B) {
	cfg := testConfig(b)
	cfg.Argon2 = auth.DefaultParams
	app := startApp(b, cfg)
	app.client(b).register("ada@example.com", "correct horse battery")
	hash := passwordHash(b, app, "ada@example.com")
	body, _ := json.Marshal(map[string]any{"query": loginMutation,
		"variables": map[string]any{"email": "ada@example.com", "password": "correct horse battery"}})

	verify := func() {
		if ok, err := argon2id.ComparePasswordAndHash("correct horse battery", hash); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
	login := func() { serve(b, app.Handler, body, "", true, 0) }
	const rounds = 30
	timeOf := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	var logins, verifies []time.Duration
	for r := range rounds {
		if r%2 == 0 {
			logins, verifies = append(logins, timeOf(login)), append(verifies, timeOf(verify))
		} else {
			verifies, logins = append(verifies, timeOf(verify)), append(logins, timeOf(login))
		}
	}
	slices.Sort(logins)
	slices.Sort(verifies)
	l, v := logins[rounds/2], verifies[rounds/2]
	b.Logf("median login %v, median verify %v: %.3f×; fastest %v / %v = %.3f×",
		l, v, float64(l)/float64(v), logins[0], verifies[0], float64(logins[0])/float64(verifies[0]))
	b.ReportMetric(float64(l)/float64(v), "login/verify-median")
	b.ReportMetric(float64(l.Microseconds()), "login-µs")
	b.ReportMetric(float64(v.Microseconds()), "verify-µs")
}
