package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/relay/fakeprovider"
)

// BenchmarkRelayStreamsRSS is SPEC §7's "500 concurrent open streams add
// ≤ 100 KiB of server RSS each", measured on the real binary (`cloudkeys
// serve`: SQLite, development defaults, info logging, private base URLs
// allowed for the fake) in its own process on 127.0.0.1, so that its VmRSS
// is the server's alone; the fake provider and the 500 clients are in the
// test process. It is not part of `go test`; run it with
//
//	go test -run '^$' -bench RelayStreamsRSS -benchtime 1x ./server/
//
// After 20 warm-up streams (opened, then closed) it reads the server's
// VmRSS once it has settled, opens 500 streamed chat completions through /relay/v1 with one
// relay key (50 at a time, each read up to its first event, then read on
// as a client would), waits a second, and reads VmRSS again; then it ends
// the streams. It reports (after − before) / 500. It fails when a stream
// does not work, never on the figures.
func BenchmarkRelayStreamsRSS(b *testing.B) {
	const streams = 500
	fake := fakeprovider.Start(b, fakeprovider.Options{EventDelay: 500 * time.Millisecond, Events: 1000})
	bin, data := buildBinary(b)
	// Small Argon2id parameters: the hashes of registering and signing in
	// would otherwise leave ~150 MiB of heap that the runtime hands back
	// to the OS slowly, under the measurement.
	srv := startProcess(b, bin, data, []string{"CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS=true", "CLOUDKEYS_ARGON2_MEMORY_KIB=1024"})
	defer srv.stop(b)
	token := loadRegister(b, srv.url, "relay-load@example.com", true)
	r := loadPost(b, srv.url, token, `mutation($in: CreateCloudCredentialInput!) { createCloudCredential(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": "fake", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(b), "baseUrl": fake.URL}})
	var cred struct{ ID string }
	if len(r.errors) > 0 || json.Unmarshal(r.data["createCloudCredential"], &cred) != nil {
		b.Fatalf("create credential: %d %v", r.status, r.errors)
	}
	r = loadPost(b, srv.url, token, `mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret } }`,
		map[string]any{"in": map[string]any{"credentialId": cred.ID, "name": "load"}})
	var key struct{ Secret string }
	if len(r.errors) > 0 || json.Unmarshal(r.data["createRelayKey"], &key) != nil {
		b.Fatalf("create relay key: %d %v", r.status, r.errors)
	}
	endpoint := strings.TrimSuffix(srv.url, "/graphql") + "/relay/v1/chat/completions"
	body, _ := json.Marshal(fakeprovider.ChatBody("gpt-4o", true, true))
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64}}
	defer client.Transport.(*http.Transport).CloseIdleConnections()

	// open opens n streams, 50 at a time, each read up to its first event
	// and then on to its end in a goroutine of its own; stop ends them.
	open := func(n int) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var readers sync.WaitGroup
		var opened sync.WaitGroup
		sem := make(chan struct{}, 50)
		for range n {
			opened.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				req, _ := http.NewRequestWithContext(ctx, "POST", endpoint, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+key.Secret)
				res, err := client.Do(req)
				if err != nil {
					b.Errorf("open a stream: %v", err)
					return
				}
				br := bufio.NewReader(res.Body)
				for {
					line, err := br.ReadString('\n')
					if err != nil || res.StatusCode != 200 {
						b.Errorf("stream: status %d, %v", res.StatusCode, err)
						res.Body.Close()
						return
					}
					if strings.HasPrefix(line, "data: ") {
						break
					}
				}
				readers.Go(func() {
					io.Copy(io.Discard, br)
					res.Body.Close()
				})
			})
		}
		opened.Wait()
		if b.Failed() {
			cancel()
			b.FailNow()
		}
		return func() {
			cancel()
			readers.Wait()
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				finished := 0
				for _, r := range fake.Requests() {
					if isClosedWithin(r.Done, 0) {
						finished++
					}
				}
				if finished == len(fake.Requests()) {
					return
				}
			}
			b.Error("the provider's requests did not all end within 10 s of the clients going away")
		}
	}

	for range b.N {
		open(20)()
		before := srv.settledRSS(b)
		stop := open(streams)
		time.Sleep(time.Second)
		during := srv.vmRSS(b)
		stop()
		time.Sleep(500 * time.Millisecond)
		after := srv.vmRSS(b)
		b.Logf("server VmRSS: %d KiB before, %d KiB with %d streams open, %d KiB after they ended", before, during, streams, after)
		b.ReportMetric(float64(during-before)/streams, "server-RSS-KiB/stream")
		b.ReportMetric(float64(before)/1024, "server-RSS-MiB-before")
	}
}

// isClosedWithin reports whether ch is closed, waiting at most d.
func isClosedWithin(ch <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// settledRSS waits (at most 20 s) for the server's VmRSS to stop moving
// — two readings a second apart within 256 KiB — and returns it.
func (s *loadServer) settledRSS(b *testing.B) int {
	b.Helper()
	last := s.vmRSS(b)
	for range 20 {
		time.Sleep(time.Second)
		now := s.vmRSS(b)
		if d := now - last; d < 256 && d > -256 {
			return now
		}
		last = now
	}
	return last
}

// vmRSS is the server's resident set size now, in KiB.
func (s *loadServer) vmRSS(b *testing.B) int { return s.procStatusKiB(b, "VmRSS") }
