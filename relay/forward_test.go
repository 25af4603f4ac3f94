package relay

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloudkeys/models"
	"cloudkeys/probe"
	"cloudkeys/relay/fakeprovider"
)

func TestForwardChatCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false))
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	msg := m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	if msg["content"] != fakeprovider.Text {
		t.Errorf("answer %s", a.body)
	}
	got := e.fake.Last()
	if got.Method != "POST" || got.Path != "/v1/chat/completions" || got.Header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("the provider got %s %s with Authorization %q", got.Method, got.Path, got.Header.Get("Authorization"))
	}
	out := e.outcome()
	if out.Upstream <= 0 {
		t.Errorf("outcome without the upstream time: %+v", out)
	}
	out.Upstream = 0
	want := Outcome{Endpoint: "POST chat/completions", Model: "gpt-4o-mini", Status: 200,
		InputTokens: fakeprovider.InputTokens, OutputTokens: fakeprovider.OutputTokens}
	if out != want {
		t.Errorf("outcome %+v, want %+v", out, want)
	}
}

// TestRequestHeaders: the relay sets the provider's auth from the stored
// key and forwards only the allow-listed headers of the client.
func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	client := []string{
		"Authorization", "Bearer " + relayKey,
		"x-api-key", relayKey,
		"Cookie", "session=abc",
		"X-Forwarded-For", "203.0.113.9",
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https",
		"Forwarded", "for=203.0.113.9",
		"X-Real-Ip", "203.0.113.9",
		"User-Agent", "OpenAI/Python 1.0",
		"X-Stainless-Lang", "python",
		"OpenAI-Organization", "org-client",
		"Anthropic-Dangerous-Direct-Browser-Access", "true",
		"Accept", "application/json",
		"OpenAI-Beta", "assistants=v2",
		"anthropic-beta", "tools-2024-04-04",
		"Idempotency-Key", "idem-1",
		"Te", "trailers",
		"Connection", "X-Custom-Hop",
		"X-Custom-Hop", "1",
	}
	for _, tt := range []struct {
		api             models.APIType
		path            string
		body            any
		clientVersion   string // anthropic-version the client sends, "" none
		wantAuth        map[string]string
		wantUnsentNames []string
	}{
		{models.APIOpenAI, "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", false, false), "",
			map[string]string{"Authorization": "Bearer " + testKey}, []string{"X-Api-Key", "Anthropic-Version"}},
		{models.APIAnthropic, "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), "",
			map[string]string{"X-Api-Key": testKey, "Anthropic-Version": probe.AnthropicVersion}, []string{"Authorization"}},
		{models.APIAnthropic, "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), "2024-01-01",
			map[string]string{"X-Api-Key": testKey, "Anthropic-Version": "2024-01-01"}, []string{"Authorization"}},
	} {
		t.Run(string(tt.api)+tt.clientVersion, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{api: tt.api})
			h := client
			if tt.clientVersion != "" {
				h = append(slices.Clone(client), "anthropic-version", tt.clientVersion)
			}
			a := e.call("POST", tt.path, tt.body, h...)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			got := e.fake.Last().Header
			want := map[string]string{
				"Content-Type": "application/json", "Accept": "application/json", "Openai-Beta": "assistants=v2",
				"Anthropic-Beta": "tools-2024-04-04", "Idempotency-Key": "idem-1", "User-Agent": "cloudkeys-relay",
				// Added by Go's transport: the body's length, and gzip (which it decompresses).
				"Content-Length": "", "Accept-Encoding": "gzip",
			}
			for k, v := range tt.wantAuth {
				want[k] = v
			}
			for name, vs := range got {
				w, ok := want[name]
				switch {
				case !ok:
					t.Errorf("header %s: %q reached the provider", name, vs)
				case w != "" && (len(vs) != 1 || vs[0] != w):
					t.Errorf("header %s = %q, want %q", name, vs, w)
				}
			}
			for name := range want {
				if _, ok := got[name]; !ok {
					t.Errorf("header %s did not reach the provider", name)
				}
			}
			for _, name := range tt.wantUnsentNames {
				if _, ok := got[name]; ok {
					t.Errorf("header %s reached the provider", name)
				}
			}
			if s := headerText(got); strings.Contains(s, relayKey) {
				t.Errorf("the client's relay key reached the provider:\n%s", s)
			}
			e.outcome()
		})
	}
}

// TestResponseHeaders: of the provider's headers only the allow-list comes
// back; trailers and 1xx answers do not pass either.
func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", false, false))
	want := map[string]string{"Content-Type": "application/json", "X-Request-Id": "req_fake_1", "Request-Id": "req_fake_1",
		"X-Ratelimit-Remaining-Requests": "99", "Anthropic-Ratelimit-Requests-Remaining": "99"}
	for name, v := range want {
		if a.header.Get(name) != v {
			t.Errorf("header %s = %q, want %q", name, a.header.Get(name), v)
		}
	}
	for name := range a.header {
		if _, ok := want[name]; !ok && name != "Date" && name != "Content-Length" {
			t.Errorf("header %s passed: %q", name, a.header[name])
		}
	}
	e.outcome()

	a = e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("trailer", false, false))
	if a.status != 200 || len(a.trailer) != 0 || a.header.Get("Trailer") != "" {
		t.Errorf("trailer: status %d, trailer %v, header %v", a.status, a.trailer, a.header)
	}
	e.outcome()

	var mu sync.Mutex
	var got1xx []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			got1xx = append(got1xx, code)
			return nil
		},
	})
	res, err := e.client.Do(e.request(ctx, "POST", "/v1/chat/completions", fakeprovider.ChatBody("early-hints", false, false)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	mu.Lock()
	if res.StatusCode != 200 || len(got1xx) != 0 || res.Header.Get("Link") != "" {
		t.Errorf("early hints: status %d, 1xx %v, Link %q", res.StatusCode, got1xx, res.Header.Get("Link"))
	}
	mu.Unlock()
	e.outcome()
}

// TestEndpointAllowList: anything but the endpoints of the credential's API
// type is 404 in its error shape, and nothing reaches the provider.
func TestEndpointAllowList(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		api          models.APIType
		method, path string
	}{
		{models.APIOpenAI, "POST", "/v1/messages"},
		{models.APIOpenAI, "POST", "/v1/messages/count_tokens"},
		{models.APIAnthropic, "POST", "/v1/chat/completions"},
		{models.APIAnthropic, "POST", "/v1/embeddings"},
		{models.APIAnthropic, "POST", "/v1/responses"},
		{models.APIOpenAI, "GET", "/v1/chat/completions"},
		{models.APIOpenAI, "PUT", "/v1/chat/completions"},
		{models.APIOpenAI, "DELETE", "/v1/models/gpt-4o"},
		{models.APIOpenAI, "POST", "/v1/models"},
		{models.APIOpenAI, "HEAD", "/v1/models"},
		{models.APIOpenAI, "OPTIONS", "/v1/models"},
		{models.APIOpenAI, "GET", "/v1/files"},
		{models.APIOpenAI, "POST", "/v1/audio/speech"},
		{models.APIOpenAI, "POST", "/v1/Chat/Completions"},
		{models.APIOpenAI, "POST", "/v1/chat/completions/"},
		{models.APIOpenAI, "POST", "/v1/chat//completions"},
		{models.APIOpenAI, "POST", "/v1//chat/completions"},
		{models.APIOpenAI, "POST", "/v1/./chat/completions"},
		{models.APIOpenAI, "POST", "/v1/chat/./completions"},
		{models.APIOpenAI, "POST", "/v1/chat/%2e/completions"},
		{models.APIOpenAI, "POST", "/v1/files/../chat/completions"},
		{models.APIOpenAI, "POST", "/v1/files/%2E%2E/chat/completions"},
		{models.APIOpenAI, "POST", "/v1/chat%2Fcompletions"},
		{models.APIOpenAI, "POST", "/v1/chat%2fcompletions"},
		{models.APIOpenAI, "GET", "/v1/models/"},
		{models.APIOpenAI, "GET", "/v1/models//gpt-4o"},
		{models.APIOpenAI, "GET", "/v1/models/meta-llama%2FLlama-3-8b"},
		{models.APIOpenAI, "GET", "/v1/models/../files"},
		{models.APIOpenAI, "GET", "/v1/models/a/./b"},
		{models.APIOpenAI, "GET", "/v1/models/a/.."},
		{models.APIAnthropic, "GET", "/v1/models/%2e%2e"},
		{models.APIAnthropic, "POST", "/v1/messages/batches"},
	} {
		t.Run(string(tt.api)+" "+tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{api: tt.api})
			var body any
			if tt.method == "POST" || tt.method == "PUT" {
				body = fakeprovider.ChatBody("gpt-4o", false, false)
			}
			a := e.call(tt.method, tt.path, body)
			if tt.method == "HEAD" {
				if a.status != 404 {
					t.Errorf("status %d", a.status)
				}
			} else {
				refusal(t, a, tt.api, 404)
			}
			e.noRequest()
			if out := e.outcome(); out.Status != 404 || !out.Refused || out.Endpoint != "" {
				t.Errorf("outcome %+v", out)
			}
		})
	}
}

// TestModelIDs: a model ID may contain "/"; escapes are decoded, checked and
// sent again in one canonical form.
func TestModelIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, tt := range []struct{ path, upstream, id string }{
		{"/v1/models/meta-llama/Llama-3-8b", "/v1/models/meta-llama/Llama-3-8b", "meta-llama/Llama-3-8b"},
		{"/v1/models/gpt%2D4o", "/v1/models/gpt-4o", "gpt-4o"},
		{"/v1/models/gpt-4o", "/v1/models/gpt-4o", "gpt-4o"},
	} {
		a := e.call("GET", tt.path, nil)
		if a.status != 200 || a.json(t)["id"] != tt.id {
			t.Errorf("%s: %d %s", tt.path, a.status, a.body)
		}
		if got := e.fake.Last().Path; got != tt.upstream {
			t.Errorf("%s: the provider got %s, want %s", tt.path, got, tt.upstream)
		}
		if out := e.outcome(); out.Endpoint != "GET models/{id}" || out.Model != tt.id || out.Status != 200 {
			t.Errorf("%s: outcome %+v", tt.path, out)
		}
	}
	a := e.call("GET", "/v1/models/no-such-model", nil)
	if a.status != 404 || !strings.Contains(string(a.body), "no such model") {
		t.Errorf("the provider's own 404 did not pass: %d %s", a.status, a.body)
	}
	if out := e.outcome(); out.Refused {
		t.Errorf("the provider's 404 counted as the relay's refusal: %+v", out)
	}
}

// TestUpstreamURL: the base URL's path and query are kept; the client's
// query parameters are added, unless the base URL fixes the name.
func TestUpstreamURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.setTarget(func(tg *Target) { tg.BaseURL = e.fake.URL + "/proxy/?x=1&api-version=2024-06-01" })
	e.call("POST", "/v1/chat/completions?y=2&x=evil&bad=%zz&a;b=c&api-version=0&z=%2F", fakeprovider.ChatBody("gpt-4o", false, false))
	got := e.fake.Last()
	if got.Path != "/proxy/v1/chat/completions" || got.Query != "x=1&api-version=2024-06-01&y=2&z=%2F" {
		t.Errorf("the provider got %s?%s", got.Path, got.Query)
	}
	e.outcome()

	e.setTarget(func(tg *Target) { tg.BaseURL = e.fake.URL })
	a := e.call("GET", "/v1/models?limit=2", nil)
	if got := e.fake.Last(); a.status != 200 || got.Path != "/v1/models" || got.Query != "limit=2" {
		t.Errorf("the provider got %s?%s", got.Path, got.Query)
	}
	e.outcome()

	for _, base := range []string{"ftp://127.0.0.1/", "127.0.0.1:80", "http://user:pw@127.0.0.1/", "http://[::1", ""} {
		e.setTarget(func(tg *Target) { tg.BaseURL = base })
		n := len(e.fake.Requests())
		refusal(t, e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", false, false)), models.APIOpenAI, 502)
		if len(e.fake.Requests()) != n {
			t.Errorf("base URL %q: a request was sent", base)
		}
		e.outcome()
	}
}

func TestAllowedModels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.setTarget(func(tg *Target) { tg.AllowedModels = models.ModelList{"gpt-4o-mini", "meta-llama/Llama-3-8b"} })
	for _, tt := range []struct {
		body    any
		allowed bool
	}{
		{fakeprovider.ChatBody("gpt-4o-mini", false, false), true},
		{`{"model":"gpt-4o-\u006dini","messages":[]}`, true},
		{fakeprovider.ChatBody("gpt-4o", false, false), false},
		{fakeprovider.ChatBody("GPT-4O-MINI", false, false), false},
		{`{"messages":[]}`, false},
		{`{"model":42}`, false},
		{`{"model":null}`, false},
		{`{"model":["gpt-4o-mini"]}`, false},
		{`not json`, false},
		{`["gpt-4o-mini"]`, false},
		{``, false},
		{`{"model":"gpt-4o-mini"} {"model":"gpt-4o"}`, false},
		{`{"model":"gpt-4o-mini","model":"gpt-4o"}`, false},
		{`{"model":"gpt-4o","Model":"gpt-4o-mini"}`, false},
		{`{"mod\u0065l":"gpt-4o","x":{"model":"gpt-4o-mini"}}`, false},
		{`{"model":"gpt-4o-mini",}`, false},
		{`{"nested":{"model":"gpt-4o-mini"},"model":"gpt-4o"}`, false},
		{`{"nested":{"model":"gpt-4o"},"model":"gpt-4o-mini"}`, true},
	} {
		before := len(e.fake.Requests())
		a := e.call("POST", "/v1/chat/completions", tt.body)
		sent := len(e.fake.Requests()) > before
		out := e.outcome()
		if tt.allowed {
			if a.status != 200 || !sent {
				t.Errorf("%v: status %d, sent %v", tt.body, a.status, sent)
			}
			continue
		}
		refusal(t, a, models.APIOpenAI, 403)
		if sent || out.Status != 403 || !out.Refused {
			t.Errorf("%v: sent %v, outcome %+v", tt.body, sent, out)
		}
	}

	// models/{id}: a model outside the list does not exist.
	refusal(t, e.call("GET", "/v1/models/gpt-4o", nil), models.APIOpenAI, 404)
	e.outcome()
	if a := e.call("GET", "/v1/models/meta-llama/Llama-3-8b", nil); a.status != 200 {
		t.Errorf("allowed model: %d", a.status)
	}
	e.outcome()

	// GET models lists only the allowed ones, in OpenAI's shape.
	n := len(e.fake.Requests())
	m := e.call("GET", "/v1/models", nil).json(t)
	if m["object"] != "list" || !slices.Equal(ids(m), []string{"gpt-4o-mini", "meta-llama/Llama-3-8b"}) {
		t.Errorf("filtered list: %v", m)
	}
	if len(e.fake.Requests()) != n+1 {
		t.Error("the list was not asked of the provider")
	}
	if out := e.outcome(); out.Status != 200 || out.Refused {
		t.Errorf("outcome %+v", out)
	}

	// And in Anthropic's, page bounds following the kept entries.
	a := newEnv(t, envOptions{api: models.APIAnthropic})
	a.setTarget(func(tg *Target) { tg.AllowedModels = models.ModelList{"gpt-4o", "claude-3-5-haiku-latest"} })
	m = a.call("GET", "/v1/models", nil, "x-api-key", relayKey).json(t)
	if !slices.Equal(ids(m), []string{"gpt-4o", "claude-3-5-haiku-latest"}) || m["first_id"] != "gpt-4o" ||
		m["last_id"] != "claude-3-5-haiku-latest" || m["has_more"] != false {
		t.Errorf("filtered Anthropic list: %v", m)
	}
	a.outcome()
	if typ := refusal(t, a.call("POST", "/v1/messages", fakeprovider.MessagesBody("claude-3-opus", false)), models.APIAnthropic, 403); typ != "permission_error" {
		t.Errorf("type %q", typ)
	}
	a.outcome()
	a.setTarget(func(tg *Target) { tg.AllowedModels = models.ModelList{"not-listed"} })
	if m := a.call("GET", "/v1/models", nil, "x-api-key", relayKey).json(t); len(ids(m)) != 0 || m["data"] == nil {
		t.Errorf("empty filtered list: %v", m)
	}
	a.outcome()
}

func ids(list map[string]any) []string {
	var out []string
	data, _ := list["data"].([]any)
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	for _, api := range []models.APIType{models.APIOpenAI, models.APIAnthropic} {
		t.Run(string(api), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{api: api, opts: Options{MaxBodyBytes: 1024}})
			path := map[models.APIType]string{models.APIOpenAI: "/v1/chat/completions", models.APIAnthropic: "/v1/messages"}[api]
			body := func(n int) string {
				s := `{"model":"m","pad":"`
				return s + strings.Repeat("x", n-len(s)-2) + `"}`
			}
			// Content-Length over the limit.
			typ := refusal(t, e.call("POST", path, body(1025)), api, 413)
			if want := map[models.APIType]string{models.APIOpenAI: "invalid_request_error", models.APIAnthropic: "request_too_large"}[api]; typ != want {
				t.Errorf("type %q, want %q", typ, want)
			}
			e.outcome()
			// No Content-Length (chunked): MaxBytesReader.
			pr, pw := io.Pipe()
			go func() {
				for range 3 {
					if _, err := pw.Write([]byte(strings.Repeat(" ", 512))); err != nil {
						return
					}
				}
				pw.Close()
			}()
			refusal(t, e.call("POST", path, io.Reader(pr)), api, 413)
			pr.Close()
			if out := e.outcome(); out.Status != 413 || !out.Refused {
				t.Errorf("outcome %+v", out)
			}
			e.noRequest()
			// At the limit: sent.
			if a := e.call("POST", path, body(1024)); a.status != 200 {
				t.Errorf("a body at the limit: %d %s", a.status, a.body)
			}
			if len(e.fake.Last().Body) != 1024 {
				t.Errorf("the provider got %d bytes", len(e.fake.Last().Body))
			}
			e.outcome()
		})
	}
}

func TestUnusableKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: models.APIAnthropic})
	for _, tg := range []Target{
		{NeedsReentry: true, APIKey: testKey},
		{APIKey: ""},
		{APIKey: "sk-ant-line\nbreak"},
	} {
		e.setTarget(func(t *Target) { t.NeedsReentry, t.APIKey = tg.NeedsReentry, tg.APIKey })
		refusal(t, e.call("POST", "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false)), models.APIAnthropic, 409)
		if out := e.outcome(); out.Status != 409 || !out.Refused {
			t.Errorf("outcome %+v", out)
		}
	}
	e.noRequest()
}

func TestHeaderTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{fake: fakeprovider.Options{FirstByteDelay: 10 * time.Second},
		opts: Options{HeaderTimeout: 200 * time.Millisecond}})
	start := time.Now()
	refusal(t, e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("slow-first-byte", false, false)), models.APIOpenAI, 504)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("504 after %v", d)
	}
	if out := e.outcome(); out.Status != 504 || !out.Refused {
		t.Errorf("outcome %+v", out)
	}
	if !waitClosed(e.fake.Last().Canceled, time.Second) {
		t.Error("the provider's request was not cancelled")
	}
}

func TestMaxDuration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{fake: fakeprovider.Options{EventDelay: 100 * time.Millisecond, Events: 100},
		opts: Options{MaxDuration: 400 * time.Millisecond}})
	res, err := e.client.Do(e.request(context.Background(), "POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, true)))
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := fakeprovider.ReadData(res.Body)
	res.Body.Close()
	if err == nil || len(data) == 0 || len(data) > 20 {
		t.Errorf("%d events, read error %v; want a stream cut short", len(data), err)
	}
	if out := e.outcome(); !out.Aborted || out.Status != 200 {
		t.Errorf("outcome %+v", out)
	}
	if !waitClosed(e.fake.Last().Canceled, time.Second) {
		t.Error("the provider's request was not cancelled")
	}
}

// TestStreaming: events reach the client as the provider sends them, not
// when the stream ends.
func TestStreaming(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		api  models.APIType
		path string
		body any
		text string // a text event's marker
	}{
		{models.APIOpenAI, "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, true), `"content":"Hello"`},
		{models.APIOpenAI, "/v1/responses", map[string]any{"model": "gpt-4o", "input": "hi", "stream": true}, `"delta":"Hello"`},
		{models.APIAnthropic, "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", true), `"text":"Hello"`},
	} {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			const delay, events = 150 * time.Millisecond, 6
			e := newEnv(t, envOptions{api: tt.api, fake: fakeprovider.Options{EventDelay: delay, Events: events}})
			res, err := e.client.Do(e.request(context.Background(), "POST", tt.path, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Errorf("Content-Type %q", ct)
			}
			data, at, err := fakeprovider.ReadData(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			first := slices.IndexFunc(data, func(d string) bool { return strings.Contains(d, tt.text) })
			if first < 0 {
				t.Fatalf("no first text event in %q", data)
			}
			e.outcome()
			sent := e.fake.Last().Sent()
			if len(sent) < events {
				t.Fatalf("the provider sent %d events", len(sent))
			}
			last := sent[len(sent)-1]
			// The first text event arrived long before the provider sent its
			// last event (events-1 delays later), and soon after it was sent.
			if !at[first].Before(last.Add(-2 * delay)) {
				t.Errorf("the first text event arrived at +%v, the last was sent at +%v", at[first].Sub(sent[0]), last.Sub(sent[0]))
			}
			if lag := at[first].Sub(sent[first]); lag > 100*time.Millisecond {
				t.Errorf("the first text event took %v to arrive", lag)
			}
		})
	}
}

// TestClientDisconnect: a client that goes away mid-stream ends the
// upstream request within a second.
func TestClientDisconnect(t *testing.T) {
	t.Parallel()
	for _, api := range []models.APIType{models.APIOpenAI, models.APIAnthropic} {
		t.Run(string(api), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{api: api, fake: fakeprovider.Options{EventDelay: 200 * time.Millisecond, Events: 100}})
			path, body := "/v1/chat/completions", any(fakeprovider.ChatBody("gpt-4o", true, true))
			if api == models.APIAnthropic {
				path, body = "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", true)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res, err := e.client.Do(e.request(ctx, "POST", path, body))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			if _, err := res.Body.Read(buf); err != nil {
				t.Fatal(err)
			}
			cancel()
			res.Body.Close()
			gone := time.Now()
			if !waitClosed(e.fake.Last().Canceled, time.Second) {
				t.Fatal("the provider's request was not cancelled within 1 s of the client going away")
			}
			t.Logf("upstream cancelled %v after the client went away", time.Since(gone))
			out := e.outcome()
			if !out.Aborted || out.Status != 200 {
				t.Errorf("outcome %+v", out)
			}
			if api == models.APIAnthropic && out.InputTokens != fakeprovider.AnthropicInput {
				t.Errorf("input tokens of message_start: %d", out.InputTokens)
			}
		})
	}
}

func TestBrokenStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: models.APIAnthropic})
	res, err := e.client.Do(e.request(context.Background(), "POST", "/v1/messages", fakeprovider.MessagesBody("broken-stream", true)))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = fakeprovider.ReadData(res.Body)
	res.Body.Close()
	if err == nil {
		t.Error("a broken stream read as a complete one")
	}
	out := e.outcome()
	if !out.Aborted || out.Status != 200 || out.InputTokens != fakeprovider.AnthropicInput || out.OutputTokens != 1 {
		t.Errorf("outcome %+v", out)
	}
}

// TestGuard: the relay dials through the SSRF guard; a refused address is
// 502 and nothing is sent. The loopback safety net makes sure nothing but
// loopback is ever dialled, guard or not.
func TestGuard(t *testing.T) {
	t.Parallel()
	strict := newEnv(t, envOptions{strict: true, api: models.APIAnthropic})
	for _, base := range []string{strict.fake.URL, strings.Replace(strict.fake.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1)} {
		strict.setTarget(func(tg *Target) { tg.BaseURL = base })
		if typ := refusal(t, strict.call("POST", "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false)), models.APIAnthropic, 502); typ != "api_error" {
			t.Errorf("type %q", typ)
		}
		if out := strict.outcome(); out.Status != 502 || !out.Refused {
			t.Errorf("outcome %+v", out)
		}
	}
	if n := strict.fake.Conns(); n != 0 {
		t.Errorf("the loopback provider received %d connections with private addresses refused", n)
	}

	// Private addresses allowed: the metadata service is refused still,
	// before any connection (the safety net would fail the test).
	e := newEnv(t, envOptions{})
	for _, base := range []string{"http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]", "http://[fd00:ec2::254]/", "http://100.100.100.200"} {
		e.setTarget(func(tg *Target) { tg.BaseURL = base })
		a := e.call("GET", "/v1/models", nil)
		refusal(t, a, models.APIOpenAI, 502)
		if !strings.Contains(string(a.body), "refused to connect") {
			t.Errorf("%s: %s", base, a.body)
		}
		e.outcome()
	}

	// Unreachable: nothing listens.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	e.setTarget(func(tg *Target) { tg.BaseURL = closed })
	a := e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", false, false))
	refusal(t, a, models.APIOpenAI, 502)
	if !strings.Contains(string(a.body), "could not reach") {
		t.Errorf("unreachable: %s", a.body)
	}
	e.outcome()
	e.noRequest()
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.call("POST", "/v1/chat/completions", fakeprovider.ChatBody("redirect", false, false))
	refusal(t, a, models.APIOpenAI, 502)
	if a.header.Get("Location") != "" || strings.Contains(string(a.body), "169.254") {
		t.Errorf("the redirect leaked: %v %s", a.header, a.body)
	}
	if n := len(e.fake.Requests()); n != 1 {
		t.Errorf("the provider got %d requests", n)
	}
	if out := e.outcome(); out.Status != 502 || !out.Refused {
		t.Errorf("outcome %+v", out)
	}
}

// TestProviderErrorsPassThrough: the provider's own errors reach the client
// unchanged, with Retry-After and the rate-limit headers.
func TestProviderErrorsPassThrough(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		api        models.APIType
		path, want string
		body       any
	}{
		{models.APIOpenAI, "/v1/chat/completions", `{"error":{"code":null,"message":"the fake answers 429","type":"rate_limit_error"}}` + "\n", fakeprovider.ChatBody("fail-429", false, false)},
		{models.APIAnthropic, "/v1/messages", `{"error":{"message":"the fake answers 429","type":"rate_limit_error"},"type":"error"}` + "\n", fakeprovider.MessagesBody("fail-429", false)},
	} {
		e := newEnv(t, envOptions{api: tt.api})
		a := e.call("POST", tt.path, tt.body)
		if a.status != 429 || string(a.body) != tt.want {
			t.Errorf("%s: %d %q", tt.api, a.status, a.body)
		}
		if a.header.Get("Retry-After") != "7" || a.header.Get("X-Ratelimit-Remaining-Requests") != "0" ||
			a.header.Get("Anthropic-Ratelimit-Requests-Remaining") != "0" {
			t.Errorf("%s: headers %v", tt.api, a.header)
		}
		if out := e.outcome(); out.Status != 429 || out.Refused || out.InputTokens != 0 {
			t.Errorf("%s: outcome %+v", tt.api, out)
		}
	}
	e := newEnv(t, envOptions{})
	if a := e.call("POST", "/v1/embeddings", fakeprovider.ChatBody("fail-503", false, false)); a.status != 503 {
		t.Errorf("503: %d", a.status)
	}
	e.outcome()
}

// TestUsage: the token counts of every answer shape.
func TestUsage(t *testing.T) {
	t.Parallel()
	const in, out, ain = fakeprovider.InputTokens, fakeprovider.OutputTokens, fakeprovider.AnthropicInput
	for _, tt := range []struct {
		name     string
		api      models.APIType
		path     string
		body     any
		in, out  int64
		endpoint string
	}{
		{"chat", models.APIOpenAI, "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", false, false), in, out, "POST chat/completions"},
		{"chat stream with usage", models.APIOpenAI, "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, true), in, out, "POST chat/completions"},
		{"chat stream without usage", models.APIOpenAI, "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, false), 0, 0, "POST chat/completions"},
		{"completions", models.APIOpenAI, "/v1/completions", map[string]any{"model": "gpt-4o", "prompt": "hi"}, in, out, "POST completions"},
		{"embeddings", models.APIOpenAI, "/v1/embeddings", map[string]any{"model": "gpt-4o", "input": "hi"}, in, 0, "POST embeddings"},
		{"responses", models.APIOpenAI, "/v1/responses", map[string]any{"model": "gpt-4o", "input": "hi"}, in, out, "POST responses"},
		{"responses stream", models.APIOpenAI, "/v1/responses", map[string]any{"model": "gpt-4o", "input": "hi", "stream": true}, in, out, "POST responses"},
		{"messages", models.APIAnthropic, "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), ain, out, "POST messages"},
		{"messages stream", models.APIAnthropic, "/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", true), ain, out, "POST messages"},
		{"count_tokens", models.APIAnthropic, "/v1/messages/count_tokens", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), 0, 0, "POST messages/count_tokens"},
		{"models", models.APIAnthropic, "/v1/models", nil, 0, 0, "GET models"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{api: tt.api})
			method := "POST"
			if tt.body == nil {
				method = "GET"
			}
			a := e.call(method, tt.path, tt.body)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			got := e.outcome()
			if got.InputTokens != tt.in || got.OutputTokens != tt.out || got.Endpoint != tt.endpoint || got.Aborted || got.Refused {
				t.Errorf("outcome %+v, want tokens %d/%d, endpoint %s", got, tt.in, tt.out, tt.endpoint)
			}
		})
	}
}

// TestConcurrentCalls: the Forwarder is shared by concurrent calls (run
// with -race).
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			stream := i%2 == 0
			res, err := e.client.Do(e.request(context.Background(), "POST", "/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", stream, true)))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		})
	}
	wg.Wait()
	for range 16 {
		if out := e.outcome(); out.Status != 200 || out.InputTokens != fakeprovider.InputTokens {
			t.Errorf("outcome %+v", out)
		}
	}
}

// TestNilDialIsGuarded: without a Dial, the Forwarder still refuses
// private addresses.
func TestNilDialIsGuarded(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.Start(t, fakeprovider.Options{})
	f := New(Options{})
	defer f.Close()
	rec := newRecorder()
	r, _ := http.NewRequest("GET", "/v1/models", nil)
	var out Outcome
	f.Forward(rec, r, "models", Target{APIType: models.APIOpenAI, BaseURL: fake.URL, APIKey: testKey}, func(o Outcome) { out = o })
	if rec.code != 502 || out.Status != 502 || fake.Conns() != 0 {
		t.Errorf("status %d, outcome %+v, %d connections", rec.code, out, fake.Conns())
	}
}

// recorder is a minimal ResponseWriter.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func newRecorder() *recorder                    { return &recorder{header: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
