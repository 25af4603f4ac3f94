package server_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkObservabilityOverhead measures what metrics and traces cost an
// authenticated request, in the same run: four apps on SQLite — metrics
// and tracing off, metrics on, metrics and tracing on (spans exported to
// a fake OTLP collector on 127.0.0.1), and off again ("control": what two
// identical apps differ by, the noise of the measurement) — answer
// `{ me { id } }` and the 20-row cloudCredentials listing, in alternating
// rounds so that other load on the machine hits them alike. It reports
// ns/op of each and the ratios to "off". Run with
//
//	go test -run '^$' -bench ObservabilityOverhead -benchtime 20x ./server/
//
// (each of the 20 iterations is one round of obsRound requests per app).
func BenchmarkObservabilityOverhead(b *testing.B) {
	coll := startCollector(b)
	type variant struct {
		name  string
		app   *testApp
		token string
	}
	var variants []*variant
	for _, name := range []string{"off", "metrics", "metrics+traces", "control"} {
		cfg := testConfig(b)
		cfg.LogLevel = "warn" // no per-request log line in the measurement
		if name == "metrics" || name == "metrics+traces" {
			cfg.MetricsAddr = "127.0.0.1:0"
		}
		if name == "metrics+traces" {
			cfg.TracesEndpoint = coll.URL + "/v1/traces"
		}
		app := credApp(b, cfg)
		c, _ := app.user(b, "bench@example.com")
		for i := range 20 {
			c.createCred(openAIInput(fmt.Sprintf("credential %03d", i), apiKey(b)))
		}
		variants = append(variants, &variant{name: name, app: app, token: c.token})
	}
	for _, q := range []struct {
		name, query string
		rows        int
	}{{"me", `{ me { id } }`, 0}, {"list20", benchList, 20}} {
		b.Run(q.name, func(b *testing.B) {
			body := gqlBody(q.query)
			for _, v := range variants {
				serve(b, v.app.Handler, body, v.token, true, q.rows)
			}
			spent := make([]time.Duration, len(variants))
			n := 0
			for b.Loop() {
				for i, v := range variants {
					start := time.Now()
					for range obsRound {
						serve(b, v.app.Handler, body, v.token, false, 0)
					}
					spent[i] += time.Since(start)
				}
				n += obsRound
			}
			off := float64(spent[0]) / float64(n)
			for i, v := range variants {
				per := float64(spent[i]) / float64(n)
				b.ReportMetric(per, v.name+"-ns/op")
				if i > 0 {
					b.ReportMetric(per/off, v.name+"/off")
				}
			}
		})
	}
}

// obsRound is how many requests each app answers in one round.
const obsRound = 200
