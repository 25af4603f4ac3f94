package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const modelList = `{"object":"list","data":[{"id":"m1","object":"model"}]}`

func TestHeadersPerProtocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		protocol Protocol
		want     map[string]string // "" means the header must be absent
	}{
		{OpenAI, map[string]string{
			"Authorization":     "Bearer " + testKey,
			"X-Api-Key":         "",
			"Anthropic-Version": "",
		}},
		{Anthropic, map[string]string{
			"Authorization":     "",
			"X-Api-Key":         testKey,
			"Anthropic-Version": "2023-06-01",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.protocol.String(), func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, status(200, modelList))
			c := newClient(t, Options{AllowPrivate: true}, nil)

			r := test(t, c, tt.protocol, p.URL)
			if !r.OK || fmtStatus(r.HTTPStatus) != "200" || r.Message != msgConnected {
				t.Fatalf("got %+v (status %s)", r, fmtStatus(r.HTTPStatus))
			}
			req := p.last(t)
			if req.Method != http.MethodGet || req.RequestURI != "/v1/models" {
				t.Errorf("request line: %s %s", req.Method, req.RequestURI)
			}
			want := map[string]string{"Accept": "application/json", "User-Agent": "cloudkeys"}
			for k, v := range tt.want {
				want[k] = v
			}
			for k, v := range want {
				if got := req.Header.Values(k); (v == "" && len(got) != 0) || (v != "" && (len(got) != 1 || got[0] != v)) {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if req.Body != nil && req.ContentLength > 0 {
				t.Errorf("request has a body of %d bytes", req.ContentLength)
			}
		})
	}
}

func TestPathJoining(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(200, modelList))
	c := newClient(t, Options{AllowPrivate: true}, nil)
	tests := []struct{ suffix, want string }{
		{"", "/v1/models"},
		{"/", "/v1/models"},
		{"//", "/v1/models"},
		{"/openai", "/openai/v1/models"},       // Groq
		{"/openai/", "/openai/v1/models"},      // with a trailing slash
		{"/inference", "/inference/v1/models"}, // Fireworks
		{"/api/openai///", "/api/openai/v1/models"},
		{"/a%2Fb", "/a%2Fb/v1/models"}, // escaped slash kept as sent
		{"/x?tenant=7", "/x/v1/models?tenant=7"},
		{"/v1", "/v1/v1/models"}, // kept as given; a 404 then hints at it
	}
	for _, tt := range tests {
		r := test(t, c, OpenAI, p.URL+tt.suffix)
		if !r.OK {
			t.Errorf("%q: %+v", tt.suffix, r)
			continue
		}
		if got := p.last(t).RequestURI; got != tt.want {
			t.Errorf("base URL %q: requested %q, want %q", p.URL+tt.suffix, got, tt.want)
		}
	}
}

func TestStatusMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		code    int
		body    string
		suffix  string // appended to the base URL
		ok      bool
		message string
	}{
		{"200", 200, modelList, "", true, msgConnected},
		{"200 array", 200, "  \n[]", "", true, msgConnected},
		{"201", 201, modelList, "", true, msgConnected},
		{"200 HTML", 200, "<!doctype html><html>", "", false, "The server answered HTTP 200, but not with JSON: the base URL does not look like the provider's API."},
		{"200 empty", 200, "", "", false, "The server answered HTTP 200, but not with JSON: the base URL does not look like the provider's API."},
		{"204", 204, "", "", false, "The server answered HTTP 204, but not with JSON: the base URL does not look like the provider's API."},
		{"400", 400, `{"error":"bad"}`, "", false, "The provider refused the request (HTTP 400): check the base URL and the API type."},
		{"401", 401, `{"error":{"message":"Incorrect API key"}}`, "", false, "The provider rejected the API key (401 Unauthorized): check that the key is correct and has not been revoked."},
		{"403", 403, `{"error":"forbidden"}`, "", false, "The provider refused access (403 Forbidden): the key may lack permission to list models, or the account or this server's location is blocked."},
		{"404", 404, `not found`, "", false, "The endpoint was not found (404): check the base URL; the test calls {base URL}/v1/models."},
		{"404 under /v1", 404, `not found`, "/v1/", false, "The endpoint was not found (404): check the base URL; the test calls {base URL}/v1/models. The base URL should not end in /v1."},
		{"405", 405, ``, "", false, "The provider refused the request (HTTP 405): check the base URL and the API type."},
		{"429", 429, `{"error":"slow down"}`, "", false, "The provider is rate limiting this key (429 Too Many Requests) or its quota is used up: the key was not rejected, but the test could not confirm it. Try again later."},
		{"500", 500, `boom`, "", false, "The provider had a server error (HTTP 500): try again later."},
		{"503", 503, ``, "", false, "The provider had a server error (HTTP 503): try again later."},
		{"301", 301, ``, "", false, "The base URL redirects (HTTP 301); redirects are not followed."},
		{"308", 308, ``, "", false, "The base URL redirects (HTTP 308); redirects are not followed."},
		{"600", 600, ``, "", false, "The provider answered with an unexpected HTTP status (600)."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, status(tt.code, tt.body))
			c := newClient(t, Options{AllowPrivate: true}, nil)
			r := test(t, c, OpenAI, p.URL+tt.suffix)
			if r.OK != tt.ok || fmtStatus(r.HTTPStatus) != fmt.Sprint(tt.code) || r.Message != tt.message {
				t.Errorf("got ok=%v status=%s message=%q\nwant ok=%v status=%d message=%q",
					r.OK, fmtStatus(r.HTTPStatus), r.Message, tt.ok, tt.code, tt.message)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	target := newProvider(t, status(200, modelList))
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			p := newProvider(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/v1/models?key="+testKey, code)
			})
			c := newClient(t, Options{AllowPrivate: true}, nil)
			r := test(t, c, OpenAI, p.URL)
			want := fmt.Sprintf("The base URL redirects (HTTP %d); redirects are not followed.", code)
			if r.OK || fmtStatus(r.HTTPStatus) != fmt.Sprint(code) || r.Message != want {
				t.Errorf("got %+v, want status %d and %q", r, code, want)
			}
			if strings.Contains(r.Message, target.URL) || strings.Contains(r.Message, "127.0.0.1") {
				t.Errorf("message leaks the redirect target: %q", r.Message)
			}
		})
	}
	if n := target.conns.Load(); n != 0 {
		t.Errorf("the redirect target was contacted: %d connections", n)
	}
}

// TestBodyReadIsBounded serves an endless body: the test only ends if the
// client stops reading at MaxBody.
func TestBodyReadIsBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code  int
		first string
		ok    bool
	}{{200, "{", true}, {500, "x", false}} {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			t.Parallel()
			const limit = 1 << 30 // the handler gives up here if nobody stops it
			var written atomic.Int64
			done := make(chan struct{})
			p := newProvider(t, func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				w.WriteHeader(tt.code)
				_, _ = w.Write([]byte(tt.first))
				chunk := []byte(strings.Repeat(" ", 32<<10))
				for written.Load() < limit {
					n, err := w.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			c := newClient(t, Options{AllowPrivate: true, MaxBody: 64 << 10, Timeout: 20 * time.Second}, nil)

			start := time.Now()
			r := test(t, c, OpenAI, p.URL)
			if r.OK != tt.ok || fmtStatus(r.HTTPStatus) != fmt.Sprint(tt.code) {
				t.Errorf("got %+v", r)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v: the body was not cut off", d)
			}
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("the handler is still writing: the client did not close the body")
			}
			if n := written.Load(); n >= limit {
				t.Errorf("the client read the whole %d-byte body", n)
			} else {
				t.Logf("the server managed to write %d bytes before the client hung up", n)
			}
		})
	}
}

// TestMaxBodyIsExact: the JSON sniff sees the first MaxBody bytes and not
// one more.
func TestMaxBodyIsExact(t *testing.T) {
	t.Parallel()
	const maxBody = 1000
	for _, tt := range []struct {
		spaces int
		ok     bool
	}{{0, true}, {maxBody - 1, true}, {maxBody, false}, {10 * maxBody, false}} {
		p := newProvider(t, status(200, strings.Repeat(" ", tt.spaces)+modelList))
		c := newClient(t, Options{AllowPrivate: true, MaxBody: maxBody}, nil)
		if r := test(t, c, OpenAI, p.URL); r.OK != tt.ok {
			t.Errorf("JSON after %d spaces: got %+v, want ok=%v", tt.spaces, r, tt.ok)
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	block := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	stallBody := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		block(w, r)
	}
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
		status  string
	}{
		{"no answer", block, "nil"},
		{"headers then nothing", stallBody, "200"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, tt.handler)
			c := newClient(t, Options{AllowPrivate: true, Timeout: 200 * time.Millisecond}, nil)
			start := time.Now()
			r := test(t, c, OpenAI, p.URL)
			if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
				t.Errorf("returned after %v, want about 200ms", d)
			}
			if r.OK || fmtStatus(r.HTTPStatus) != tt.status || r.Message != "The connection test timed out after 200ms." {
				t.Errorf("got %+v (status %s)", r, fmtStatus(r.HTTPStatus))
			}
		})
	}
}

func TestDefaultTimeoutIsInTheMessage(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	if got := c.failure(context.Background(), timedOutContext(t), context.DeadlineExceeded); got != "The connection test timed out after 10s." {
		t.Errorf("got %q", got)
	}
}

func timedOutContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeoutCause(context.Background(), 0, errTimedOut)
	t.Cleanup(cancel)
	<-ctx.Done()
	return ctx
}

func TestCallerContextEndsTheCall(t *testing.T) {
	t.Parallel()
	block := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	p := newProvider(t, block)
	c := newClient(t, Options{AllowPrivate: true}, nil)

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		r := testCtx(t, ctx, c, OpenAI, p.URL)
		if r.OK || r.HTTPStatus != nil || r.Message != msgCanceled || time.Since(start) > 3*time.Second {
			t.Errorf("got %+v after %v", r, time.Since(start))
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r := testCtx(t, ctx, c, OpenAI, p.URL)
		if r.OK || r.HTTPStatus != nil || r.Message != msgCallerDeadline {
			t.Errorf("got %+v", r)
		}
	})
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more

	c := newClient(t, Options{AllowPrivate: true}, nil)
	r := test(t, c, OpenAI, "http://"+addr)
	if r.OK || r.HTTPStatus != nil || r.Message != "The connection was refused: nothing is accepting connections at the base URL's host and port." {
		t.Errorf("got %+v", r)
	}
}

func TestTLSErrors(t *testing.T) {
	t.Parallel()
	tlsProvider := httptest.NewUnstartedServer(status(200, modelList))
	tlsProvider.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	tlsProvider.StartTLS()
	t.Cleanup(tlsProvider.Close)
	_, port, _ := net.SplitHostPort(tlsProvider.Listener.Addr().String())
	trusted := x509.NewCertPool()
	trusted.AddCert(tlsProvider.Certificate())
	plain := newProvider(t, status(200, modelList))
	names := map[string][]netip.Addr{"wrong-name.test": loopback4()}

	tests := []struct {
		name    string
		trust   bool
		baseURL string
		ok      bool
		message string
	}{
		{"untrusted certificate", false, tlsProvider.URL,
			false, "TLS error: the server's certificate is not signed by a trusted authority."},
		{"trusted certificate", true, tlsProvider.URL,
			true, msgConnected},
		{"certificate for another name", true, "https://wrong-name.test:" + port,
			false, "TLS error: the server's certificate is not valid for the base URL's host name."},
		{"https to a plain HTTP server", false, "https://127.0.0.1:" + plain.port(),
			false, "TLS error: the server did not answer with TLS; does the base URL need http:// instead of https://?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, Options{AllowPrivate: true}, names)
			if tt.trust {
				c.transport.TLSClientConfig = &tls.Config{RootCAs: trusted}
			}
			r := test(t, c, OpenAI, tt.baseURL)
			if r.OK != tt.ok || r.Message != tt.message {
				t.Errorf("got %+v, want ok=%v %q", r, tt.ok, tt.message)
			}
			if !tt.ok && r.HTTPStatus != nil {
				t.Errorf("status %s for a TLS failure", fmtStatus(r.HTTPStatus))
			}
		})
	}
}

func TestDNSFailure(t *testing.T) {
	t.Parallel()
	c := New(Options{AllowPrivate: true})
	dns := fakeDNS(t, nil)
	c.dialer.Resolver = dns.resolver()
	c.beforeConnect = func(ap netip.AddrPort) error {
		t.Errorf("connect attempted to %v", ap)
		return fmt.Errorf("refused by the test")
	}
	r := test(t, c, OpenAI, "https://api.provider.invalid/openai")
	if r.OK || r.HTTPStatus != nil || r.Message != "The base URL's host name could not be resolved (no such host): check the base URL." {
		t.Errorf("got %+v", r)
	}
	if dns.queries.Load() == 0 {
		t.Error("the lookup did not reach the loopback DNS server")
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	c := newClient(t, Options{}, nil)
	c.beforeConnect = func(ap netip.AddrPort) error {
		t.Errorf("connect attempted to %v", ap)
		return fmt.Errorf("refused by the test")
	}
	tests := []struct {
		baseURL string
		want    string
	}{
		{"", msgNotAbsolute},
		{"api.openai.com", msgNotAbsolute},
		{"/v1", msgNotAbsolute},
		{"ftp://api.example.com", msgNotAbsolute},
		{"file:///etc/passwd", msgNotAbsolute},
		{"javascript:alert(1)", msgNotAbsolute},
		{"http:api.example.com", msgNotAbsolute},
		{"http://", msgNotAbsolute},
		{"http://:8080", msgNotAbsolute},
		{"https://user:pass@api.example.com", msgUserinfo},
		{"https://sk-abc@api.example.com", msgUserinfo},
		{"https://api.example.com/#frag", msgFragment},
		{"https://api.example.com/#", msgFragment},
		{"https://api.example.com:port", msgInvalidURL},
		{"http://[::1", msgInvalidURL},
		{"http://exa mple.com", msgInvalidURL},
		{"http://example.com/\x7f", msgInvalidURL},
	}
	for _, tt := range tests {
		if r := test(t, c, OpenAI, tt.baseURL); r.OK || r.HTTPStatus != nil || r.Message != tt.want {
			t.Errorf("%q: got %+v, want %q", tt.baseURL, r, tt.want)
		}
	}

	for _, tt := range []struct {
		p    Protocol
		key  string
		want string
	}{
		{OpenAI, "", msgNoKey},
		{OpenAI, "sk-abc\r\nX-Injected: 1", msgBadKeyChars},
		{Anthropic, "sk-abc\n", msgBadKeyChars},
		{Protocol(0), "sk-abc", msgUnknownProtocol},
		{Protocol(7), "sk-abc", msgUnknownProtocol},
	} {
		r := c.Test(context.Background(), tt.p, "https://api.example.com", tt.key)
		if r.OK || r.HTTPStatus != nil || r.Message != tt.want {
			t.Errorf("protocol %v, key %q: got %+v, want %q", tt.p, tt.key, r, tt.want)
		}
	}
}

// TestKeyNeverInMessage points the client at providers that echo every
// request header back, in the body and in response headers.
func TestKeyNeverInMessage(t *testing.T) {
	t.Parallel()
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var b strings.Builder
			for k, v := range r.Header {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
				w.Header().Set("X-Echo-"+k, strings.Join(v, ","))
			}
			w.Header().Set("Location", "/?auth="+r.Header.Get("Authorization"))
			w.WriteHeader(code)
			fmt.Fprintf(&b, `{"error":{"message":"Incorrect API key provided: %s%s"}}`,
				r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
			_, _ = w.Write([]byte(b.String()))
		}
	}
	for _, code := range []int{200, 302, 400, 401, 403, 404, 429, 500} {
		p := newProvider(t, echo(code))
		c := newClient(t, Options{AllowPrivate: true}, nil)
		for _, proto := range []Protocol{OpenAI, Anthropic} {
			r := test(t, c, proto, p.URL) // test() fails on the key in the message
			if fmtStatus(r.HTTPStatus) != fmt.Sprint(code) {
				t.Errorf("%d: got %+v", code, r)
			}
		}
	}
	// Nor when the key is pasted into the base URL itself.
	p := newProvider(t, status(404, ""))
	c := newClient(t, Options{AllowPrivate: true}, nil)
	test(t, c, OpenAI, p.URL+"/"+testKey+"?key="+testKey)
	test(t, newClient(t, Options{}, nil), OpenAI, p.URL+"/"+testKey)
	test(t, c, OpenAI, "https://"+testKey+".invalid/")
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(200, modelList))
	bad := newProvider(t, status(401, ""))
	c := newClient(t, Options{AllowPrivate: true}, nil)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			url, want := p.URL, true
			if i%2 == 1 {
				url, want = bad.URL, false
			}
			if r := c.Test(context.Background(), OpenAI, url, testKey); r.OK != want {
				t.Errorf("request %d: got %+v", i, r)
			}
		})
	}
	wg.Wait()
}

// TestEnvironmentProxyIsIgnored: a proxy from the environment would make
// the dial for us, and the guard would only ever see the proxy's address.
func TestEnvironmentProxyIsIgnored(t *testing.T) {
	proxy := newProvider(t, status(200, modelList))
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
	}
	p := newProvider(t, status(200, modelList))
	// A name rather than 127.0.0.1: Go never proxies requests to localhost
	// or loopback literals, so only a name makes this test meaningful.
	c := newClient(t, Options{AllowPrivate: true}, map[string][]netip.Addr{"provider.test": loopback4()})
	if r := test(t, c, OpenAI, "http://provider.test:"+p.port()); !r.OK {
		t.Fatalf("got %+v", r)
	}
	if p.hits.Load() != 1 || proxy.conns.Load() != 0 {
		t.Errorf("provider hits %d, proxy connections %d", p.hits.Load(), proxy.conns.Load())
	}
}

// The zero Options are the production defaults issue 5 names: a 10 s
// call, at most 64 KiB of response body read, the guard on.
func TestDefaults(t *testing.T) {
	c := New(Options{})
	if c.timeout != 10*time.Second || c.maxBody != 64<<10 || c.allowPrivate {
		t.Fatalf("defaults: timeout %v, body %d, allowPrivate %v", c.timeout, c.maxBody, c.allowPrivate)
	}
}
