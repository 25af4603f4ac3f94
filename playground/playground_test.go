package playground

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// get sends a request to h and returns the response with its body read.
func get(t *testing.T, h http.Handler, method, target string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": CSP,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	assetAttr = regexp.MustCompile(`(?i)\s(?:src|href|data-[a-z-]+-worker)="([^"]*)"`)
	eventAttr = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	cssURL    = regexp.MustCompile(`url\(\s*['"]?([^'")\s]*)`)
)

func TestPage(t *testing.T) {
	h := Handler("/graphql")
	res, body := get(t, h, http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	checkSecurityHeaders(t, res)
	if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}

	html := string(body)
	if strings.Contains(strings.ToLower(html), "http://") || strings.Contains(strings.ToLower(html), "https://") {
		t.Errorf("page contains an absolute URL:\n%s", html)
	}
	if !strings.Contains(html, "<title>cloudkeys playground</title>") {
		t.Errorf("page has no cloudkeys title:\n%s", html)
	}
	if !strings.Contains(html, `data-endpoint="/graphql"`) {
		t.Errorf("page does not pass the endpoint as data-endpoint:\n%s", html)
	}
	scripts := scriptTag.FindAllStringSubmatch(html, -1)
	if len(scripts) != 1 || strings.Count(strings.ToLower(html), "<script") != 1 {
		t.Errorf("want exactly one <script> element, found %d", strings.Count(strings.ToLower(html), "<script"))
	}
	for _, s := range scripts {
		if strings.TrimSpace(s[2]) != "" {
			t.Errorf("inline script body: %q", s[2])
		}
		if !strings.Contains(s[1], `src="`+AssetPrefix) {
			t.Errorf("script is not loaded from %s: %q", AssetPrefix, s[0])
		}
	}
	if m := eventAttr.FindString(html); m != "" {
		t.Errorf("inline event handler %q", m)
	}
	if strings.Contains(strings.ToLower(html), "<style") {
		t.Error("page has an inline <style> element")
	}
}

// TestAssets fetches every asset the page references, and checks that the
// page references every file in dist/ (so the set of built files and the
// page agree).
func TestAssets(t *testing.T) {
	h := Handler("/graphql")
	_, body := get(t, h, http.MethodGet, "/", nil)

	referenced := map[string]bool{}
	for _, m := range assetAttr.FindAllStringSubmatch(string(body), -1) {
		u := m[1]
		if strings.HasPrefix(u, "data:") {
			continue // the empty favicon
		}
		if !strings.HasPrefix(u, AssetPrefix) {
			t.Errorf("asset %q is not under %s", u, AssetPrefix)
			continue
		}
		name, version, ok := strings.Cut(strings.TrimPrefix(u, AssetPrefix), "?v=")
		if !ok || version == "" {
			t.Errorf("asset %q has no ?v= hash", u)
		}
		referenced[name] = true

		t.Run(name, func(t *testing.T) {
			res, got := get(t, h, http.MethodGet, u, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d", u, res.StatusCode)
			}
			checkSecurityHeaders(t, res)
			want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}[path.Ext(name)]
			if ct := res.Header.Get("Content-Type"); want == "" || ct != want {
				t.Errorf("Content-Type = %q, want %q", ct, want)
			}
			if cc := res.Header.Get("Cache-Control"); cc != immutable {
				t.Errorf("Cache-Control = %q, want %q", cc, immutable)
			}
			file, err := fs.ReadFile(dist, "dist/"+name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, file) {
				t.Errorf("body differs from dist/%s", name)
			}
		})
	}

	entries, err := fs.ReadDir(dist, "dist")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !referenced[e.Name()] {
			t.Errorf("dist/%s is not referenced by the page", e.Name())
		}
		if _, ok := contentTypes[path.Ext(e.Name())]; !ok {
			t.Errorf("dist/%s has no known content type", e.Name())
		}
	}
	for _, name := range []string{"graphiql.js", "graphiql.css"} {
		if !referenced[name] {
			t.Errorf("page does not reference %s", name)
		}
	}
}

// TestAssetsSelfContained guards the "works offline" promise: the stylesheet
// only refers to data: URLs, and no bundle names a CDN. (URL strings inside
// libraries, such as XML namespaces and license links, are not loaded and are
// fine.)
func TestAssetsSelfContained(t *testing.T) {
	cdns := []string{"esm.sh", "unpkg.com", "jsdelivr", "cdnjs", "fonts.googleapis", "fonts.gstatic"}
	entries, err := fs.ReadDir(dist, "dist")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(dist, "dist/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		lower := bytes.ToLower(b)
		for _, cdn := range cdns {
			if bytes.Contains(lower, []byte(cdn)) {
				t.Errorf("dist/%s names a CDN: %q", e.Name(), cdn)
			}
		}
		if path.Ext(e.Name()) != ".css" {
			continue
		}
		if bytes.Contains(b, []byte("@import")) {
			t.Errorf("dist/%s has an @import", e.Name())
		}
		for _, m := range cssURL.FindAllSubmatch(b, -1) {
			if !bytes.HasPrefix(m[1], []byte("data:")) {
				t.Errorf("dist/%s loads %q", e.Name(), m[1])
			}
		}
	}
}

func TestAssetCaching(t *testing.T) {
	h := Handler("/graphql")
	a := assets()["graphiql.css"]
	base := AssetPrefix + "graphiql.css"

	for _, target := range []string{base, base + "?v=0123456789abcdef"} {
		res, _ := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", target, res.StatusCode)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control = %q, want no-cache (not the current hash)", target, cc)
		}
	}

	res, _ := get(t, h, http.MethodGet, base+"?v="+a.hash, nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	res, body := get(t, h, http.MethodGet, base+"?v="+a.hash, http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("conditional GET = %d with %d bytes, want 304 and none", res.StatusCode, len(body))
	}
}

func TestAssetGzip(t *testing.T) {
	h := Handler("/graphql")
	name := "graphiql.js"
	a := assets()[name]
	res, body := get(t, h, http.MethodGet, AssetPrefix+name+"?v="+a.hash, http.Header{"Accept-Encoding": {"gzip, deflate, br"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := res.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", got)
	}
	if !slices.Contains(res.Header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %q, want Accept-Encoding", res.Header.Values("Vary"))
	}
	if res.Header.Get("ETag") == `"`+a.hash+`"` {
		t.Error("gzip variant has the same ETag as the identity one")
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, a.body) {
		t.Error("gzip body does not decompress to the asset")
	}
	t.Logf("%s: %d bytes, %d gzipped", name, len(a.body), len(body))

	res, body = get(t, h, http.MethodGet, AssetPrefix+name, http.Header{"Accept-Encoding": {"gzip;q=0, br"}})
	if res.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, a.body) {
		t.Error("gzip;q=0 still got a gzipped body")
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate, gzip;q=0.5", true},
		{"br, x-gzip", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"br", false},
		{"*", true},
		{"*;q=0", false},
		{"gzip;q=0, *", false},
		{"identity", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Accept-Encoding", tt.header)
		}
		if got := acceptsGzip(h); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestHead(t *testing.T) {
	h := Handler("/graphql")
	for _, target := range []string{"/", AssetPrefix + "graphiql.css"} {
		res, body := get(t, h, http.MethodHead, target, nil)
		if res.StatusCode != http.StatusOK || len(body) != 0 {
			t.Errorf("HEAD %s = %d with %d bytes, want 200 and none", target, res.StatusCode, len(body))
		}
		if res.Header.Get("Content-Length") == "" {
			t.Errorf("HEAD %s has no Content-Length", target)
		}
	}
}

func TestNotFound(t *testing.T) {
	h := Handler("/graphql")
	for _, target := range []string{
		"/index.html",
		"/favicon.ico",
		"/graphql",
		"/playground",
		"/playground/",
		"/playground/index.html",
		"/playground/nope.js",
		"/playground/graphiql.js/x",
		"/playground/dist/graphiql.js",
		"/graphiql.js",
		"/dist/graphiql.js",
	} {
		res, _ := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", target, res.StatusCode)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := Handler("/graphql")
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		for _, target := range []string{"/", AssetPrefix + "graphiql.js"} {
			res, _ := get(t, h, method, target, nil)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s = %d, want 405", method, target, res.StatusCode)
			}
			if got := res.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow = %q", method, target, got)
			}
		}
	}
}

// TestMounted mounts the handler the way the package documentation says, next
// to other routes, and checks that the routes do not shadow each other.
func TestMounted(t *testing.T) {
	pg := Handler("/graphql")
	mux := http.NewServeMux()
	mux.Handle("GET /", pg)
	mux.Handle("GET /playground/", pg)
	mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data":{"__typename":"Query"}}`)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})

	tests := []struct {
		method, target string
		status         int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodGet, AssetPrefix + "graphiql.js", http.StatusOK},
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodPost, "/graphql", http.StatusOK},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, AssetPrefix + "nope.css", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		res, _ := get(t, mux, tt.method, tt.target, nil)
		if res.StatusCode != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.target, res.StatusCode, tt.status)
		}
	}
}

func TestHandlerWithPrefix(t *testing.T) {
	h := HandlerWithPrefix("/api/graphql", "/assets/gql/")
	_, body := get(t, h, http.MethodGet, "/", nil)
	if !strings.Contains(string(body), `src="/assets/gql/graphiql.js?v=`) || !strings.Contains(string(body), `data-endpoint="/api/graphql"`) {
		t.Errorf("page does not use the prefix and endpoint:\n%s", body)
	}
	if res, _ := get(t, h, http.MethodGet, "/assets/gql/graphiql.css", nil); res.StatusCode != http.StatusOK {
		t.Errorf("asset under custom prefix = %d", res.StatusCode)
	}
	if res, _ := get(t, h, http.MethodGet, AssetPrefix+"graphiql.css", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("asset under default prefix = %d, want 404", res.StatusCode)
	}
}

func TestEndpointEscaped(t *testing.T) {
	_, body := get(t, Handler(`/graphql?a="><script>x</script>`), http.MethodGet, "/", nil)
	if strings.Contains(string(body), "<script>x") {
		t.Errorf("endpoint not escaped:\n%s", body)
	}
}

func TestInvalidArguments(t *testing.T) {
	tests := []struct{ endpoint, prefix string }{
		{"https://example.com/graphql", AssetPrefix},
		{"//example.com/graphql", AssetPrefix},
		{"graphql", AssetPrefix},
		{"", AssetPrefix},
		{`/\example.com`, AssetPrefix},
		{"/graphql", "/playground"},
		{"/graphql", "playground/"},
		{"/graphql", "//cdn.example.com/"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("HandlerWithPrefix(%q, %q) did not panic", tt.endpoint, tt.prefix)
				}
			}()
			HandlerWithPrefix(tt.endpoint, tt.prefix)
		}()
	}
}
