package relay

// Measurements of SPEC §7's streaming row — per-event added latency, memory
// per open stream, disconnect to upstream end — as benchmarks that report
// their figures with b.ReportMetric. They are not part of `go test` and
// assert no timings: they fail only when a stream does not
// work. Every connection is on loopback, every loop bounded. Run them
// with
//
//	go test -run '^$' -bench 'BenchmarkStream' -benchtime 1x ./relay/
//
// Each compares the relay (the Forwarder behind an httptest server, as in
// BenchmarkForward) with the client calling the upstream directly, in the
// same run. The figures and how to read them are in BENCHMARKS.md, "Relay".

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/relay/fakeprovider"
)

// streamEnv is an env for streams: its outcomes are drained (the front
// handler would block once the env's channel is full).
func streamEnv(tb testing.TB, fo fakeprovider.Options) *env {
	e := newEnv(tb, envOptions{fake: fo})
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-e.outcomes:
			case <-stop:
				return
			}
		}
	}()
	tb.Cleanup(func() { close(stop) })
	return e
}

// benchStream is one streamed chat completion a benchmark opened.
type benchStream struct {
	id     string
	res    *http.Response
	cancel context.CancelFunc
	rec    *fakeprovider.Request // the fake's record of it, once found
}

// open starts a streamed chat completion through the relay or directly to
// the fake, tagged with id (Idempotency-Key, which both pass on), and
// returns once the response headers came. It may run on any goroutine.
func (e *env) open(relayed bool, id string) (*benchStream, error) {
	return e.openAt(relayed, e.fake.URL, id)
}

// openAt is open with direct calls going to the upstream at base.
func (e *env) openAt(relayed bool, base, id string) (*benchStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req := e.request(ctx, "POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, false), "Idempotency-Key", id)
	if !relayed {
		u := *req.URL
		u.Host = strings.TrimPrefix(base, "http://")
		req.URL, req.Host = &u, ""
		req.Header.Set("Authorization", "Bearer "+testKey)
	}
	res, err := e.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open stream %s: %w", id, err)
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		cancel()
		return nil, fmt.Errorf("stream %s: status %d", id, res.StatusCode)
	}
	return &benchStream{id: id, res: res, cancel: cancel}, nil
}

// find fills in the fake's records of the streams, by their ID.
func (e *env) find(tb testing.TB, streams []*benchStream) {
	tb.Helper()
	byID := map[string]*fakeprovider.Request{}
	for _, r := range e.fake.Requests() {
		byID[r.Header.Get("Idempotency-Key")] = r
	}
	for _, s := range streams {
		if s.rec = byID[s.id]; s.rec == nil {
			tb.Fatalf("the fake has no request %s", s.id)
		}
	}
}

// firstEvent reads the stream up to its first data line.
func firstEvent(r *bufio.Reader) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "data: ") {
			return nil
		}
	}
}

// quantile returns the q-quantile of sorted durations (nearest rank).
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[int(q*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkStreamEventLatency: for every event of every stream, the time
// from the provider starting to write it to the client having read its
// line, through the relay and directly; the relay's added latency is the
// difference of the two distributions' quantiles. The provider here is a
// minimal SSE upstream (timedUpstream) that puts the time it writes each
// event into the event, so the client needs no bookkeeping of the
// provider's to match them up (fakeprovider's Sent is taken after its
// flush returns, when a direct client may already have read the event).
// streams=1 is one stream at a time; streams=100 runs 100 at once (5,000
// events/s each way), so the two cores are shared between client, relay
// and upstream as under load. Direct and relayed rounds alternate.
func BenchmarkStreamEventLatency(b *testing.B) {
	for _, v := range []struct{ streams, rounds int }{{1, 8}, {100, 4}} {
		b.Run(fmt.Sprintf("streams=%d", v.streams), func(b *testing.B) {
			const delay, events = 20 * time.Millisecond, 25
			e := streamEnv(b, fakeprovider.Options{})
			up := timedUpstream(b, delay, events)
			e.setTarget(func(t *Target) { t.BaseURL = up.URL })
			lags := map[bool][]time.Duration{}
			n := 0
			for range b.N {
				for round := range v.rounds {
					for _, relayed := range []bool{round%2 == 0, round%2 != 0} {
						var mu sync.Mutex
						var wg sync.WaitGroup
						for range v.streams {
							n++
							id := fmt.Sprintf("lat-%d", n)
							wg.Go(func() {
								s, err := e.openAt(relayed, up.URL, id)
								if err != nil {
									b.Error(err)
									return
								}
								defer s.cancel()
								defer s.res.Body.Close()
								var got []time.Duration
								sc := bufio.NewScanner(s.res.Body)
								for sc.Scan() {
									d, ok := strings.CutPrefix(sc.Text(), "data: ")
									if !ok || d == "[DONE]" {
										continue
									}
									now := time.Now()
									var ev struct{ Sent int64 }
									if err := json.Unmarshal([]byte(d), &ev); err != nil || ev.Sent == 0 {
										b.Errorf("stream %s: event %q", id, d)
										return
									}
									got = append(got, now.Sub(time.Unix(0, ev.Sent)))
								}
								if sc.Err() != nil || len(got) != events {
									b.Errorf("stream %s: %d events, %v", id, len(got), sc.Err())
									return
								}
								mu.Lock()
								lags[relayed] = append(lags[relayed], got...)
								mu.Unlock()
							})
						}
						wg.Wait()
					}
				}
			}
			b.StopTimer()
			for _, s := range lags {
				slices.Sort(s)
			}
			direct, relayed := lags[false], lags[true]
			b.ReportMetric(ms(quantile(direct, 0.5)), "direct-p50-ms")
			b.ReportMetric(ms(quantile(direct, 0.99)), "direct-p99-ms")
			b.ReportMetric(ms(quantile(relayed, 0.5)), "relay-p50-ms")
			b.ReportMetric(ms(quantile(relayed, 0.99)), "relay-p99-ms")
			b.ReportMetric(ms(relayed[len(relayed)-1]), "relay-max-ms")
			b.ReportMetric(ms(quantile(relayed, 0.5)-quantile(direct, 0.5)), "added-p50-ms")
			b.ReportMetric(ms(quantile(relayed, 0.99)-quantile(direct, 0.99)), "added-p99-ms")
			b.ReportMetric(float64(len(relayed)), "events")
		})
	}
}

// timedUpstream is an OpenAI-style streaming chat completion: events
// chunks, delay apart, each carrying in "sent" the time (Unix ns) just
// before it was written; then [DONE].
func timedUpstream(tb testing.TB, delay time.Duration, events int) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		rc := http.NewResponseController(w)
		rc.Flush()
		for i := range events {
			if i > 0 {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","model":"gpt-4o","sent":%d,"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}`+"\n\n",
				time.Now().UnixNano())
			if rc.Flush() != nil {
				return
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	tb.Cleanup(up.Close)
	return up
}

// BenchmarkStreamDisconnect: a client reads the first event of a stream
// and goes away; the figure is the time from its cancelling the request to
// the fake provider seeing its own request cancelled (fakeprovider's
// Canceled), through the relay and, for comparison, directly. one-at-a-time
// is 100 streams in turn; all-at-once opens 500 and cancels them together.
func BenchmarkStreamDisconnect(b *testing.B) {
	for _, v := range []struct {
		name    string
		streams int
		batch   bool
	}{{"one-at-a-time", 100, false}, {"all-at-once-500", 500, true}} {
		b.Run(v.name, func(b *testing.B) {
			e := streamEnv(b, fakeprovider.Options{EventDelay: 200 * time.Millisecond, Events: 1000})
			ends := map[bool][]time.Duration{}
			n := 0
			for range b.N {
				for _, relayed := range []bool{false, true} {
					per := 1
					if v.batch {
						per = v.streams
					}
					for range v.streams / per {
						streams := make([]*benchStream, per)
						openStreams(b, e, relayed, streams, func() string { n++; return fmt.Sprintf("dis-%d", n) })
						e.find(b, streams)
						// Each stream's end is noted by a goroutine of its own, so that
						// 500 at once are each timed from their own cancellation.
						gone, ended := make([]time.Time, per), make([]time.Time, per)
						var wg sync.WaitGroup
						for i, s := range streams {
							wg.Go(func() {
								select {
								case <-s.rec.Canceled:
									ended[i] = time.Now()
								case <-time.After(10 * time.Second):
									b.Errorf("stream %s: the upstream request was not cancelled within 10 s", s.id)
								}
							})
						}
						for i, s := range streams {
							gone[i] = time.Now()
							s.cancel()
							s.res.Body.Close()
						}
						wg.Wait()
						if b.Failed() {
							b.FailNow()
						}
						for i := range streams {
							ends[relayed] = append(ends[relayed], ended[i].Sub(gone[i]))
						}
						for _, s := range streams {
							<-s.rec.Done
						}
					}
				}
			}
			b.StopTimer()
			for _, s := range ends {
				slices.Sort(s)
			}
			for _, relayed := range []bool{false, true} {
				name := map[bool]string{false: "direct", true: "relay"}[relayed]
				s := ends[relayed]
				b.ReportMetric(ms(quantile(s, 0.5)), name+"-p50-ms")
				b.ReportMetric(ms(s[len(s)-1]), name+"-max-ms")
			}
		})
	}
}

// openStreams opens len(streams) streams, 50 at a time, and reads each up
// to its first event.
func openStreams(tb testing.TB, e *env, relayed bool, streams []*benchStream, id func() string) {
	tb.Helper()
	ids := make([]string, len(streams))
	for i := range ids {
		ids[i] = id()
	}
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := e.open(relayed, ids[i])
			if err != nil {
				tb.Error(err)
				return
			}
			streams[i] = s
			if err := firstEvent(bufio.NewReader(s.res.Body)); err != nil {
				tb.Errorf("stream %s: %v", s.id, err)
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		for _, s := range streams {
			if s != nil {
				s.cancel()
				s.res.Body.Close()
			}
		}
		tb.FailNow()
	}
}

// memEnv names the mode of the child process of BenchmarkStreamMemory.
const memEnv = "CLOUDKEYS_STREAM_MEMORY_CHILD"

// memReport is what the child measured, before and after opening the
// streams (KiB).
type memReport struct {
	Streams                  int
	HeapBefore, HeapAfter    uint64 // HeapInuse + StackInuse, after a GC
	RSSBefore, RSSAfter      uint64 // VmRSS
	GoroutinesBefore, GAfter int
}

// BenchmarkStreamMemory: what 500 concurrent open streams cost the relay.
// Client, relay and fake share one process, so the benchmark runs the same
// thing twice, each in a fresh child process (this test binary, re-run with
// -test.bench BenchmarkStreamMemoryChild): 500 streams straight from the client
// to the fake, and 500 through the relay. Each child opens its streams,
// reads the first event of each, and measures Go's in-use heap and stack
// (runtime.MemStats HeapInuse + StackInuse after a GC) and the process's
// VmRSS before and after. The client's and the fake's share is the same in
// both children, so (relay − direct) / 500 is what one open stream costs
// the relay: its server connection, the Forwarder's upstream connection
// and the ReverseProxy copy loop with its buffer.
func BenchmarkStreamMemory(b *testing.B) {
	const streams = 500
	run := func(mode string) memReport {
		cmd := exec.Command(os.Args[0], "-test.run", "^$", "-test.bench", "^BenchmarkStreamMemoryChild$", "-test.benchtime", "1x", "-test.count", "1", "-test.v")
		cmd.Env = append(os.Environ(), memEnv+"="+mode, "CLOUDKEYS_STREAM_MEMORY_STREAMS="+strconv.Itoa(streams))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%s child: %v\n%s", mode, err, out)
		}
		for line := range strings.Lines(string(out)) {
			if j, ok := strings.CutPrefix(strings.TrimSpace(line), "MEMREPORT "); ok {
				var r memReport
				if err := json.Unmarshal([]byte(j), &r); err != nil {
					b.Fatal(err)
				}
				return r
			}
		}
		b.Fatalf("%s child reported nothing:\n%s", mode, out)
		return memReport{}
	}
	for range b.N {
		direct, relayed := run("direct"), run("relay")
		per := func(r memReport, after, before uint64) float64 {
			return (float64(after) - float64(before)) / float64(r.Streams)
		}
		dHeap, rHeap := per(direct, direct.HeapAfter, direct.HeapBefore), per(relayed, relayed.HeapAfter, relayed.HeapBefore)
		dRSS, rRSS := per(direct, direct.RSSAfter, direct.RSSBefore), per(relayed, relayed.RSSAfter, relayed.RSSBefore)
		b.Logf("direct: heap+stack %d → %d KiB, VmRSS %d → %d KiB, goroutines %d → %d",
			direct.HeapBefore, direct.HeapAfter, direct.RSSBefore, direct.RSSAfter, direct.GoroutinesBefore, direct.GAfter)
		b.Logf("relay:  heap+stack %d → %d KiB, VmRSS %d → %d KiB, goroutines %d → %d",
			relayed.HeapBefore, relayed.HeapAfter, relayed.RSSBefore, relayed.RSSAfter, relayed.GoroutinesBefore, relayed.GAfter)
		b.ReportMetric(rHeap-dHeap, "relay-heap-KiB/stream")
		b.ReportMetric(rRSS-dRSS, "relay-RSS-KiB/stream")
		b.ReportMetric(float64(relayed.GAfter-relayed.GoroutinesBefore-(direct.GAfter-direct.GoroutinesBefore))/streams, "relay-goroutines/stream")
		b.ReportMetric(dRSS, "direct-RSS-KiB/stream")
	}
}

// BenchmarkStreamMemoryChild is BenchmarkStreamMemory's child process, a
// benchmark so that `go test` never runs (nor skips) it; it does nothing
// unless that benchmark started it.
func BenchmarkStreamMemoryChild(t *testing.B) {
	mode := os.Getenv(memEnv)
	if mode == "" {
		t.Skip("run by BenchmarkStreamMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("CLOUDKEYS_STREAM_MEMORY_STREAMS"))
	e := streamEnv(t, fakeprovider.Options{EventDelay: 500 * time.Millisecond, Events: 1000})
	relayed := mode == "relay"
	// Warm up the path (pools, the transport, the first connections).
	warm := make([]*benchStream, 20)
	k := 0
	openStreams(t, e, relayed, warm, func() string { k++; return fmt.Sprintf("warm-%d", k) })
	e.find(t, warm)
	for _, s := range warm {
		s.cancel()
		s.res.Body.Close()
		<-s.rec.Done
	}
	e.client.Transport.(*http.Transport).CloseIdleConnections()
	e.fwd.Close()
	time.Sleep(200 * time.Millisecond)

	r := memReport{Streams: n}
	r.HeapBefore, r.RSSBefore, r.GoroutinesBefore = memNow(t, true)
	streams := make([]*benchStream, n)
	openStreams(t, e, relayed, streams, func() string { k++; return fmt.Sprintf("mem-%d", k) })
	// Keep reading every stream, as a client would, while measuring.
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() { io.Copy(io.Discard, s.res.Body) })
	}
	time.Sleep(time.Second) // an event or two more through every stream
	r.HeapAfter, r.RSSAfter, r.GAfter = memNow(t, false)
	e.find(t, streams)
	for _, s := range streams {
		s.cancel()
		s.res.Body.Close()
	}
	wg.Wait()
	for _, s := range streams {
		<-s.rec.Done
	}
	j, _ := json.Marshal(r)
	fmt.Printf("MEMREPORT %s\n", j)
}

// memNow returns Go's in-use heap and stack and the process's VmRSS, in
// KiB, and the number of goroutines, after a GC (and, when release is set,
// with freed memory returned to the OS first, for a clean baseline).
func memNow(t testing.TB, release bool) (heap, rss uint64, goroutines int) {
	runtime.GC()
	if release {
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			rss = kib
		}
	}
	return (ms.HeapInuse + ms.StackInuse) >> 10, rss, runtime.NumGoroutine()
}
