package server_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProvider is a local stand-in for a provider's API. Each base URL
// path prefix answers one way; it records the requests it got.
type fakeProvider struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []http.Header
	paths []string
}

func newFakeProvider(t *testing.T) *fakeProvider {
	f := &fakeProvider{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Header.Clone())
		f.paths = append(f.paths, r.URL.Path)
		f.mu.Unlock()
		prefix, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch prefix {
		case "ok":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"object":"list","data":[]}`))
		case "401":
			http.Error(w, `{"error":"invalid key"}`, http.StatusUnauthorized)
		case "403":
			http.Error(w, `{"error":"forbidden"}`, http.StatusForbidden)
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProvider) requests() ([]http.Header, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.reqs...), append([]string(nil), f.paths...)
}

func TestTestCloudCredential(t *testing.T) {
	t.Parallel()
	fake := newFakeProvider(t)
	cfg := testConfig(t)
	cfg.AllowPrivateBaseURLs = true
	cfg.ProbeTimeout = 300 * time.Millisecond
	app := credApp(t, cfg)
	c, _ := app.user(t, "ada@example.com")

	// A port nothing listens on: listen, note it, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	cases := []struct {
		name, backend, base string
		ok                  bool
		status              int // 0: null
		message             string
	}{
		{"accepted", "OPENAI_COMPATIBLE", fake.URL + "/ok", true, 200, "accepted the key"},
		{"accepted, Anthropic protocol", "ANTHROPIC_COMPATIBLE", fake.URL + "/ok", true, 200, "accepted the key"},
		{"unauthorized", "OPENAI_COMPATIBLE", fake.URL + "/401", false, 401, "rejected the API key"},
		{"forbidden", "OPENAI_COMPATIBLE", fake.URL + "/403", false, 403, "refused access"},
		{"server error", "OPENAI_COMPATIBLE", fake.URL + "/500", false, 500, "server error"},
		{"timeout", "OPENAI_COMPATIBLE", fake.URL + "/slow", false, 0, "timed out after 300ms"},
		{"connection refused", "OPENAI_COMPATIBLE", closed, false, 0, "connection was refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := apiKey(t)
			cr := c.createCred(map[string]any{"name": tc.name, "backendType": tc.backend, "apiKey": key, "baseUrl": tc.base})
			start := time.Now()
			res := c.testCred(cr.ID)
			if res.OK != tc.ok || !strings.Contains(res.Message, tc.message) {
				t.Fatalf("got %+v, want ok=%v and a message with %q", res, tc.ok, tc.message)
			}
			if (tc.status == 0) != (res.HTTPStatus == nil) || (res.HTTPStatus != nil && *res.HTTPStatus != tc.status) {
				t.Fatalf("httpStatus %v, want %d (0 = null)", res.HTTPStatus, tc.status)
			}
			if strings.Contains(res.Message, keyMarker) {
				t.Fatal("the result contains the key")
			}
			if tc.name == "timeout" && time.Since(start) > 5*time.Second {
				t.Fatalf("the configured timeout was not used: %v", time.Since(start))
			}
		})
	}
	// The requests carried the key as each protocol wants, on /v1/models.
	hdrs, paths := fake.requests()
	if len(hdrs) != 6 {
		t.Fatalf("the provider got %d requests, want 6", len(hdrs))
	}
	for i, h := range hdrs {
		if !strings.HasSuffix(paths[i], "/v1/models") {
			t.Errorf("request %d went to %s", i, paths[i])
		}
		if i == 1 {
			if !strings.Contains(h.Get("x-api-key"), keyMarker) || h.Get("anthropic-version") != "2023-06-01" || h.Get("Authorization") != "" {
				t.Errorf("the Anthropic request's headers are wrong")
			}
		} else if !strings.HasPrefix(h.Get("Authorization"), "Bearer sk-"+keyMarker) || h.Get("x-api-key") != "" {
			t.Errorf("request %d does not carry the key as a bearer token", i)
		}
	}

	// A key that needs re-entry is not sent anywhere.
	cr := c.createCred(map[string]any{"name": "unreadable", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": fake.URL + "/ok"})
	app.setJWE(t, cr.ID, "gAAAAABnot-a-jwe")
	res := c.testCred(cr.ID)
	if res.OK || res.HTTPStatus != nil || !strings.Contains(res.Message, "Not tested") || !strings.Contains(res.Message, "Enter the API key again") {
		t.Fatalf("NEEDS_REENTRY test: %+v", res)
	}
	if hdrs, _ := fake.requests(); len(hdrs) != 6 {
		t.Fatal("a credential needing re-entry was sent to the provider")
	}
}

// With private base URLs not allowed (the default), the guard refuses
// loopback targets before connecting; storing such a credential is allowed.
func TestTestCloudCredentialSSRFGuard(t *testing.T) {
	t.Parallel()
	fake := newFakeProvider(t)
	app := credApp(t, nil)
	c, _ := app.user(t, "ada@example.com")
	port := fake.Listener.Addr().(*net.TCPAddr).Port
	for _, base := range []string{fake.URL + "/ok", "http://localhost:" + strconv.Itoa(port) + "/ok", "http://[::1]:" + strconv.Itoa(port) + "/ok"} {
		cr := c.createCred(map[string]any{"name": base, "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": base})
		res := c.testCred(cr.ID)
		if res.OK || res.HTTPStatus != nil || !strings.Contains(res.Message, "SSRF guard") {
			t.Fatalf("%s: %+v", base, res)
		}
	}
	if hdrs, _ := fake.requests(); len(hdrs) != 0 {
		t.Fatalf("the guard let %d requests through", len(hdrs))
	}
}
