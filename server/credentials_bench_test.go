package server_test

// Benchmarks of the credential listing (SPEC §7): cloudCredentials with 20
// and 100 rows against { __typename } on the same handler, in-process, and
// a bounded load run against a real listening server on 127.0.0.1.
//
//	go test -run x -bench 'Typename|CloudCredentials' -benchmem -count 5 ./server/
//	go test -run x -bench LoadRatio -benchtime 1x ./server/

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloudkeys/server"
)

// benchApp starts an app whose user has rows credentials; it returns the
// app and the user's access token.
func benchApp(b *testing.B, rows int) (*testApp, string) {
	b.Helper()
	app := credApp(b, nil)
	c, _ := app.user(b, "bench@example.com")
	for i := range rows {
		c.createCred(openAIInput(fmt.Sprintf("credential %03d", i), apiKey(b)))
	}
	return app, c.token
}

func gqlBody(query string) []byte {
	b, _ := json.Marshal(map[string]any{"query": query})
	return b
}

const (
	typenameQuery = `{ __typename }`
	benchList     = `{ cloudCredentials { id name backendType apiType baseUrl apiKeyHint keyStatus createdAt updatedAt } }`
)

// serve runs one request through the handler and checks the answer the
// first time.
func serve(b *testing.B, h http.Handler, body []byte, token string, check bool, wantRows int) {
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if check {
		checkAnswer(b, w.Code, w.Body.Bytes(), wantRows)
	}
}

func checkAnswer(b testing.TB, status int, raw []byte, wantRows int) {
	var r struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []any                      `json:"errors"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &r) != nil || len(r.Errors) > 0 {
		b.Fatalf("status %d: %s", status, raw)
	}
	if wantRows > 0 {
		var list []credJSON
		json.Unmarshal(r.Data["cloudCredentials"], &list)
		if len(list) != wantRows || list[0].KeyStatus != "OK" {
			b.Fatalf("listed %d rows, want %d OK", len(list), wantRows)
		}
	}
}

func BenchmarkTypename(b *testing.B) {
	app, _ := benchApp(b, 0)
	body := gqlBody(typenameQuery)
	serve(b, app.Handler, body, "", true, 0)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		serve(b, app.Handler, body, "", false, 0)
	}
	cpu.report(b)
}

// cpuClock measures the process's CPU time over a benchmark loop.
type cpuClock time.Duration

func startCPU() cpuClock { return cpuClock(server.ProcessCPU()) }

// report adds cpu-ns/op: the CPU time of the loop per operation.
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(server.ProcessCPU()-time.Duration(c))/float64(b.N), "cpu-ns/op")
}

func BenchmarkCloudCredentials(b *testing.B) {
	for _, rows := range []int{20, 100} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			app, token := benchApp(b, rows)
			body := gqlBody(benchList)
			serve(b, app.Handler, body, token, true, rows)
			b.ReportAllocs()
			start, cpu := time.Now(), startCPU()
			n := 0
			for b.Loop() {
				serve(b, app.Handler, body, token, false, 0)
				n++
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n*rows), "ns/row")
			cpu.report(b)
		})
	}
}

// BenchmarkLoadRatio drives a real listening server (127.0.0.1) with
// concurrent clients, alternating { __typename } and cloudCredentials over
// 20 rows in rounds (so that other load on the machine hits both alike),
// for 2 × loadRounds × loadSlice in all, and reports both throughputs and
// their ratio (SPEC §7: at least 0.4).
func BenchmarkLoadRatio(b *testing.B) {
	const (
		loadRounds = 6
		loadSlice  = 2 * time.Second
		workers    = 8
	)
	app, token := benchApp(b, 20)
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// load runs workers for one slice and returns how many requests they
	// completed.
	load := func(body []byte, token string) int64 {
		var done, failed atomic.Int64
		deadline := time.Now().Add(loadSlice)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					req, _ := http.NewRequest(http.MethodPost, app.URL+"/graphql", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					res, err := hc.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					raw, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
						failed.Add(1)
						continue
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d requests failed", failed.Load())
		}
		return done.Load()
	}
	typenameBody, listBody := gqlBody(typenameQuery), gqlBody(benchList)
	for b.Loop() {
		var typename, list int64
		for r := range loadRounds {
			if r%2 == 0 {
				typename += load(typenameBody, "")
				list += load(listBody, token)
			} else {
				list += load(listBody, token)
				typename += load(typenameBody, "")
			}
		}
		secs := (loadRounds * loadSlice).Seconds()
		b.ReportMetric(float64(typename)/secs, "typename-req/s")
		b.ReportMetric(float64(list)/secs, "list20-req/s")
		b.ReportMetric(float64(list)/float64(typename), "ratio")
	}
}
