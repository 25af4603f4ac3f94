package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkWrkRatio measures SPEC §7's ratio (cloudCredentials over
// 20 rows against { __typename }, same server, same run) with the load
// generator outside the server's process: the real binary (`cloudkeys
// serve`: SQLite, development defaults, info logging) on 127.0.0.1, and
// wrk (Debian's `wrk` package) as the client, 8 keep-alive connections on
// one thread, alternating the two queries in rounds of 4 s (24 s in all
// per sub-benchmark). It skips when wrk is not installed; it is not part
// of `go test`:
//
//	go test -run '^$' -bench WrkRatio -benchtime 1x ./server/
//
// Beside the throughputs it reports the server's own CPU time per request
// (utime + stime from /proc/PID/stat), which does not depend on how the two
// cores are shared between client and server. The sub-benchmarks differ in
// the server's GOGC, a deployment setting. It fails on any non-2xx answer
// or socket error, never on timings.
func BenchmarkWrkRatio(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk is not installed (Debian: apt-get install wrk)")
	}
	bin, data := buildBinary(b)
	dir := b.TempDir()

	srv := startProcess(b, bin, data, nil)
	token := loadRegister(b, srv.url, "ratio@example.com", true)
	for i := range 20 {
		r := loadPost(b, srv.url, token, `mutation($in: CreateCloudCredentialInput!) { createCloudCredential(input: $in) { id } }`,
			map[string]any{"in": openAIInput(fmt.Sprintf("credential %03d", i), apiKey(b))})
		if r.status != 200 || len(r.errors) > 0 {
			b.Fatalf("create: %d %v", r.status, r.errors)
		}
	}
	srv.stop(b)

	scripts := map[string]string{
		"typename": wrkScript(b, dir, "typename", typenameQuery, ""),
		"list20":   wrkScript(b, dir, "list20", benchList, token),
	}
	for _, v := range []struct{ name, env string }{{"GOGC=100", ""}, {"GOGC=400", "GOGC=400"}} {
		b.Run(v.name, func(b *testing.B) {
			var env []string
			if v.env != "" {
				env = append(env, v.env)
			}
			for range b.N {
				srv := startProcess(b, bin, data, env)
				r := loadPost(b, srv.url, token, benchList, nil)
				raw, _ := json.Marshal(map[string]any{"data": r.data})
				checkAnswer(b, r.status, raw, 20)
				const rounds, slice = 3, 4 * time.Second
				reqs, cpu := map[string]float64{}, map[string]time.Duration{}
				for i := range rounds {
					order := []string{"typename", "list20"}
					if i%2 == 1 {
						order[0], order[1] = order[1], order[0]
					}
					for _, q := range order {
						cpu0 := srv.cpuTime(b)
						reqs[q] += runWrk(b, wrk, scripts[q], srv.url, slice)
						cpu[q] += srv.cpuTime(b) - cpu0
					}
				}
				srv.stop(b)
				secs := (rounds * slice).Seconds()
				b.ReportMetric(reqs["typename"]/secs, "typename-req/s")
				b.ReportMetric(reqs["list20"]/secs, "list20-req/s")
				b.ReportMetric(reqs["list20"]/reqs["typename"], "ratio")
				b.ReportMetric(float64(cpu["typename"].Microseconds())/reqs["typename"], "typename-server-cpu-us/req")
				b.ReportMetric(float64(cpu["list20"].Microseconds())/reqs["list20"], "list20-server-cpu-us/req")
			}
		})
	}
}

// wrkScript writes a wrk script that POSTs query, with the token if any.
func wrkScript(b *testing.B, dir, name, query, token string) string {
	body, _ := json.Marshal(map[string]string{"query": query})
	var s strings.Builder
	fmt.Fprintf(&s, "wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", body)
	if token != "" {
		fmt.Fprintf(&s, "wrk.headers[\"Authorization\"] = %q\n", "Bearer "+token)
	}
	path := filepath.Join(dir, name+".lua")
	if err := os.WriteFile(path, []byte(s.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

var (
	wrkTotal  = regexp.MustCompile(`(\d+) requests in`)
	wrkBad    = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket = regexp.MustCompile(`Socket errors: .*`)
)

// runWrk runs wrk for d against url and returns the requests it completed.
func runWrk(b *testing.B, wrk, script, url string, d time.Duration) float64 {
	out, err := exec.Command(wrk, "-t1", "-c8", fmt.Sprintf("-d%ds", int(d.Seconds())), "-s", script, url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	if m := wrkBad.FindSubmatch(out); m != nil {
		b.Fatalf("wrk got %s non-2xx answers:\n%s", m[1], out)
	}
	if m := wrkSocket.Find(out); m != nil {
		b.Fatalf("wrk: %s", m)
	}
	m := wrkTotal.FindSubmatch(out)
	if m == nil {
		b.Fatalf("no request count in wrk's output:\n%s", out)
	}
	n, _ := strconv.ParseFloat(string(m[1]), 64)
	return n
}

// cpuTime returns the CPU time (user + system) the server process has used.
func (s *loadServer) cpuTime(b *testing.B) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("the server is gone: %v", err)
	}
	// The fields after the command name (which ends with the last ')'):
	// state is field 3, utime 14 and stime 15, in clock ticks.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[14-3], 10, 64)
	stime, _ := strconv.ParseInt(fields[15-3], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100
