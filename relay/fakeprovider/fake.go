// Package fakeprovider is a stand-in for OpenAI's and Anthropic's APIs on
// 127.0.0.1, for tests of the relay (and of clients driven through it). It
// answers in each protocol's own shapes — JSON and server-sent-event
// streams, usage in both protocols' names — and records every request it
// receives, so a test can check what the relay sent (the injected key, the
// headers that came through), that nothing was sent at all, and when a
// request was cancelled.
//
// Endpoints: POST /v1/chat/completions, /v1/completions, /v1/embeddings,
// /v1/responses (OpenAI); POST /v1/messages, /v1/messages/count_tokens
// (Anthropic); GET /v1/models and /v1/models/{id} (an ID may contain "/"),
// in Anthropic's list shape when the request has x-api-key, OpenAI's
// otherwise. Anything else is 404 in the protocol's error shape.
//
// Successful answers say Text and report the usage of the constants below:
// OpenAI prompt_tokens/completion_tokens (input_tokens/output_tokens for
// responses); Anthropic input, cache and output tokens. A request with
// "stream": true is answered as a stream, Options.EventDelay between text
// events: OpenAI chunks ending in a usage chunk when
// stream_options.include_usage is set (every chunk before it has
// "usage": null, as OpenAI sends them), then [DONE]; responses events
// response.created … response.completed (with response.usage); Anthropic
// message_start (message.usage, output 1), content_block_*, two
// message_delta events with cumulative output counts (OutputTokens-2, then
// OutputTokens), message_stop.
//
// The model name of a POST chooses special behaviour:
//
//   - "fail-429": 429 in the protocol's error shape, with Retry-After: 7
//     and rate-limit headers; "fail-NNN": status NNN likewise
//   - "redirect": a 302 to http://169.254.169.254/ (never to be followed)
//   - "slow-first-byte": the answer starts after Options.FirstByteDelay
//   - "early-hints": a 103 with a Link header before the answer
//   - "trailer": the answer carries a trailer, X-Fake-Trailer
//   - "broken-stream": the stream stops after two events and the
//     connection is cut
//
// Every successful answer also carries headers a relay must drop
// (Set-Cookie, X-Internal-Debug) beside the ones it keeps (x-request-id,
// request-id, x-ratelimit-*, anthropic-ratelimit-*).
package fakeprovider

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Text is what every successful answer says, split into Chunks when streamed.
const Text = "Hello from the fake provider"

// Chunks are the pieces of Text a stream sends, one per event.
var Chunks = []string{"Hello", " from", " the", " fake", " provider"}

// Usage are the token counts every successful answer reports: OpenAI's
// prompt/completion tokens; Anthropic's input, cache and output tokens.
const (
	InputTokens         = 11
	OutputTokens        = 7
	CacheCreationTokens = 3
	CacheReadTokens     = 2
)

// AnthropicInput is the input count a relay should record for an Anthropic
// answer: input_tokens plus the cache writes and reads.
const AnthropicInput = InputTokens + CacheCreationTokens + CacheReadTokens

// Models are the models GET /v1/models lists.
var Models = []string{"gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "meta-llama/Llama-3-8b"}

// Request is what the fake received.
type Request struct {
	Method string
	Path   string // escaped, as received
	Query  string
	Header http.Header
	Body   []byte
	// Canceled is closed if the request's context ended before the fake
	// finished answering (the client, or the relay, went away).
	Canceled chan struct{}
	// Done is closed when the fake has finished with the request.
	Done chan struct{}

	mu     sync.Mutex
	sentAt []time.Time
}

// Sent returns the times each streamed event so far was written and
// flushed.
func (r *Request) Sent() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.sentAt...)
}

// Options change the fake's behaviour.
type Options struct {
	FirstByteDelay time.Duration // for model "slow-first-byte"
	EventDelay     time.Duration // between streamed text events
	// Events is how many text events a stream sends (Chunks repeated);
	// 0: one per chunk.
	Events int
	// APIKey, when set, is the only key accepted (Authorization: Bearer
	// for the OpenAI endpoints, x-api-key for Anthropic's, either for
	// models); any other is 401.
	APIKey string
}

// Provider is a running fake.
type Provider struct {
	*httptest.Server
	opts  Options
	conns atomic.Int64
	mu    sync.Mutex
	reqs  []*Request
}

// Start runs a fake on 127.0.0.1 until the test ends.
func Start(t testing.TB, o Options) *Provider {
	p := &Provider{opts: o}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	p.Start()
	t.Cleanup(p.Close)
	return p
}

// Conns returns how many TCP connections the fake accepted.
func (p *Provider) Conns() int64 { return p.conns.Load() }

// Requests returns what the fake received so far.
func (p *Provider) Requests() []*Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Request(nil), p.reqs...)
}

// Last returns the last request received, or nil.
func (p *Provider) Last() *Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) == 0 {
		return nil
	}
	return p.reqs[len(p.reqs)-1]
}

func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := &Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Canceled: make(chan struct{}), Done: make(chan struct{})}
	p.mu.Lock()
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
	finished := make(chan struct{})
	var once sync.Once
	canceled := func() { once.Do(func() { close(rec.Canceled) }) }
	defer func() {
		// A handler that returns because it saw the context end (between
		// events, or right after one) may return before the goroutine
		// below has reached its select, which would then pick either
		// channel: decide here, before the server ends the context itself.
		if r.Context().Err() != nil {
			canceled()
		}
		close(finished)
		close(rec.Done)
	}()
	go func() {
		select {
		case <-r.Context().Done():
			canceled()
		case <-finished:
		}
	}()

	path := strings.TrimSuffix(r.URL.Path, "/")
	anthropic := strings.HasPrefix(path, "/v1/messages") || (strings.HasPrefix(path, "/v1/models") && r.Header.Get("x-api-key") != "")
	if !p.authorized(r, anthropic) {
		writeError(w, anthropic, 401, map[bool]string{true: "authentication_error", false: "invalid_request_error"}[anthropic], "invalid x-api-key or bearer token")
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "/v1/models":
		p.writeModels(w, anthropic)
		return
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/models/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
		for _, m := range Models {
			if m == id {
				writeJSON(w, 200, map[string]any{"id": m, "object": "model", "type": "model", "owned_by": "fake"})
				return
			}
		}
		writeError(w, anthropic, 404, "not_found_error", "no such model")
		return
	case r.Method != http.MethodPost || !knownPost[path]:
		writeError(w, anthropic, 404, "not_found_error", "no such endpoint")
		return
	}
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(body, &req)
	if code, ok := strings.CutPrefix(req.Model, "fail-"); ok {
		status, err := strconv.Atoi(code)
		if err != nil || status < 400 || status > 599 {
			status = 500
		}
		if status == 429 {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("x-ratelimit-remaining-requests", "0")
			w.Header().Set("anthropic-ratelimit-requests-remaining", "0")
		}
		typ := map[bool]string{true: "rate_limit_error", false: "api_error"}[status == 429]
		writeError(w, anthropic, status, typ, "the fake answers "+strconv.Itoa(status))
		return
	}
	switch req.Model {
	case "redirect":
		w.Header().Set("Location", "http://169.254.169.254/latest/meta-data/")
		w.WriteHeader(http.StatusFound)
		return
	case "slow-first-byte":
		select {
		case <-time.After(p.opts.FirstByteDelay):
		case <-r.Context().Done():
			return
		}
	case "early-hints":
		w.Header().Set("Link", "</secret>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
	case "trailer":
		w.Header().Set("Trailer", "X-Fake-Trailer")
	}
	h := w.Header()
	h.Set("x-request-id", "req_fake_1")
	h.Set("request-id", "req_fake_1")
	h.Set("x-ratelimit-remaining-requests", "99")
	h.Set("anthropic-ratelimit-requests-remaining", "99")
	h.Set("Set-Cookie", "provider=secret")
	h.Set("X-Internal-Debug", "must not pass")
	broken := req.Model == "broken-stream"
	switch {
	case strings.HasPrefix(path, "/v1/messages") && req.Stream:
		p.streamAnthropic(w, r, rec, req.Model, broken)
	case path == "/v1/messages":
		writeJSON(w, 200, map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "model": req.Model,
			"content": []any{map[string]any{"type": "text", "text": Text}}, "stop_reason": "end_turn",
			"usage": anthropicUsage(OutputTokens)})
	case path == "/v1/messages/count_tokens":
		writeJSON(w, 200, map[string]any{"input_tokens": InputTokens})
	case path == "/v1/responses" && req.Stream:
		p.streamResponses(w, r, rec, req.Model, broken)
	case path == "/v1/responses":
		writeJSON(w, 200, response(req.Model, "completed", true))
	case path == "/v1/embeddings":
		writeJSON(w, 200, map[string]any{"object": "list", "model": req.Model,
			"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.1, 0.2, 0.3}}},
			"usage": map[string]any{"prompt_tokens": InputTokens, "total_tokens": InputTokens}})
	case req.Stream:
		p.streamOpenAI(w, r, rec, req.Model, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, broken)
	case path == "/v1/completions":
		writeJSON(w, 200, map[string]any{"id": "cmpl-fake", "object": "text_completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "text": Text}},
			"usage":   openAIUsage()})
	default:
		writeJSON(w, 200, map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": Text}}},
			"usage": openAIUsage()})
	}
	if req.Model == "trailer" {
		w.Header().Set("X-Fake-Trailer", "must not pass")
	}
}

var knownPost = map[string]bool{
	"/v1/chat/completions": true, "/v1/completions": true, "/v1/embeddings": true, "/v1/responses": true,
	"/v1/messages": true, "/v1/messages/count_tokens": true,
}

func (p *Provider) authorized(r *http.Request, anthropic bool) bool {
	if p.opts.APIKey == "" {
		return true
	}
	bearer := r.Header.Get("Authorization") == "Bearer "+p.opts.APIKey
	apiKey := r.Header.Get("x-api-key") == p.opts.APIKey
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/models"):
		return bearer || apiKey
	case anthropic:
		return apiKey
	}
	return bearer
}

func openAIUsage() map[string]any {
	return map[string]any{"prompt_tokens": InputTokens, "completion_tokens": OutputTokens, "total_tokens": InputTokens + OutputTokens,
		"prompt_tokens_details": map[string]any{"cached_tokens": 0}}
}

func anthropicUsage(output int) map[string]any {
	return map[string]any{"input_tokens": InputTokens, "output_tokens": output,
		"cache_creation_input_tokens": CacheCreationTokens, "cache_read_input_tokens": CacheReadTokens}
}

// response is an OpenAI responses-API object; usage only when complete.
func response(model, status string, complete bool) map[string]any {
	r := map[string]any{"id": "resp_fake", "object": "response", "status": status, "model": model, "output": []any{}, "usage": nil}
	if complete {
		r["output"] = []any{map[string]any{"type": "message", "id": "msg_fake", "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": Text, "annotations": []any{}}}}}
		r["output_text"] = Text
		r["usage"] = map[string]any{"input_tokens": InputTokens, "output_tokens": OutputTokens, "total_tokens": InputTokens + OutputTokens,
			"input_tokens_details": map[string]any{"cached_tokens": 0}}
	}
	return r
}

func (p *Provider) writeModels(w http.ResponseWriter, anthropic bool) {
	data := make([]any, len(Models))
	for i, m := range Models {
		data[i] = map[string]any{"id": m, "object": "model", "type": "model", "display_name": m, "owned_by": "fake"}
	}
	if anthropic {
		writeJSON(w, 200, map[string]any{"data": data, "has_more": false, "first_id": Models[0], "last_id": Models[len(Models)-1]})
		return
	}
	writeJSON(w, 200, map[string]any{"object": "list", "data": data})
}

// chunks are the text pieces of one stream.
func (p *Provider) chunks() []string {
	n := p.opts.Events
	if n <= 0 {
		n = len(Chunks)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = Chunks[i%len(Chunks)]
	}
	return out
}

// event writes one server-sent event and flushes it; false when the
// client has gone.
func (p *Provider) event(w http.ResponseWriter, r *http.Request, rec *Request, name string, data any) bool {
	b, _ := json.Marshal(data)
	if name != "" {
		fmt.Fprintf(w, "event: %s\n", name)
	}
	if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
		return false
	}
	if http.NewResponseController(w).Flush() != nil {
		return false
	}
	rec.mu.Lock()
	rec.sentAt = append(rec.sentAt, time.Now())
	rec.mu.Unlock()
	return r.Context().Err() == nil
}

func (p *Provider) pause(r *http.Request) bool {
	if p.opts.EventDelay <= 0 {
		return r.Context().Err() == nil
	}
	select {
	case <-time.After(p.opts.EventDelay):
		return true
	case <-r.Context().Done():
		return false
	}
}

// streamStart writes a stream's headers.
func streamStart(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
}

// cut ends the connection mid-answer (a "broken-stream", after two text
// events).
func cut() { panic(http.ErrAbortHandler) }

func (p *Provider) streamOpenAI(w http.ResponseWriter, r *http.Request, rec *Request, model string, includeUsage, broken bool) {
	streamStart(w)
	for i, c := range p.chunks() {
		if i > 0 && !p.pause(r) {
			return
		}
		if broken && i == 2 {
			cut()
		}
		delta := map[string]any{"content": c}
		if i == 0 {
			delta["role"] = "assistant"
		}
		chunk := map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": nil}}}
		if includeUsage {
			chunk["usage"] = nil
		}
		if !p.event(w, r, rec, "", chunk) {
			return
		}
	}
	final := map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}}
	if includeUsage {
		final["usage"] = nil
	}
	p.event(w, r, rec, "", final)
	if includeUsage {
		p.event(w, r, rec, "", map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
			"choices": []any{}, "usage": openAIUsage()})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (p *Provider) streamResponses(w http.ResponseWriter, r *http.Request, rec *Request, model string, broken bool) {
	streamStart(w)
	if !p.event(w, r, rec, "response.created", map[string]any{"type": "response.created", "response": response(model, "in_progress", false)}) {
		return
	}
	for i, c := range p.chunks() {
		if i > 0 && !p.pause(r) {
			return
		}
		if broken && i == 2 {
			cut()
		}
		if !p.event(w, r, rec, "response.output_text.delta", map[string]any{"type": "response.output_text.delta",
			"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": c}) {
			return
		}
	}
	p.event(w, r, rec, "response.completed", map[string]any{"type": "response.completed", "response": response(model, "completed", true)})
}

func (p *Provider) streamAnthropic(w http.ResponseWriter, r *http.Request, rec *Request, model string, broken bool) {
	streamStart(w)
	if !p.event(w, r, rec, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "usage": anthropicUsage(1)}}) {
		return
	}
	p.event(w, r, rec, "content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}})
	for i, c := range p.chunks() {
		if i > 0 && !p.pause(r) {
			return
		}
		if broken && i == 2 {
			cut()
		}
		if !p.event(w, r, rec, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": c}}) {
			return
		}
	}
	p.event(w, r, rec, "content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	// Output counts in message_delta are cumulative: a first one with part
	// of the count, then the total.
	p.event(w, r, rec, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": nil}, "usage": map[string]any{"output_tokens": OutputTokens - 2}})
	p.event(w, r, rec, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": OutputTokens}})
	p.event(w, r, rec, "message_stop", map[string]any{"type": "message_stop"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, anthropic bool, status int, typ, msg string) {
	if anthropic {
		writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
		return
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": nil}})
}
