package gqlhttp_test

// gqlhttp's own tests, on a schema of its own (no cloudkeys code): a
// query and a mutation field whose resolver counts its runs, so a test can
// tell that a refused request executed nothing. The end-to-end cases of the
// whole server are in server/http_test.go and server/limits_test.go.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"cloudkeys/apperr"
	"cloudkeys/gqlhttp"
)

type testSchema struct {
	handler http.Handler
	runs    atomic.Int64 // operations executed
}

func newTestSchema(t *testing.T, o gqlhttp.Options) *testSchema {
	t.Helper()
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: `
		type Query { name: String! }
		type Mutation { rename: String! }`})
	ts := &testSchema{}
	es := &graphql.ExecutableSchemaMock{
		SchemaFunc: func() *ast.Schema { return schema },
		ComplexityFunc: func(context.Context, string, string, int, map[string]any) (int, bool) {
			return 0, false
		},
		ExecFunc: func(ctx context.Context) graphql.ResponseHandler {
			ran := false
			return func(ctx context.Context) *graphql.Response {
				if ran {
					return nil
				}
				ran = true
				ts.runs.Add(1)
				if graphql.GetOperationContext(ctx).Operation.Operation == ast.Mutation {
					return &graphql.Response{Data: []byte(`{"rename":"done"}`)}
				}
				return &graphql.Response{Data: []byte(`{"name":"<test & co>"}`)}
			}
		},
	}
	ts.handler = gqlhttp.New(es, o)
	return ts
}

type answer struct {
	status int
	header http.Header
	doc    map[string]json.RawMessage
	codes  []apperr.Code
}

func (ts *testSchema) send(t *testing.T, req *http.Request) answer {
	t.Helper()
	w := httptest.NewRecorder()
	ts.handler.ServeHTTP(w, req)
	a := answer{status: w.Code, header: w.Header()}
	if err := json.Unmarshal(w.Body.Bytes(), &a.doc); err != nil {
		t.Fatalf("answer is not JSON (%d): %q", w.Code, w.Body)
	}
	var errs []struct {
		Extensions struct {
			Code apperr.Code `json:"code"`
		} `json:"extensions"`
	}
	if raw, ok := a.doc["errors"]; ok {
		json.Unmarshal(raw, &errs)
	}
	for _, e := range errs {
		a.codes = append(a.codes, e.Extensions.Code)
	}
	return a
}

func post(body, contentType, accept string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	return r
}

const (
	gqlResponse = "application/graphql-response+json"
	jsonMedia   = "application/json"
)

// Every refusal answers the status apperr's table gives its code, with no
// data key and nothing executed.
func TestRefusalsUseTheStatusTable(t *testing.T) {
	ts := newTestSchema(t, gqlhttp.Options{MaxBodyBytes: 64, MaxDepth: 1, MaxAliases: 1, MaxComplexity: 3, MaxTokens: 20})
	get := func(q url.Values) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/graphql?"+q.Encode(), nil)
		r.Header.Set("Accept", gqlResponse)
		return r
	}
	for _, c := range []struct {
		name string
		req  *http.Request
		code apperr.Code
	}{
		{"PUT", httptest.NewRequest(http.MethodPut, "/graphql", nil), apperr.MethodNotAllowed},
		{"mutation over GET", get(url.Values{"query": {"mutation { rename }"}}), apperr.MethodNotAllowed},
		{"form body", post("query=%7Bname%7D", "application/x-www-form-urlencoded", ""), apperr.UnsupportedMediaType},
		{"no content type", post(`{"query":"{ name }"}`, "", ""), apperr.UnsupportedMediaType},
		{"Accept nothing we write", post(`{"query":"{ name }"}`, jsonMedia, "text/html"), apperr.NotAcceptable},
		{"body too large", post(`{"query":"{ name }", "padding": "`+strings.Repeat("x", 64)+`"}`, jsonMedia, ""), apperr.BodyLimit},
		{"not JSON", post(`{"query":`, jsonMedia, ""), apperr.BadRequest},
		{"no query", post(`{}`, jsonMedia, ""), apperr.BadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := ts.runs.Load()
			a := ts.send(t, c.req)
			if a.status != apperr.HTTPStatus(c.code) || len(a.codes) != 1 || a.codes[0] != c.code {
				t.Fatalf("status %d codes %v, want %d %s", a.status, a.codes, apperr.HTTPStatus(c.code), c.code)
			}
			if _, ok := a.doc["data"]; ok {
				t.Fatalf("a refused request has a data key: %v", a.doc)
			}
			if ts.runs.Load() != before {
				t.Fatal("a refused request executed")
			}
		})
	}
	if a := ts.send(t, get(url.Values{"query": {"mutation { rename }"}})); a.header.Get("Allow") != http.MethodPost {
		t.Fatalf("a mutation over GET answers Allow %q", a.header.Get("Allow"))
	}
}

// GraphQL request errors are 200 under application/json and the table's
// status (400) under application/graphql-response+json.
func TestRequestErrorStatusByMediaType(t *testing.T) {
	ts := newTestSchema(t, gqlhttp.Options{MaxDepth: 1, MaxAliases: 1, MaxTokens: 20})
	for _, c := range []struct {
		name, query string
		code        apperr.Code
	}{
		{"parse", `{ name `, apperr.ParseFailed},
		{"validation", `{ nope }`, apperr.ValidationFailed},
		{"aliases", `{ a: name b: name }`, apperr.AliasLimit},
		{"introspection off", `{ __schema { queryType { name } } }`, apperr.ValidationFailed},
	} {
		for media, want := range map[string]int{jsonMedia: http.StatusOK, gqlResponse: apperr.HTTPStatus(c.code)} {
			t.Run(c.name+" "+media, func(t *testing.T) {
				body, _ := json.Marshal(map[string]string{"query": c.query})
				a := ts.send(t, post(string(body), jsonMedia, media))
				if a.status != want || len(a.codes) != 1 || a.codes[0] != c.code {
					t.Fatalf("status %d codes %v, want %d %s", a.status, a.codes, want, c.code)
				}
				if ct := a.header.Get("Content-Type"); ct != media+"; charset=utf-8" {
					t.Fatalf("Content-Type %q", ct)
				}
			})
		}
	}
}

// A well-formed query runs once and its data is written as the executor
// made it (no HTML escaping), without an errors key.
func TestQueryRuns(t *testing.T) {
	ts := newTestSchema(t, gqlhttp.Options{Timeout: time.Second})
	a := ts.send(t, post(`{"query":"{ name }"}`, jsonMedia, ""))
	if a.status != http.StatusOK || string(a.doc["data"]) != `{"name":"<test & co>"}` || ts.runs.Load() != 1 {
		t.Fatalf("status %d doc %s runs %d", a.status, a.doc, ts.runs.Load())
	}
	if _, ok := a.doc["errors"]; ok {
		t.Fatal("errors key on success")
	}
	a = ts.send(t, post(`{"query":"mutation { rename }"}`, jsonMedia, gqlResponse))
	if a.status != http.StatusOK || string(a.doc["data"]) != `{"rename":"done"}` {
		t.Fatalf("mutation over POST: %d %s", a.status, a.doc)
	}
}

// The token-limit refusal gets its own code through NameTokenLimit.
func TestNameTokenLimit(t *testing.T) {
	other := gqlhttp.RequestError(apperr.ParseFailed, "Expected Name, found <EOF>")
	if gqlhttp.NameTokenLimit(other) != nil {
		t.Fatal("an ordinary parse error was renamed")
	}
	named := gqlhttp.NameTokenLimit(gqlhttp.RequestError(apperr.ParseFailed, "exceeded token limit of 20"))
	if named == nil || gqlhttp.CodeOf(named) != apperr.TokenLimit || !strings.Contains(named.Message, "more than 20 tokens") {
		t.Fatalf("token limit: %v", named)
	}
}
