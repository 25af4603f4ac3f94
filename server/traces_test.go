package server_test

// OpenTelemetry traces (SPEC §10): with an OTLP endpoint, spans of the
// HTTP request, the GraphQL operation, the database statements and the
// relay's upstream call reach a collector (a fake one on 127.0.0.1 that
// decodes OTLP/HTTP protobuf) and hold no secret used in the test; without
// one, nothing is built and nothing runs.
//
// These tests are not parallel: the check that no exporter goroutine runs
// looks at the whole process.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"cloudkeys/relay/fakeprovider"
)

// collector is a fake OTLP/HTTP trace collector.
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	raw   [][]byte // request bodies, decompressed
	spans []*tracepb.Span
	scope map[*tracepb.Span]string
}

func startCollector(t testing.TB) *collector {
	t.Helper()
	c := &collector{scope: map[*tracepb.Span]string{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, "bad protobuf", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.raw = append(c.raw, b)
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans = append(c.spans, s)
					c.scope[s] = ss.GetScope().GetName()
				}
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

// received returns the spans and raw bodies received so far.
func (c *collector) received() ([]*tracepb.Span, map[*tracepb.Span]string, [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	scope := make(map[*tracepb.Span]string, len(c.scope))
	for k, v := range c.scope {
		scope[k] = v
	}
	return append([]*tracepb.Span(nil), c.spans...), scope, append([][]byte(nil), c.raw...)
}

func attr(s *tracepb.Span, key string) (*commonpb.AnyValue, bool) {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue(), true
		}
	}
	return nil, false
}

// exporterRunning reports whether a goroutine of the OpenTelemetry SDK or
// the OTLP exporter runs in the process.
func exporterRunning() bool {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	s := b.String()
	return strings.Contains(s, "go.opentelemetry.io/otel/sdk/trace") || strings.Contains(s, "otlptracehttp")
}

func TestTracesOffBuildNothing(t *testing.T) {
	a := startApp(t, nil) // no OTLP endpoint
	if a.Tracing != nil {
		t.Fatal("tracing built without an OTLP endpoint")
	}
	a.client(t).do(`{ __typename }`, nil)
	if exporterRunning() {
		t.Fatal("an OpenTelemetry SDK or exporter goroutine runs with tracing off")
	}
}

func TestTracesArrive(t *testing.T) {
	coll := startCollector(t)
	cfg := relayConfig(t)
	cfg.TracesEndpoint = coll.URL + "/v1/traces"
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	a := e.app
	if a.Tracing == nil {
		t.Fatal("tracing is off with an OTLP endpoint")
	}

	// Secrets of every kind go by: passwords (in variables and written in
	// the document), tokens, provider keys, a relay key, a query string.
	password := "password-ada@example.com"
	anon := a.client(t)
	inline := anon.do(`mutation { login(email: "ada@example.com", password: "`+password+`") { accessToken refreshToken } }`, nil)
	if len(inline.Errors) > 0 {
		t.Fatalf("login: %s", inline.Raw)
	}
	p := anon.login("ada@example.com", password)
	anon.do(loginMutation, map[string]any{"email": "ada@example.com", "password": "wrong-" + password})
	e.c.withToken(p.AccessToken).must(`{ me { id } }`, nil, "me", new(map[string]any))

	querySecret := "qs-" + keyMarker + "-query"
	res, err := http.Get(a.URL + "/graphql?query=%7B__typename%7D&token=" + querySecret)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	_, relaySecret := e.c.createRelayKey(e.openAI.ID, nil)
	if ans := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false),
		"Authorization", "Bearer "+relaySecret); ans.status != 200 {
		t.Fatalf("relayed call: %d %s", ans.status, ans.body)
	}
	// A stream passes through the tracing's response writer and transport.
	if ans := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", true, true),
		"Authorization", "Bearer "+relaySecret); ans.status != 200 || !bytes.Contains(ans.body, []byte("data: [DONE]")) {
		t.Fatalf("relayed stream: %d %s", ans.status, ans.body)
	}
	baseSecret := "bq-" + keyMarker + "-base-url-key"
	withQuery := e.c.createCred(map[string]any{"name": "query", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t),
		"baseUrl": e.fake.URL + "?key=" + baseSecret})
	_, querySecretKey := e.c.createRelayKey(withQuery.ID, nil)
	if ans := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false),
		"Authorization", "Bearer "+querySecretKey); ans.status != 200 {
		t.Fatalf("relayed call through a base URL with a query: %d %s", ans.status, ans.body)
	}
	if last := e.fake.Last(); last == nil || !strings.Contains(last.Query, baseSecret) {
		t.Fatal("the base URL's query did not reach the provider: the test tests nothing")
	}

	var hash, jwe string
	a.DB.Raw("SELECT password_hash FROM users WHERE email = ?", "ada@example.com").Scan(&hash)
	a.DB.Raw("SELECT api_key_jwe FROM cloud_credentials WHERE id = ?", e.openAI.ID).Scan(&jwe)
	if hash == "" || jwe == "" {
		t.Fatal("could not read the stored hash and ciphertext")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Tracing.ForceFlush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	spans, scope, raw := coll.received()
	if len(spans) == 0 {
		t.Fatal("no span reached the collector")
	}

	// No secret, anywhere in what was sent.
	secrets := map[string]string{
		"password": password, "access token": p.AccessToken, "refresh token": p.RefreshToken,
		"OpenAI key": e.openAIKey, "Anthropic key": e.anthropicKey, "relay key": relaySecret,
		"relay key 2": querySecretKey, "query string": querySecret, "base URL query": baseSecret,
		"password hash": hash, "ciphertext": jwe, "key marker": keyMarker, "JWT secret": string(cfg.JWTSecret),
	}
	var inlineTokens payloadJSON
	if err := json.Unmarshal(inline.Data["login"], &inlineTokens); err != nil || inlineTokens.AccessToken == "" {
		t.Fatalf("inline login's answer: %s", inline.Raw)
	}
	secrets["inline login's access token"], secrets["inline login's refresh token"] = inlineTokens.AccessToken, inlineTokens.RefreshToken
	for what, s := range secrets {
		for _, b := range raw {
			if s != "" && bytes.Contains(b, []byte(s)) {
				t.Errorf("the %s reached the collector", what)
				break
			}
		}
	}

	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[string(s.GetSpanId())] = s
	}
	ancestor := func(s, of *tracepb.Span) bool {
		for s != nil {
			if bytes.Equal(s.GetSpanId(), of.GetSpanId()) {
				return true
			}
			s = byID[string(s.GetParentSpanId())]
		}
		return false
	}

	// One GraphQL request whole: the HTTP server span, the operation
	// under it, database statements under that.
	var login, httpSpan, dbSpan, upstream *tracepb.Span
	for _, s := range spans {
		if s.GetName() == "graphql mutation" && login == nil {
			if code, _ := attr(s, "cloudkeys.graphql.code"); code.GetStringValue() == "OK" {
				login = s
			}
		}
	}
	if login == nil {
		t.Fatalf("no span of a GraphQL mutation; spans: %v", names(spans))
	}
	if v, _ := attr(login, "graphql.operation.type"); v.GetStringValue() != "mutation" {
		t.Errorf("operation span attributes: %v", login.GetAttributes())
	}
	if _, ok := attr(login, "cloudkeys.graphql.complexity"); !ok {
		t.Errorf("no complexity on the operation span: %v", login.GetAttributes())
	}
	httpSpan = byID[string(login.GetParentSpanId())]
	if httpSpan == nil || httpSpan.GetName() != "POST /graphql" || httpSpan.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Fatalf("the operation's parent is %v, want the server span POST /graphql", httpSpan)
	}
	if v, _ := attr(httpSpan, "http.response.status_code"); v.GetIntValue() != 200 {
		t.Errorf("server span attributes: %v", httpSpan.GetAttributes())
	}
	for _, s := range spans {
		if scope[s] == "gorm.io/plugin/opentelemetry" && ancestor(s, login) {
			dbSpan = s
			break
		}
	}
	if dbSpan == nil {
		t.Fatalf("no database span under the login operation; spans: %v", names(spans))
	}
	if q, _ := attr(dbSpan, "db.query.text"); q.GetStringValue() == "" {
		t.Errorf("database span without its statement: %v", dbSpan.GetAttributes())
	}

	// The relay's upstream calls: client spans under the relay's server
	// span, the URL without its query.
	wrongCode := false
	for _, s := range spans {
		if s.GetName() == "graphql mutation" {
			if code, _ := attr(s, "cloudkeys.graphql.code"); code.GetStringValue() == "UNAUTHENTICATED" {
				wrongCode = true
			}
		}
		if s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || !strings.HasPrefix(s.GetName(), "relay upstream") {
			continue
		}
		u, _ := attr(s, "url.full")
		if strings.ContainsAny(u.GetStringValue(), "?#") || !strings.HasSuffix(u.GetStringValue(), "/v1/chat/completions") {
			t.Errorf("upstream url.full = %q, want the URL without its query", u.GetStringValue())
		}
		if parent := byID[string(s.GetParentSpanId())]; parent == nil || parent.GetName() != "POST /relay/*" {
			t.Errorf("upstream span's parent: %v", parent)
		}
		upstream = s
	}
	if upstream == nil {
		t.Fatalf("no span of the relay's upstream call; spans: %v", names(spans))
	}
	if !wrongCode {
		t.Error("the failed login's operation span does not carry UNAUTHENTICATED")
	}
}

func names(spans []*tracepb.Span) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.GetName())
	}
	return n
}
