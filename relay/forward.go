// Package relay forwards OpenAI- and Anthropic-protocol calls to the
// provider of a stored credential with the real key injected, so that an
// application holds only a revocable relay key (SPEC §8). The Gateway
// (gateway.go) works out the caller and the credential; the Forwarder
// (this file) does everything HTTP and nothing with the database; the Meter
// (meter.go) writes the counts in batches.
//
// The Forwarder's API:
//
//	New(Options) *Forwarder
//	(*Forwarder).Forward(w, r, rest string, t Target, done func(Outcome))
//	(*Forwarder).Close()
//	WriteError(w, models.APIType, *apperr.Error)  // the relay's refusals, in the provider's shape
//	APITypeOf(r) models.APIType                    // the shape to refuse in before a credential is known
//
// Forward takes an already resolved Target (base URL, key, API type,
// allowed models) and:
//
//   - matches rest (the still-escaped path after /v1/) against the
//     endpoints of the API type: OPENAI POST chat/completions, completions,
//     embeddings, responses; ANTHROPIC POST messages, messages/count_tokens;
//     both GET models and GET models/{id}, where the ID may contain "/". A
//     "." or ".." segment, an empty segment or an encoded slash is 404;
//   - sends to the base URL's path joined with /v1/{rest}, the base URL's
//     query kept and the client's parameters added;
//   - sends the provider's auth (Authorization: Bearer for OPENAI;
//     x-api-key and anthropic-version 2023-06-01 unless the client sent
//     one, for ANTHROPIC) and from the client only Content-Type, Accept,
//     OpenAI-Beta, anthropic-version, anthropic-beta, Idempotency-Key;
//   - passes back the status and the body unchanged, and of the headers
//     only Content-Type, the request ID (x-request-id, request-id), the
//     rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*),
//     Retry-After and retry-after-ms; streams (text/event-stream) are
//     flushed as each piece arrives and never held whole;
//   - reads the token counts from the answer as it passes (usage.go).
//
// It refuses, in the provider's error shape and before anything is sent:
// 404 outside the allow-list or a model ID outside allowedModels; 409 when
// the stored key cannot be used; 413 over MaxBodyBytes; 403 when a POST's
// model is not allowed. It answers 502 when the provider cannot be
// reached, the SSRF guard refuses its address, or it redirects; 504 when
// its response headers do not come within HeaderTimeout. The provider's
// own errors pass through unchanged.
//
// Decisions where SPEC §8 is silent:
//   - A known path with another method (GET chat/completions) is 404 like
//     any path outside the allow-list, not 405: nothing is sent either way,
//     and the relay's refusals are the statuses SPEC lists.
//   - A redirect (any 3xx) is not followed and not passed on: 502, as for
//     an unreachable provider (its Location could point anywhere). A 1xx
//     other than the final answer is dropped, not passed on.
//   - A POST whose body is not a JSON object, has no string "model", or
//     names a model more than once with one not allowed, is 403 under
//     allowedModels (the relay cannot tell which model the provider would
//     use). Model IDs match exactly, case included.
//   - The client's query parameter whose name the base URL's query already
//     has is dropped (the credential's owner fixed it), as is one that does
//     not decode.
//   - An empty key, or one that cannot be sent as a header, is 409 like a
//     key that needs re-entry.
//   - The client's Accept-Encoding is not forwarded: the relay asks for
//     gzip itself and decompresses (Go's transport does), so that it can
//     read the usage; a Content-Encoding the provider sends unasked is
//     passed on with the body, which is then not counted.
//   - Under allowedModels, GET models keeps only the allowed entries of
//     data; Anthropic's first_id/last_id follow the kept entries.
//   - HeaderTimeout runs from the start of the call (connect, TLS, the
//     request, the headers), not from the end of the request.
//   - Outcome.Status is 499 when the client went away before the answer's
//     headers (nothing is written), as nginx logs it.
//   - The Forwarder logs nothing (transport errors can hold the upstream URL
//     and its query); the Gateway logs the Outcome.
//   - Options.Dial is the one way to dial, and it must be the probe's guard;
//     nil is a guard with private addresses refused, never an unguarded
//     dialer.
//
// What may import it: server (the routes) and app (the wiring).
package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloudkeys/apperr"
	"cloudkeys/models"
	"cloudkeys/probe"
)

// Target is where one relayed call goes, resolved by the Gateway.
type Target struct {
	APIType models.APIType
	// BaseURL is the credential's effective base URL (it may have a path
	// and query parameters).
	BaseURL string
	// APIKey is the provider key injected; never logged, never in an error.
	APIKey string
	// NeedsReentry: the stored key cannot be opened; 409 and nothing sent.
	NeedsReentry bool
	// AllowedModels are the models the relay key may use; nil: any.
	AllowedModels models.ModelList
}

// The defaults of Options (CLOUDKEYS_RELAY_*).
const (
	DefaultMaxBodyBytes  = 10 << 20
	DefaultHeaderTimeout = 120 * time.Second
	DefaultMaxDuration   = 10 * time.Minute
)

// Options configure a Forwarder. The zero value is the production
// default, with private addresses refused.
type Options struct {
	// Dial opens every upstream connection. It must be the probe's
	// SSRF-guarded dialer — probe.Client.DialContext or
	// probe.Guard.DialContext — so that the relay and the connection test
	// share one guard and one CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS switch.
	// nil: probe.NewGuard(false).DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxBodyBytes bounds a request body (413); default 10 MiB.
	MaxBodyBytes int64
	// HeaderTimeout bounds the wait for the provider's response headers
	// (504); default 120 s.
	HeaderTimeout time.Duration
	// MaxDuration bounds a whole call, streaming included; default 10 min.
	MaxDuration time.Duration
	// WrapTransport, if set, wraps the upstream transport (app passes the
	// tracing's: a span per call). The wrapped transport still dials with
	// Dial only.
	WrapTransport func(http.RoundTripper) http.RoundTripper

	// skipUsage turns the counting off, for the benchmark of what it costs.
	skipUsage bool
}

// Outcome is what the Gateway counts and logs of one call.
type Outcome struct {
	Endpoint string // "POST chat/completions", "GET models/{id}"; "" when none matched
	// Model is the request's JSON "model" (the last one, if repeated), or
	// the {id} of models/{id}; "" if none. Clipped to 200 bytes.
	Model  string
	Status int // the status the client got (499: it went away first)
	// Refused: the relay answered itself (a refusal, or the provider could
	// not be reached, redirected, or was too slow) rather than passing the
	// provider's answer on; nothing, or not all of the request, was sent.
	Refused bool
	// Aborted: the answer was cut short (the client went away, the
	// provider's stream broke, MaxDuration passed) after it had started.
	Aborted bool
	// InputTokens and OutputTokens are the provider's usage, as read from
	// the answer (as far as it went, when Aborted).
	InputTokens, OutputTokens int64
	// Upstream is the time from sending the call to the provider's
	// response headers; 0 when none came (refused, unreachable, too slow).
	Upstream time.Duration
}

// Forwarder relays calls; it is safe for concurrent use, and all calls
// share one pool of upstream connections.
type Forwarder struct {
	opts      Options
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

// requestHeaders are forwarded from the client, in canonical form;
// everything else is dropped (the client's Authorization, x-api-key,
// cookies, X-Forwarded-*, User-Agent, …).
var requestHeaders = []string{"Content-Type", "Accept", "Openai-Beta", "Anthropic-Version", "Anthropic-Beta", "Idempotency-Key"}

// responseHeader reports whether a provider's response header (canonical
// name) is passed back.
func responseHeader(name string) bool {
	switch name {
	case "Content-Type", "Content-Encoding", "Retry-After", "Retry-After-Ms", "X-Request-Id", "Request-Id":
		return true
	}
	return strings.HasPrefix(name, "X-Ratelimit-") || strings.HasPrefix(name, "Anthropic-Ratelimit-")
}

// New returns a Forwarder.
func New(o Options) *Forwarder {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.Dial == nil {
		o.Dial = probe.NewGuard(false).DialContext
	}
	f := &Forwarder{opts: o}
	f.transport = &http.Transport{
		Proxy:                  nil, // a proxy would dial the provider itself, past the guard
		DialContext:            o.Dial,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    128,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	var rt http.RoundTripper = f.transport
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      rt,
		FlushInterval:  -1, // every write reaches the client at once: events stream as they come
		ModifyResponse: f.modifyResponse,
		ErrorHandler:   f.errorHandler,
		BufferPool:     bufferPool{},
		// The proxy's own log lines would carry transport errors, whose
		// text can hold the upstream URL (and a base URL's query); the
		// Outcome says what happened instead.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return f
}

// Close drops idle upstream connections.
func (f *Forwarder) Close() { f.transport.CloseIdleConnections() }

// call is one call's state, carried in its request context. Only the
// goroutine of Forward touches it (ReverseProxy calls Rewrite,
// ModifyResponse, ErrorHandler and reads the body there); the timer only
// reads headers and cancels the context.
type call struct {
	target   Target
	route    route
	upstream *url.URL
	body     []byte
	out      Outcome
	scan     *usageScanner
	resBody  *countingBody
	timer    *time.Timer
	deadline time.Time   // of MaxDuration
	sent     time.Time   // when the call was handed to the transport
	headers  atomic.Bool // the response headers came: the timer is MaxDuration's
}

type callKey struct{}

func callOf(ctx context.Context) *call { return ctx.Value(callKey{}).(*call) }

// Causes of a call's end that are not the client's.
var (
	errHeaderTimeout = errors.New("relay: no response headers within the header timeout")
	errMaxDuration   = errors.New("relay: the call ran past the maximum duration")
	errRedirected    = errors.New("relay: the provider redirected")
	errInformational = errors.New("relay: the provider switched protocols")
)

// The relay's own refusals. Messages are fixed text: nothing from the
// request, the provider or the key.
var (
	errNoEndpoint      = apperr.Errorf(apperr.NotFound, "the relay does not forward this endpoint for this credential's API type")
	errReentry         = apperr.Errorf(apperr.Conflict, "the credential's stored key cannot be used: its owner must enter the API key again")
	errModelNotAllowed = apperr.Errorf(apperr.Forbidden, "this relay key may not use this model")
	errNoModel         = apperr.Errorf(apperr.NotFound, "model not found")
	errTooLarge        = apperr.Errorf(apperr.BodyLimit, "the request body is larger than the relay accepts")
	errUnreadable      = apperr.Errorf(apperr.BadRequest, "the request body could not be read")
	errUnreachable     = apperr.Errorf(apperr.BadGateway, "the relay could not reach the provider")
	errGuard           = apperr.Errorf(apperr.BadGateway, "the relay refused to connect to the credential's base URL: it is a private, loopback, link-local or metadata address")
	errRedirect        = apperr.Errorf(apperr.BadGateway, "the provider answered with a redirect, which the relay does not follow: check the credential's base URL")
	errBadAnswer       = apperr.Errorf(apperr.BadGateway, "the provider's answer could not be passed on")
	errSlowProvider    = apperr.Errorf(apperr.GatewayTimeout, "the provider did not answer in time")
	errBadBaseURL      = apperr.Errorf(apperr.BadGateway, "the credential's base URL is not usable")
)

// statusClientClosed is the status logged for a call whose client went
// away before the answer (nginx's 499); nothing is written.
const statusClientClosed = 499

// Forward relays r to t, then calls done (if not nil) with the outcome.
// rest is the still-escaped path after "/v1/" (r.URL.EscapedPath() minus
// the prefix). Whatever happens, the client gets an answer: the
// provider's, or a refusal in the provider's error shape.
//
// An answer cut short after it started (the client went away, the
// provider's stream broke, MaxDuration passed) ends the handler with
// http.ErrAbortHandler, as httputil.ReverseProxy does, so that the client
// sees a broken answer rather than a complete one; done is called first,
// with Aborted set. That is why the outcome goes to a callback rather than
// a return value.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, rest string, t Target, done func(Outcome)) {
	c := &call{target: t}
	defer func() {
		p := recover()
		if c.scan != nil {
			c.out.InputTokens, c.out.OutputTokens = c.scan.t.tokens(t.APIType)
		}
		if p != nil || (c.resBody != nil && c.resBody.broken) {
			c.out.Aborted = true
		}
		if done != nil {
			done(c.out)
		}
		if p != nil {
			panic(p)
		}
	}()
	refuse := func(e *apperr.Error) {
		WriteError(w, t.APIType, e)
		c.out.Status, c.out.Refused = apperr.HTTPStatus(e.Code), true
	}

	rt, ok := match(t.APIType, r.Method, rest)
	if !ok {
		refuse(errNoEndpoint)
		return
	}
	c.route = rt
	c.out.Endpoint, c.out.Model = rt.endpoint, clip(rt.modelID, maxModelLog)
	if t.NeedsReentry || t.APIKey == "" || !validHeaderValue(t.APIKey) {
		refuse(errReentry)
		return
	}
	base, err := parseBaseURL(t.BaseURL)
	if err != nil {
		refuse(errBadBaseURL)
		return
	}
	if rt.modelID != "" && !t.AllowedModels.Allows(rt.modelID) {
		refuse(errNoModel)
		return
	}
	if r.Method == http.MethodPost {
		body, e := f.readBody(w, r)
		if e != nil {
			refuse(e)
			return
		}
		vals, nonString, ok := requestModels(body)
		if len(vals) > 0 {
			c.out.Model = clip(vals[len(vals)-1], maxModelLog)
		}
		if t.AllowedModels != nil && !modelsAllowed(t.AllowedModels, body, vals, nonString, ok) {
			refuse(errModelNotAllowed)
			return
		}
		c.body = body
	}
	c.upstream = upstreamURL(base, rt.segments, r.URL.RawQuery)

	// The call's context: the client's, ended by one timer — at
	// HeaderTimeout until the headers come (modifyResponse), then at
	// MaxDuration from the start.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	c.deadline = time.Now().Add(f.opts.MaxDuration)
	c.timer = time.AfterFunc(min(f.opts.HeaderTimeout, f.opts.MaxDuration), func() {
		if c.headers.Load() {
			cancel(errMaxDuration)
		} else {
			cancel(errHeaderTimeout)
		}
	})
	defer c.timer.Stop()

	f.proxy.ServeHTTP(&responseWriter{ResponseWriter: w}, r.WithContext(context.WithValue(ctx, callKey{}, c)))
}

// modelsAllowed is the allowedModels rule for a POST body: valid JSON, an
// object, at least one "model", every one a string and allowed.
func modelsAllowed(allowed models.ModelList, body []byte, vals []string, nonString, ok bool) bool {
	if !ok || nonString || len(vals) == 0 || !json.Valid(body) {
		return false
	}
	for _, m := range vals {
		if !allowed.Allows(m) {
			return false
		}
	}
	return true
}

// readBody reads a POST body up to the limit: 413 beyond it, before
// anything is sent.
func (f *Forwarder) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apperr.Error) {
	if r.ContentLength > f.opts.MaxBodyBytes {
		return nil, errTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, f.opts.MaxBodyBytes)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		return nil, errUnreadable
	}
	return buf.Bytes(), nil
}

func (f *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	c := callOf(pr.In.Context())
	out := pr.Out
	out.URL, out.Host = c.upstream, ""
	c.sent = time.Now()
	h := make(http.Header, len(requestHeaders)+3)
	for _, name := range requestHeaders {
		if vs := pr.In.Header[name]; len(vs) > 0 {
			h[name] = append([]string(nil), vs...)
		}
	}
	h["User-Agent"] = []string{"cloudkeys-relay"}
	switch c.target.APIType {
	case models.APIAnthropic:
		h["X-Api-Key"] = []string{c.target.APIKey}
		if len(h["Anthropic-Version"]) == 0 {
			h["Anthropic-Version"] = []string{probe.AnthropicVersion}
		}
	default:
		h["Authorization"] = []string{"Bearer " + c.target.APIKey}
	}
	out.Header, out.Trailer, out.TransferEncoding, out.Close = h, nil, nil, false
	out.Body, out.ContentLength, out.GetBody = nil, 0, nil
	if len(c.body) > 0 {
		body := c.body
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
}

func (f *Forwarder) modifyResponse(res *http.Response) error {
	c := callOf(res.Request.Context())
	if !c.timer.Stop() {
		return errHeaderTimeout // the timer fired as the headers came
	}
	c.headers.Store(true)
	c.timer.Reset(time.Until(c.deadline))
	c.out.Upstream = time.Since(c.sent)
	switch {
	case res.StatusCode < 200:
		return errInformational
	case res.StatusCode <= 399 && res.StatusCode >= 300:
		return errRedirected
	}
	for name := range res.Header {
		if !responseHeader(name) {
			delete(res.Header, name)
		}
	}
	res.Trailer = nil // trailers are headers too: none passes
	ok := res.StatusCode >= 200 && res.StatusCode <= 299
	if ok && c.route.endpoint == epModels && c.target.AllowedModels != nil {
		if err := filterModels(res, c.target.AllowedModels); err != nil {
			return err
		}
	}
	c.resBody = &countingBody{ReadCloser: res.Body}
	if ok && !f.opts.skipUsage && c.route.endpoint != epModels && c.route.endpoint != epModel &&
		res.Header.Get("Content-Encoding") == "" {
		ct := res.Header.Get("Content-Type")
		switch {
		case hasMediaType(ct, "text/event-stream"):
			c.scan = newUsageScanner(true)
		case strings.Contains(strings.ToLower(ct), "json"):
			c.scan = newUsageScanner(false)
		}
		c.resBody.scan = c.scan
	}
	res.Body = c.resBody
	c.out.Status = res.StatusCode
	return nil
}

// errorHandler answers a call the provider did not answer usably:
// unreachable or refused by the guard (502), too slow (504), redirecting
// (502). A client that went away gets nothing.
func (f *Forwarder) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	c := callOf(r.Context())
	var e *apperr.Error
	var ne net.Error
	cause := context.Cause(r.Context())
	switch {
	case errors.Is(err, errRedirected):
		e = errRedirect
	case errors.Is(err, errInformational), errors.Is(err, errModelList):
		e = errBadAnswer
	case errors.Is(cause, errHeaderTimeout), errors.Is(cause, errMaxDuration), errors.Is(err, errHeaderTimeout):
		e = errSlowProvider
	case errors.Is(cause, context.DeadlineExceeded):
		e = errSlowProvider // a deadline of the caller's
	case r.Context().Err() != nil:
		c.out.Status = statusClientClosed
		return
	case probe.IsRefused(err):
		e = errGuard
	case errors.As(err, &ne) && ne.Timeout():
		e = errSlowProvider
	default:
		e = errUnreachable
	}
	WriteError(w, c.target.APIType, e)
	c.out.Status, c.out.Refused = apperr.HTTPStatus(e.Code), true
}

// responseWriter keeps what ReverseProxy would pass on past the header
// allow-list: the 1xx answers (with the provider's headers) are dropped,
// and so are the trailers, which ReverseProxy adds to the header map once
// the body is copied (the transport fills them in at the end of the body,
// whatever ModifyResponse did). Unwrap lets ReverseProxy's flushes through.
type responseWriter struct {
	http.ResponseWriter
	wrote bool
	after http.Header // the header map once the status is written: discarded
}

func (w *responseWriter) Header() http.Header {
	if w.wrote {
		if w.after == nil {
			w.after = http.Header{}
		}
		return w.after
	}
	return w.ResponseWriter.Header()
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 200 && !w.wrote {
		w.wrote = true
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferPool lends ReverseProxy its 32 KiB copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// hasMediaType reports whether a Content-Type value is of media type mt.
func hasMediaType(ct, mt string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(ct), mt)
}

// validHeaderValue reports whether v can be sent as an HTTP header value
// (no control characters other than tab).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}
