package relay

// Workplace rule: tests send traffic only to loopback addresses on this
// machine. Every upstream dial of the Forwarder under test goes through a
// probe.Guard whose before-connect hook is a loopback-only safety net (run
// after the guard, before connect(2)): an attempt to connect anywhere else
// fails the test and is refused. Base URLs are IP literals, so no name is
// ever looked up. The test client dials with the same safety net.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloudkeys/models"
	"cloudkeys/probe"
	"cloudkeys/relay/fakeprovider"
)

// testKey is the stored provider key the relay injects; no answer, error
// or outcome may contain it.
const testKey = "sk-test-STORED-KEY-0123456789abcdef"

// relayKey is what a client sends as its own credential; it must never
// reach the provider.
const relayKey = "ckr_CLIENT-RELAY-KEY-must-not-pass-upstream-xxxxxx"

// loopbackOnly is the safety net of every dial a test makes.
func loopbackOnly(t testing.TB) func(netip.AddrPort) error {
	return func(ap netip.AddrPort) error {
		if !ap.Addr().Unmap().IsLoopback() {
			t.Errorf("safety net: a connection to %v, which is not loopback, was attempted", ap)
			return errors.New("test safety net: refusing a non-loopback address")
		}
		return nil
	}
}

// env is a fake provider, a Forwarder and a front server on 127.0.0.1
// that relays /v1/… to the Target of the env.
type env struct {
	t        testing.TB
	fake     *fakeprovider.Provider
	fwd      *Forwarder
	front    *httptest.Server
	client   *http.Client
	outcomes chan Outcome

	mu     sync.Mutex
	target Target
}

type envOptions struct {
	fake   fakeprovider.Options
	opts   Options
	strict bool // the guard refuses private addresses (loopback included)
	api    models.APIType
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, fake: fakeprovider.Start(t, o.fake), outcomes: make(chan Outcome, 64)}
	g := probe.NewGuard(!o.strict)
	g.SetBeforeConnect(loopbackOnly(t))
	o.opts.Dial = g.DialContext
	e.fwd = New(o.opts)
	t.Cleanup(e.fwd.Close)
	if o.api == "" {
		o.api = models.APIOpenAI
	}
	e.target = Target{APIType: o.api, BaseURL: e.fake.URL, APIKey: testKey}
	e.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		e.mu.Lock()
		tg := e.target
		e.mu.Unlock()
		e.fwd.Forward(w, r, rest, tg, func(out Outcome) { e.outcomes <- out })
	}))
	t.Cleanup(e.front.Close)
	d := &net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		return loopbackOnly(t)(ap)
	}}
	tr := &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

func (e *env) setTarget(f func(*Target)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.target)
}

// outcome waits for the Outcome of the last call.
func (e *env) outcome() Outcome {
	e.t.Helper()
	select {
	case o := <-e.outcomes:
		return o
	case <-time.After(5 * time.Second):
		e.t.Fatal("no outcome within 5 s")
		return Outcome{}
	}
}

// answer is a relayed call's answer, read whole.
type answer struct {
	status  int
	header  http.Header
	trailer http.Header
	body    []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return m
}

// request builds a call to the front server; header is name, value, ….
func (e *env) request(ctx context.Context, method, path string, body any, header ...string) *http.Request {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	case io.Reader:
		r = b
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.front.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

// call sends one request and reads the answer whole; it checks that the
// stored key appears nowhere in it.
func (e *env) call(method, path string, body any, header ...string) answer {
	e.t.Helper()
	res, err := e.client.Do(e.request(context.Background(), method, path, body, header...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	a := answer{status: res.StatusCode, header: res.Header, trailer: res.Trailer, body: b}
	if bytes.Contains(b, []byte(testKey)) || strings.Contains(headerText(res.Header), testKey) {
		e.t.Errorf("%s %s: the answer contains the stored key", method, path)
	}
	return a
}

func headerText(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}

// noRequest checks that the fake received nothing at all.
func (e *env) noRequest() {
	e.t.Helper()
	if n := len(e.fake.Requests()); n != 0 {
		e.t.Errorf("the provider received %d requests, want none", n)
	}
}

// refusal checks an answer is the relay's own refusal with status, in
// api's error shape, and returns the error type.
func refusal(t testing.TB, a answer, api models.APIType, status int) string {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	m := a.json(t)
	e, _ := m["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error object: %s", a.body)
	}
	msg, _ := e["message"].(string)
	typ, _ := e["type"].(string)
	if msg == "" || typ == "" {
		t.Errorf("error without message or type: %s", a.body)
	}
	if api == models.APIAnthropic {
		if m["type"] != "error" || len(m) != 2 {
			t.Errorf("not in Anthropic's error shape: %s", a.body)
		}
	} else if _, ok := e["code"]; !ok || len(m) != 1 {
		t.Errorf("not in OpenAI's error shape: %s", a.body)
	}
	return typ
}

// waitClosed waits at most d for ch to be closed.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}
