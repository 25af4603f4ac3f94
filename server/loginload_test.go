package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkConcurrentLogins is the load run of SPEC §7: 200 concurrent
// logins with the production Argon2id parameters (auth.DefaultParams, the
// defaults of `cloudkeys serve`) against the real binary, built and started
// in its own process on 127.0.0.1, so that its peak RSS (VmHWM) is its own.
// It is not part of `go test`; run it with
//
//	go test -run '^$' -bench ConcurrentLogins -benchtime 1x -timeout 30m ./server/
//
// Each sub-benchmark restarts the server on the same SQLite file (200
// approved accounts, registered once) with other settings, fires 200 logins
// at once and reports how they were answered. It fails on any 5xx, any
// transport error or a crashed server — never on timings.
func BenchmarkConcurrentLogins(b *testing.B) {
	const accounts = 200
	bin, data := buildBinary(b)

	// Accounts: the first is the admin, who approves the others.
	srv := startProcess(b, bin, data, nil)
	emails := make([]string, accounts)
	for i := range emails {
		emails[i] = fmt.Sprintf("load%03d@example.com", i)
	}
	admin := loadRegister(b, srv.url, emails[0], true)
	var wg sync.WaitGroup
	ids := make([]string, accounts)
	sem := make(chan struct{}, 2)
	for i := 1; i < accounts; i++ {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ids[i] = loadRegister(b, srv.url, emails[i], false)
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		r := loadPost(b, srv.url, admin, `mutation($id: ID!) { updateUser(id: $id, input: {status: APPROVED}) { id } }`, map[string]any{"id": id})
		if r.status != http.StatusOK || len(r.errors) > 0 {
			b.Fatalf("approve: %d %v", r.status, r.errors)
		}
	}
	srv.stop(b)

	variants := []struct {
		name  string
		env   []string
		wrong bool // 200 wrong passwords for one account instead
	}{
		{name: "defaults"},
		{name: "no-address-limit", env: []string{"CLOUDKEYS_LOGIN_MAX_PER_ADDR=0"}},
		{name: "no-address-limit,hash-wait=60s", env: []string{"CLOUDKEYS_LOGIN_MAX_PER_ADDR=0", "CLOUDKEYS_HASH_WAIT=60s"}},
		// Argon2id allocates its 64 MiB afresh on every call; the Go heap
		// grows past the live hashes until the GC catches up. A soft memory
		// limit makes the GC keep closer to them.
		{name: "no-address-limit,hash-wait=60s,GOMEMLIMIT=256MiB", env: []string{"CLOUDKEYS_LOGIN_MAX_PER_ADDR=0", "CLOUDKEYS_HASH_WAIT=60s", "GOMEMLIMIT=256MiB"}},
		// The peak per hashing slot.
		{name: "no-address-limit,hash-wait=60s,hash-concurrency=1", env: []string{"CLOUDKEYS_LOGIN_MAX_PER_ADDR=0", "CLOUDKEYS_HASH_WAIT=60s", "CLOUDKEYS_HASH_CONCURRENCY=1"}},
		// Last: it leaves the first account throttled.
		{name: "wrong-password,one-account", wrong: true},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				srv := startProcess(b, bin, data, v.env)
				base := srv.vmHWM(b)
				srv.resetPeak()
				res := loginBurst(b, srv.url, emails, v.wrong)
				peak := srv.vmHWM(b)
				srv.stop(b)
				b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
				b.ReportMetric(float64(base)/1024, "idle-RSS-MiB")
				b.ReportMetric(float64(res.count["ok"]), "ok")
				b.ReportMetric(float64(res.count["RATE_LIMITED"]), "RATE_LIMITED")
				b.ReportMetric(float64(res.count["UNAUTHENTICATED"]), "UNAUTHENTICATED")
				b.ReportMetric(float64(res.fiveXX), "5xx")
				b.ReportMetric(res.wall.Seconds(), "wall-s")
				b.Logf("%s: %v, 5xx %d, transport errors %d; wall %s, latency p50 %s max %s; VmHWM idle %d MiB, peak %d MiB",
					v.name, res.answers, res.fiveXX, res.transport, res.wall.Round(time.Millisecond),
					res.p50.Round(time.Millisecond), res.max.Round(time.Millisecond), base/1024, peak/1024)
				if res.fiveXX > 0 || res.transport > 0 {
					b.Errorf("%d answers were 5xx, %d requests failed in transport", res.fiveXX, res.transport)
				}
			}
		})
	}
}

// buildBinary builds cloudkeys into a temporary directory and returns its
// path and a data directory beside it.
func buildBinary(b *testing.B) (bin, data string) {
	b.Helper()
	dir := b.TempDir()
	bin = filepath.Join(dir, "cloudkeys")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin, filepath.Join(dir, "data")
}

// loadServer is `cloudkeys serve` running in its own process.
type loadServer struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// startProcess starts the binary on 127.0.0.1 (a free port) with the data
// directory and extra environment, and waits until it listens.
func startProcess(b *testing.B, bin, data string, env []string) *loadServer {
	b.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"CLOUDKEYS_ADDR=127.0.0.1:0",
		"CLOUDKEYS_DATA_DIR=" + data,
		"CLOUDKEYS_LOG_FORMAT=json",
		"CLOUDKEYS_LOG_LEVEL=info",
	}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &loadServer{cmd: cmd, done: make(chan error, 1)}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "cloudkeys is listening" {
				listening <- rec.Addr
			}
		}
		io.Copy(io.Discard, stderr)
		s.done <- cmd.Wait()
	}()
	select {
	case addr := <-listening:
		s.url = "http://" + addr + "/graphql"
	case err := <-s.done:
		b.Fatalf("the server exited: %v", err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		b.Fatal("the server did not start listening")
	}
	return s
}

// vmHWM returns the process's peak resident set size, in KiB.
func (s *loadServer) vmHWM(b *testing.B) int { return s.procStatusKiB(b, "VmHWM") }

// procStatusKiB reads one field of the server process's /proc/PID/status
// (VmRSS, VmHWM, …), in KiB.
func (s *loadServer) procStatusKiB(b *testing.B, field string) int {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("the server is gone: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return kib
		}
	}
	b.Fatalf("no %s in /proc/PID/status", field)
	return 0
}

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5), so the
// peak measured is the burst's, not the start-up's.
func (s *loadServer) resetPeak() {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *loadServer) stop(b *testing.B) {
	b.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			b.Errorf("the server exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		b.Error("the server did not stop on SIGTERM")
	}
}

type loadResponse struct {
	status int
	data   map[string]json.RawMessage
	errors []gqlError
}

var loadClient = &http.Client{
	Timeout:   5 * time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256},
}

// loadPost sends one GraphQL request; a transport error is returned as
// status 0.
func loadPost(b *testing.B, url, token, query string, vars map[string]any) loadResponse {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return loadResponse{}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := loadClient.Do(req)
	if err != nil {
		return loadResponse{}
	}
	defer res.Body.Close()
	var r struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []gqlError                 `json:"errors"`
	}
	json.NewDecoder(res.Body).Decode(&r)
	return loadResponse{status: res.StatusCode, data: r.Data, errors: r.Errors}
}

const loadPassword = "a load-test password"

// loadRegister registers an account and returns its ID, or for the admin
// (the first account) its access token.
func loadRegister(b *testing.B, url, email string, admin bool) string {
	r := loadPost(b, url, "", `mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { id } }`,
		map[string]any{"e": email, "p": loadPassword})
	var u struct{ ID string }
	if r.status != http.StatusOK || len(r.errors) > 0 || json.Unmarshal(r.data["register"], &u) != nil {
		b.Fatalf("register %s: %d %v", email, r.status, r.errors)
	}
	if !admin {
		return u.ID
	}
	r = loadPost(b, url, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`,
		map[string]any{"e": email, "p": loadPassword})
	var p struct{ AccessToken string }
	if len(r.errors) > 0 || json.Unmarshal(r.data["login"], &p) != nil {
		b.Fatalf("admin login: %d %v", r.status, r.errors)
	}
	return p.AccessToken
}

type burstResult struct {
	count     map[string]int // "ok" or the error code
	answers   map[string]int // "ok" or the error code and message
	fiveXX    int
	transport int
	wall      time.Duration
	p50, max  time.Duration
}

// loginBurst fires one login per email at once (or, wrong, as many logins
// with a wrong password for the first email) and tallies the answers.
func loginBurst(b *testing.B, url string, emails []string, wrong bool) burstResult {
	n := len(emails)
	outcomes := make([]string, n)
	statuses := make([]int, n)
	latency := make([]time.Duration, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			email, password := emails[i], loadPassword
			if wrong {
				email, password = emails[0], "not the password"
			}
			<-start
			t0 := time.Now()
			r := loadPost(b, url, "", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }`,
				map[string]any{"e": email, "p": password})
			latency[i], statuses[i] = time.Since(t0), r.status
			switch {
			case len(r.errors) > 0:
				code, _ := r.errors[0].Extensions["code"].(string)
				outcomes[i] = code + " (" + r.errors[0].Message + ")"
			case r.status == http.StatusOK && len(r.data["login"]) > len(`{"accessToken":""}`):
				outcomes[i] = "ok"
			default:
				outcomes[i] = fmt.Sprintf("HTTP %d", r.status)
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res := burstResult{count: map[string]int{}, answers: map[string]int{}, wall: time.Since(t0)}
	for i := range n {
		res.answers[outcomes[i]]++
		code, _, _ := strings.Cut(outcomes[i], " ")
		res.count[code]++
		switch {
		case statuses[i] == 0:
			res.transport++
		case statuses[i] >= 500:
			res.fiveXX++
		}
	}
	slices.Sort(latency)
	res.p50, res.max = latency[n/2], latency[n-1]
	return res
}
