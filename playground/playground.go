// Package playground serves GraphiQL, the in-browser GraphQL IDE, from assets
// embedded in the binary, so the playground works on a machine with no
// internet access (SPEC §5).
//
// The assets in dist/ are built from the recipe in web/ (GraphiQL, React and
// the Monaco editor bundled with esbuild; see web/README.md) and committed, so
// building or running cloudkeys never needs Node.
//
// # Mounting
//
// A handler answers two kinds of paths and 404s everything else:
//
//	/                    the page (exact path only)
//	/playground/<file>   the bundled assets (AssetPrefix)
//
// Register the same handler for both on the server's mux, without
// http.StripPrefix (it matches on the full request path):
//
//	pg := playground.Handler("/graphql")
//	mux.Handle("GET /", pg) // a GET pattern also matches HEAD
//	mux.Handle("GET /playground/", pg)
//
// "GET /" is the mux's catch-all, so this handler's 404 becomes the server's
// 404 for unknown paths. [HandlerWithPrefix] serves the assets under another
// prefix; mount that prefix instead of "/playground/". Mount the handler only
// when the playground is enabled (on in development, off in production unless
// explicitly enabled).
//
// # Security headers and caching
//
// Every response carries [CSP], X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer and X-Frame-Options: DENY. The page has no
// inline script: the GraphQL endpoint and the worker URLs reach the bundled
// script as data-* attributes on its root element.
//
// The page is served with Cache-Control: no-store. It references each asset as
// <prefix><file>?v=<hash>, the hash being a prefix of the SHA-256 of the
// embedded file, and an asset requested with its current hash is cached for a
// year as immutable. A new build changes the hash, so browsers fetch the new
// file after an upgrade; a request with an old or missing hash still gets the
// current file, but with Cache-Control: no-cache. Assets also carry an ETag and
// are sent gzip-compressed to clients that accept it (compressed once, on first
// use); a compression middleware in front of this handler must leave responses
// that already carry Content-Encoding alone.
package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CSP is the Content-Security-Policy of the playground page. It allows
// nothing from outside the origin: scripts, web workers, styles and API calls
// come from the server itself, and fonts and images from it or from data:
// URLs.
//
// style-src needs 'unsafe-inline' because the Monaco editor inside GraphiQL
// injects <style> elements at run time (line layout, theme colours,
// decorations) and has no nonce support; without it the editors render every
// line on top of the first, without syntax colours. Scripts stay strict. See
// web/README.md for the measurements behind this choice.
const CSP = "default-src 'none'; " +
	"script-src 'self'; " +
	"worker-src 'self'; " +
	"style-src 'self' 'unsafe-inline'; " +
	"connect-src 'self'; " +
	"img-src 'self' data:; " +
	"font-src 'self' data:; " +
	"base-uri 'none'; " +
	"form-action 'none'; " +
	"frame-ancestors 'none'"

// AssetPrefix is the path under which [Handler] serves the bundled assets.
const AssetPrefix = "/playground/"

// immutable is the Cache-Control of an asset requested with its current hash.
const immutable = "public, max-age=31536000, immutable"

//go:embed dist
var dist embed.FS

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page.html").Parse(pageHTML))

// contentTypes lists the extensions the build recipe produces. A test fails
// if dist/ holds a file of any other kind.
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
}

// An asset is one embedded file of dist/.
type asset struct {
	contentType string
	hash        string // the ?v= value that makes a request cacheable; also the ETag
	body        []byte

	gzipOnce sync.Once
	gzipped  []byte // nil if compression does not make it smaller
}

// gzipBody returns the asset compressed with gzip, or nil if that is not
// smaller. It compresses on first use, so a process that never serves the
// playground never pays for it.
func (a *asset) gzipBody() []byte {
	a.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(a.body); err != nil {
			return
		}
		if err := zw.Close(); err != nil {
			return
		}
		if buf.Len() < len(a.body) {
			a.gzipped = buf.Bytes()
		}
	})
	return a.gzipped
}

// assets maps the file names in dist/ to their contents. It is shared by all
// handlers, so each asset is hashed and compressed once per process.
var assets = sync.OnceValue(func() map[string]*asset {
	entries, err := fs.ReadDir(dist, "dist")
	if err != nil {
		panic(err) // the directory is embedded: unreachable
	}
	m := make(map[string]*asset, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		body, err := fs.ReadFile(dist, "dist/"+e.Name())
		if err != nil {
			panic(err) // the file is embedded: unreachable
		}
		sum := sha256.Sum256(body)
		ct, ok := contentTypes[path.Ext(e.Name())]
		if !ok {
			ct = "application/octet-stream"
		}
		m[e.Name()] = &asset{
			contentType: ct,
			hash:        hex.EncodeToString(sum[:8]),
			body:        body,
		}
	}
	return m
})

// Handler returns the playground for the GraphQL endpoint at the given path
// (e.g. "/graphql"), with its assets under [AssetPrefix]. See the package
// documentation for how to mount it.
//
// The endpoint must be a same-origin absolute path, since the page's CSP only
// lets it talk to its own origin; Handler panics otherwise.
func Handler(endpoint string) http.Handler {
	return HandlerWithPrefix(endpoint, AssetPrefix)
}

// HandlerWithPrefix is [Handler] with the assets served under prefix instead
// of [AssetPrefix]. The prefix must start and end with "/"; mount the handler
// on "GET /" and on "GET "+prefix. HandlerWithPrefix panics on an invalid
// endpoint or prefix.
func HandlerWithPrefix(endpoint, prefix string) http.Handler {
	if err := checkPath(endpoint); err != nil {
		panic(fmt.Sprintf("playground: endpoint %q: %v", endpoint, err))
	}
	if err := checkPath(prefix); err != nil || !strings.HasSuffix(prefix, "/") {
		panic(fmt.Sprintf("playground: asset prefix %q must be an absolute path ending in /", prefix))
	}
	as := assets()
	assetURL := func(name string) string {
		a, ok := as[name]
		if !ok {
			panic("playground: dist/" + name + " is missing; rebuild it (see web/README.md)")
		}
		return prefix + name + "?v=" + a.hash
	}
	var buf bytes.Buffer
	err := page.Execute(&buf, struct {
		Endpoint, CSS, JS, EditorWorker, JSONWorker, GraphQLWorker string
	}{
		Endpoint:      endpoint,
		CSS:           assetURL("graphiql.css"),
		JS:            assetURL("graphiql.js"),
		EditorWorker:  assetURL("editor.worker.js"),
		JSONWorker:    assetURL("json.worker.js"),
		GraphQLWorker: assetURL("graphql.worker.js"),
	})
	if err != nil {
		panic(err) // the template and its data are fixed: unreachable
	}
	return &handler{page: buf.Bytes(), prefix: prefix, assets: as}
}

// checkPath reports whether p is an absolute path without scheme or host, so a
// URL built from it stays on the page's origin.
func checkPath(p string) error {
	u, err := url.Parse(p)
	if err != nil {
		return err
	}
	// Browsers read "//host" and "/\host" as another origin.
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.Contains(p, `\`) ||
		u.Scheme != "" || u.Host != "" {
		return errors.New("not an absolute path on this origin")
	}
	return nil
}

type handler struct {
	page   []byte
	prefix string
	assets map[string]*asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/":
		h.servePage(w, r)
	case strings.HasPrefix(p, h.prefix):
		a, ok := h.assets[p[len(h.prefix):]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		serveAsset(w, r, a)
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(h.page)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(h.page)
	}
}

func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	if r.URL.Query().Get("v") == a.hash {
		hdr.Set("Cache-Control", immutable)
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	hdr.Add("Vary", "Accept-Encoding")
	body, etag := a.body, `"`+a.hash+`"`
	if acceptsGzip(r.Header) {
		if gz := a.gzipBody(); gz != nil {
			body, etag = gz, `"`+a.hash+`-gzip"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	// ServeContent answers If-None-Match (304), Range and HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the Accept-Encoding header allows gzip, by name
// or through "*", with a non-zero quality value.
func acceptsGzip(h http.Header) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			q := 1.0
			if name, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil {
					f = 0
				}
				q = f
			}
			switch coding = strings.TrimSpace(coding); {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				gzipQ = max(gzipQ, q)
			case coding == "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
