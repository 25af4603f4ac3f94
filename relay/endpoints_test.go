package relay

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"cloudkeys/apperr"
	"cloudkeys/models"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		api          models.APIType
		method, rest string
		endpoint, id string // "" endpoint: no match
	}{
		{models.APIOpenAI, "POST", "chat/completions", "POST chat/completions", ""},
		{models.APIOpenAI, "POST", "completions", "POST completions", ""},
		{models.APIOpenAI, "POST", "embeddings", "POST embeddings", ""},
		{models.APIOpenAI, "POST", "responses", "POST responses", ""},
		{models.APIOpenAI, "GET", "models", "GET models", ""},
		{models.APIOpenAI, "GET", "models/gpt-4o", "GET models/{id}", "gpt-4o"},
		{models.APIOpenAI, "GET", "models/meta-llama/Llama-3-8b", "GET models/{id}", "meta-llama/Llama-3-8b"},
		{models.APIOpenAI, "GET", "models/a%20b", "GET models/{id}", "a b"},
		{models.APIOpenAI, "GET", "models/%63laude", "GET models/{id}", "claude"},
		{models.APIAnthropic, "POST", "messages", "POST messages", ""},
		{models.APIAnthropic, "POST", "messages/count_tokens", "POST messages/count_tokens", ""},
		{models.APIAnthropic, "GET", "models", "GET models", ""},
		{models.APIAnthropic, "GET", "models/claude-3-5-haiku-latest", "GET models/{id}", "claude-3-5-haiku-latest"},
		{models.APIAnthropic, "POST", "chat/completions", "", ""},
		{models.APIOpenAI, "POST", "messages", "", ""},
		{models.APIOpenAI, "GET", "chat/completions", "", ""},
		{models.APIOpenAI, "HEAD", "models", "", ""},
		{models.APIOpenAI, "POST", "chat/%63ompletions", "POST chat/completions", ""}, // decoded, then matched
		{models.APIOpenAI, "POST", "chat%2Fcompletions", "", ""},
		{models.APIOpenAI, "GET", "models/a%2fb", "", ""},
		{models.APIOpenAI, "GET", "models/%2E", "", ""},
		{models.APIOpenAI, "GET", "models/x/%2e%2E", "", ""},
		{models.APIOpenAI, "GET", "models/x/", "", ""},
		{models.APIOpenAI, "GET", "", "", ""},
		{models.APIOpenAI, "GET", "models/%zz", "", ""},
		{"OTHER", "GET", "models", "", ""},
	} {
		rt, ok := match(tt.api, tt.method, tt.rest)
		if ok != (tt.endpoint != "") || rt.endpoint != tt.endpoint || rt.modelID != tt.id {
			t.Errorf("%s %s %q: %+v %v, want %q %q", tt.api, tt.method, tt.rest, rt, ok, tt.endpoint, tt.id)
		}
	}
}

func TestUpstreamURLJoin(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		base, rest, query, want string
	}{
		{"https://api.openai.com", "chat/completions", "", "https://api.openai.com/v1/chat/completions"},
		{"https://api.groq.com/openai/", "models", "", "https://api.groq.com/openai/v1/models"},
		{"http://127.0.0.1:1234/proxy?x=1", "models", "y=2", "http://127.0.0.1:1234/proxy/v1/models?x=1&y=2"},
		{"http://127.0.0.1:1234/a%2Fb?x=1", "models", "x=2&x=3&z=", "http://127.0.0.1:1234/a%2Fb/v1/models?x=1&z="},
		{"http://h/?k=v#frag", "models/a%20b/c;d", "", "http://h/v1/models/a%20b/c%3Bd?k=v"},
		{"http://h", "models/x%3Fy", "q=%zz&r=1", "http://h/v1/models/x%3Fy?r=1"},
	} {
		base, err := parseBaseURL(tt.base)
		if err != nil {
			t.Fatalf("%s: %v", tt.base, err)
		}
		rt, ok := match(models.APIOpenAI, "GET", tt.rest)
		if !ok {
			rt.segments = []string{"chat", "completions"}
		}
		if got := upstreamURL(base, rt.segments, tt.query).String(); got != tt.want {
			t.Errorf("%s + %s ? %s = %s, want %s", tt.base, tt.rest, tt.query, got, tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://h/", "//h/x", "http://", "http://u:p@h/", "mailto:x@y", "http://[::1"} {
		if _, err := parseBaseURL(bad); err == nil {
			t.Errorf("base URL %q accepted", bad)
		}
	}
}

func TestRequestModels(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body      string
		vals      []string
		nonString bool
		ok        bool
	}{
		{`{"model":"a"}`, []string{"a"}, false, true},
		{` { "messages" : [ {"model":"x"} , "}" ] , "model" : "b\"c" } `, []string{`b"c`}, false, true},
		{`{"model":"a","model":"b"}`, []string{"a", "b"}, false, true},
		{`{"Model":"a"}`, nil, false, true},
		{`{"m\u006fdel":"a"}`, []string{"a"}, false, true},
		{`{"model":1}`, nil, true, true},
		{`{"model":{"id":"a"}}`, nil, true, true},
		{`{}`, nil, false, true},
		{`[]`, nil, false, false},
		{`{"model":"a"`, []string{"a"}, false, false},
		{`{"model" "a"}`, nil, false, false},
		{`{"a":"\\","model":"m"}`, []string{"m"}, false, true},
		{``, nil, false, false},
	} {
		vals, nonString, ok := requestModels([]byte(tt.body))
		if !slices.Equal(vals, tt.vals) || nonString != tt.nonString || ok != tt.ok {
			t.Errorf("%s: %q %v %v, want %q %v %v", tt.body, vals, nonString, ok, tt.vals, tt.nonString, tt.ok)
		}
	}
	if got := clip("ab"+string([]rune{'é'}), 3); got != "ab" {
		t.Errorf("clip %q", got)
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	for _, code := range []apperr.Code{apperr.Unauthenticated, apperr.Forbidden, apperr.NotFound, apperr.Conflict,
		apperr.BodyLimit, apperr.RateLimited, apperr.BadGateway, apperr.GatewayTimeout, apperr.Internal, apperr.BadRequest} {
		for _, api := range []models.APIType{models.APIOpenAI, models.APIAnthropic} {
			w := httptest.NewRecorder()
			e := &apperr.Error{Code: code, Message: "fixed text", RetryAfter: 1500 * time.Millisecond}
			WriteError(w, api, e)
			if w.Code != apperr.HTTPStatus(code) || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: %d %v", code, api, w.Code, w.Header())
			}
			if ra := w.Header().Get("Retry-After"); (code == apperr.RateLimited) != (ra == strconv.Itoa(e.RetryAfterSeconds())) {
				t.Errorf("%s: Retry-After %q", code, ra)
			}
			var m struct {
				Type  string `json:"type"`
				Error struct {
					Type    string  `json:"type"`
					Message string  `json:"message"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || m.Error.Message != "fixed text" || m.Error.Type == "" {
				t.Errorf("%s %s: %s", code, api, w.Body)
			}
			if api == models.APIAnthropic && m.Type != "error" || api == models.APIOpenAI && (m.Error.Code == nil || *m.Error.Code == "") {
				t.Errorf("%s %s: shape %s", code, api, w.Body)
			}
		}
	}
	want := map[apperr.Code][2]string{ // OpenAI code, Anthropic type
		apperr.Unauthenticated: {"invalid_api_key", "authentication_error"},
		apperr.Forbidden:       {"model_not_allowed", "permission_error"},
		apperr.NotFound:        {"not_found", "not_found_error"},
		apperr.BodyLimit:       {"request_too_large", "request_too_large"},
		apperr.RateLimited:     {"rate_limit_exceeded", "rate_limit_error"},
		apperr.BadGateway:      {"bad_gateway", "api_error"},
	}
	for code, w := range want {
		if s := errorShapes[code]; s.openAICode != w[0] || s.anthropicType != w[1] {
			t.Errorf("%s: %+v", code, s)
		}
	}
}

func TestAPITypeOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		path   string
		header []string
		want   models.APIType
	}{
		{"/relay/v1/chat/completions", nil, models.APIOpenAI},
		{"/relay/v1/models", []string{"Authorization", "Bearer x"}, models.APIOpenAI},
		{"/relay/v1/models", []string{"x-api-key", "x"}, models.APIAnthropic},
		{"/relay/v1/models", []string{"anthropic-version", "2023-06-01"}, models.APIAnthropic},
		{"/relay/v1/messages", nil, models.APIAnthropic},
		{"/relay/v1/messages/count_tokens", nil, models.APIAnthropic},
		{"/relay/v1/messages/batches", nil, models.APIOpenAI},
	} {
		r, _ := http.NewRequest("POST", "http://h"+tt.path, nil)
		for i := 0; i+1 < len(tt.header); i += 2 {
			r.Header.Set(tt.header[i], tt.header[i+1])
		}
		if got := APITypeOf(r); got != tt.want {
			t.Errorf("%s %v: %s", tt.path, tt.header, got)
		}
	}
}
