package relay

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"cloudkeys/models"
	"cloudkeys/probe"
)

// BenchmarkForward: a small non-streaming chat completion on loopback,
// called directly, through a minimal relay (httputil.ReverseProxy that sets
// the URL and the key), and through the Forwarder with and without the
// usage counting. The ratio of the last two is what counting costs.
//
//	go test -run '^$' -bench BenchmarkForward -benchtime 20000x -cpu 2 ./relay/
func BenchmarkForward(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-fake","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello from the fake provider"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0}}}` + "\n")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-request-id", "req_1")
		_, _ = w.Write(answer)
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)
	request := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}`)

	guard := func() *probe.Guard {
		g := probe.NewGuard(true)
		g.SetBeforeConnect(loopbackOnly(b))
		return g
	}
	pooled := func(g *probe.Guard) *http.Transport {
		return &http.Transport{Proxy: nil, DialContext: g.DialContext, MaxIdleConns: 512, MaxIdleConnsPerHost: 128}
	}
	tg := Target{APIType: models.APIOpenAI, BaseURL: upstream.URL, APIKey: testKey}
	forwarder := func(skip bool) http.Handler {
		f := New(Options{Dial: guard().DialContext, skipUsage: skip})
		b.Cleanup(f.Close)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rest, _ := strings.CutPrefix(r.URL.EscapedPath(), "/v1/")
			f.Forward(w, r, rest, tg, func(Outcome) {})
		})
	}
	minimalTransport := pooled(guard())
	b.Cleanup(minimalTransport.CloseIdleConnections)
	minimal := &httputil.ReverseProxy{Transport: minimalTransport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set("Authorization", "Bearer "+testKey)
	}}

	for _, bb := range []struct {
		name    string
		handler http.Handler // nil: the upstream itself
	}{
		{"direct", nil},
		{"minimal-proxy", minimal},
		{"forwarder", forwarder(false)},
		{"forwarder-no-usage", forwarder(true)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			base := upstream.URL
			if bb.handler != nil {
				front := httptest.NewServer(bb.handler)
				defer front.Close()
				base = front.URL
			}
			client := &http.Client{Transport: pooled(guard())}
			defer client.Transport.(*http.Transport).CloseIdleConnections()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(request))
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || n != int64(len(answer)) {
						b.Errorf("status %d, %d bytes", res.StatusCode, n)
						return
					}
				}
			})
		})
	}
}
