package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rs/cors"

	"cloudkeys/apperr"
	"cloudkeys/metrics"
)

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests gives every request an ID (echoed as X-Request-ID) and logs
// one line per request: method, path, status, duration. It never logs
// headers, query strings or bodies, which can carry tokens and keys. With
// m (not nil), it also counts the request in metrics by route (routeOf)
// and status — also one cut short by a panic (a broken relayed stream),
// which gets no log line.
func logRequests(log *slog.Logger, m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := newRequestID()
			ctx := withRequestID(r.Context(), id)
			w.Header().Set("X-Request-ID", id)
			rec := &statusRecorder{ResponseWriter: w}
			if m != nil {
				defer observeRequest(m, r.URL.Path, rec, start)
			}
			next.ServeHTTP(rec, r.WithContext(ctx))
			log.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", rec.status), slog.Int("bytes", rec.bytes),
				slog.Duration("duration", time.Since(start)))
		})
	}
}

// observeRequest counts one answered request: a handler that wrote
// nothing was answered 200 by net/http.
func observeRequest(m *metrics.Metrics, path string, rec *statusRecorder, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	m.HTTPRequest(routeOf(path), status, time.Since(start))
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.URL.Path == "/graphql" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// oneAuthorization refuses a request with more than one Authorization
// header (400 BAD_REQUEST in the GraphQL error shape) rather than answer
// it as the first one: proxies and servers disagree on which one counts,
// and a request that means two callers means none. The relay's routes
// refuse it themselves, in the provider's error shape.
func oneAuthorization(next http.Handler) http.Handler {
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message":    "send one Authorization header, not several",
		"extensions": map[string]any{"code": apperr.BadRequest},
	}}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 1 && !strings.HasPrefix(r.URL.Path, "/relay/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write(body)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// corsMaxAge is how long a browser may cache a preflight answer, in
// seconds. Chromium caps it at 2 hours anyway; 10 minutes lets a change of
// CLOUDKEYS_CORS_ORIGINS reach browsers soon.
const corsMaxAge = 600

// allowCORS lets web pages on the given origins call the wrapped handler
// (the GraphQL endpoint) from the browser. With no origins it is the
// identity: no CORS header is ever sent, so browsers keep pages of other
// origins from reading any answer. Origins are exact ("https://app.example.com")
// or contain one "*" ("https://*.example.com"); "*" alone allows any origin,
// which is safe only because no cookie or other ambient credential exists:
// a token travels in the Authorization header, which a page can only send
// if it already holds the token.
//
// Allowed: GET, POST and OPTIONS; the Authorization and Content-Type
// headers; no credentials (cloudkeys uses no cookies); X-Request-ID exposed
// to scripts so a browser client can quote it in a bug report.
func allowCORS(origins []string) func(http.Handler) http.Handler {
	if len(origins) == 0 {
		// rs/cors reads an empty list as "*": never hand it one.
		return func(h http.Handler) http.Handler { return h }
	}
	c := cors.New(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowedHeaders:   []string{"Authorization", "Content-Type"},
		ExposedHeaders:   []string{"X-Request-ID"},
		AllowCredentials: false,
		MaxAge:           corsMaxAge,
	})
	return c.Handler
}

// relayRequestHeaders are the request headers a browser may send to the
// relay routes besides Authorization and Content-Type: those the official
// OpenAI and Anthropic SDKs send (their x-stainless-* telemetry headers
// among them; rs/cors matches names exactly, so each is listed). The relay
// forwards only its own allow-list of them (relay.Forwarder).
var relayRequestHeaders = []string{
	"Authorization", "Content-Type", "Accept", "x-api-key",
	"anthropic-version", "anthropic-beta", "anthropic-dangerous-direct-browser-access",
	"OpenAI-Beta", "OpenAI-Organization", "OpenAI-Project", "Idempotency-Key",
	"x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
	"x-stainless-retry-count", "x-stainless-runtime", "x-stainless-runtime-version",
	"x-stainless-timeout", "x-stainless-helper-method", "x-stainless-stream-helper",
	"x-stainless-async", "x-stainless-raw-response", "x-stainless-poll-helper",
	"x-stainless-custom-poll-interval",
}

// allowRelayCORS is allowCORS for the relay routes: the same origins, the
// methods the relay's endpoints use, and the SDKs' headers; the provider's
// request-ID and rate-limit headers are exposed to scripts.
func allowRelayCORS(origins []string) func(http.Handler) http.Handler {
	if len(origins) == 0 {
		return func(h http.Handler) http.Handler { return h }
	}
	c := cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowedHeaders: relayRequestHeaders,
		ExposedHeaders: []string{"X-Request-ID", "request-id", "x-request-id", "Retry-After",
			"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
			"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
		AllowCredentials: false,
		MaxAge:           corsMaxAge,
	})
	return c.Handler
}

// bodyReadTimeout bounds reading a request's body (at most
// CLOUDKEYS_MAX_BODY_BYTES for /graphql): the server has no
// connection-wide read timeout, because relayed streams outlive any.
const bodyReadTimeout = time.Minute

// withDeadlines sets every request's connection deadlines, which the
// server as a whole cannot have (relayed streams outlive any): a minute to
// read the request and its whole timeout and 10 s more to write the answer —
// CLOUDKEYS_REQUEST_TIMEOUT, or CLOUDKEYS_RELAY_MAX_DURATION on /relay/
// (whose body deadline the relay sets and lifts itself). A timeout of 0
// means no deadline. Setting them on every request also clears those a
// previous request left on a kept-alive connection.
func withDeadlines(requestTimeout, relayDuration time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			now := time.Now()
			read, timeout := now.Add(bodyReadTimeout), requestTimeout
			if strings.HasPrefix(r.URL.Path, "/relay/") {
				read, timeout = time.Time{}, relayDuration
			}
			write := time.Time{}
			if timeout > 0 {
				write = now.Add(timeout + 10*time.Second)
			}
			rc.SetReadDeadline(read)
			rc.SetWriteDeadline(write)
			next.ServeHTTP(w, r)
		})
	}
}
