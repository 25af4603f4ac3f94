package server_test

// GraphQL over HTTP: the transport rules and status codes of SPEC §5 and
// the GraphQL-over-HTTP specification, CSRF refusals, CORS, introspection
// and the playground by environment, security headers. The limits are in
// limits_test.go, the browser check in browser_test.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"cloudkeys/config"
	"cloudkeys/playground"
	"cloudkeys/schema"
)

const (
	gqlResponse = "application/graphql-response+json"
	appJSON     = "application/json"
)

// httpResult is one raw HTTP answer.
type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// send makes one HTTP request to the app. header holds name/value pairs.
func (a *testApp) send(t testing.TB, method, path string, body io.Reader, header ...string) *httpResult {
	t.Helper()
	req, err := http.NewRequest(method, a.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &httpResult{Status: res.StatusCode, Header: res.Header, Body: b}
}

// postJSON POSTs body (a string, or a value to marshal) as application/json.
func (a *testApp) postJSON(t testing.TB, body any, header ...string) *httpResult {
	t.Helper()
	s, ok := body.(string)
	if !ok {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		s = string(b)
	}
	return a.send(t, http.MethodPost, "/graphql", strings.NewReader(s),
		append([]string{"Content-Type", appJSON}, header...)...)
}

// get sends GET /graphql with the given query-string parameters.
func (a *testApp) get(t testing.TB, params url.Values, header ...string) *httpResult {
	t.Helper()
	return a.send(t, http.MethodGet, "/graphql?"+params.Encode(), nil, header...)
}

// doc decodes a GraphQL response document; it fails the test when the
// body is not a JSON object with an errors or data entry.
func (r *httpResult) doc(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %q", r.Status, r.Body)
	}
	if m["errors"] == nil && m["data"] == nil {
		t.Fatalf("status %d: not a GraphQL response: %s", r.Status, r.Body)
	}
	return m
}

// errs returns the response's errors.
func (r *httpResult) errs(t testing.TB) []gqlError {
	t.Helper()
	var es []gqlError
	if raw := r.doc(t)["errors"]; raw != nil {
		if err := json.Unmarshal(raw, &es); err != nil {
			t.Fatalf("errors: %v in %s", err, r.Body)
		}
	}
	return es
}

// mediaType is the response's Content-Type without parameters.
func (r *httpResult) mediaType() string {
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.TrimSpace(mt)
}

// wantRequestError asserts a GraphQL request error: the status, the media
// type, a single error with the code, and no data entry at all.
func (r *httpResult) wantRequestError(t testing.TB, status int, media, code string) gqlError {
	t.Helper()
	if r.Status != status || r.mediaType() != media {
		t.Fatalf("want %d %s, got %d %s: %s", status, media, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if _, ok := r.doc(t)["data"]; ok {
		t.Fatalf("a request error must have no data entry: %s", r.Body)
	}
	es := r.errs(t)
	if len(es) == 0 || es[0].Extensions["code"] != code {
		t.Fatalf("want error code %s, got %s", code, r.Body)
	}
	return es[0]
}

// wantData asserts an executed response: 200, the media type, a data entry.
func (r *httpResult) wantData(t testing.TB, media string) map[string]json.RawMessage {
	t.Helper()
	if r.Status != http.StatusOK || r.mediaType() != media {
		t.Fatalf("want 200 %s, got %d %s: %s", media, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(r.doc(t)["data"], &data); err != nil || data == nil {
		t.Fatalf("no data object: %s", r.Body)
	}
	return data
}

// TestTransport pins every rule of the transport: methods, Accept
// negotiation, content types, well-formedness, and the status code of
// each kind of answer under each response media type.
func TestTransport(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	type tc struct {
		name   string
		method string
		query  url.Values // GET's query string
		ctype  string     // POST's Content-Type; "-" for none
		accept string
		body   string
		status int
		media  string // "" when the answer has no body to check (HEAD, OPTIONS)
		code   string // the first error's code of a request error; "" when data is expected
		allow  string // the Allow header expected, if any
	}
	const typename = `{"query":"{ __typename }"}`
	cases := []tc{
		// Accept negotiation (spec § Body, § Legacy Watershed).
		{name: "no Accept → application/json", body: typename, status: 200, media: appJSON},
		{name: "graphql-response+json", accept: gqlResponse, body: typename, status: 200, media: gqlResponse},
		{name: "application/json", accept: appJSON, body: typename, status: 200, media: appJSON},
		{name: "spec's recommended Accept", accept: gqlResponse + "; charset=utf-8, application/json; charset=utf-8", body: typename, status: 200, media: gqlResponse},
		{name: "equal q prefers graphql-response+json", accept: appJSON + ", " + gqlResponse, body: typename, status: 200, media: gqlResponse},
		{name: "higher q wins", accept: gqlResponse + ";q=0.5, " + appJSON, body: typename, status: 200, media: appJSON},
		{name: "*/* → application/json", accept: "*/*", body: typename, status: 200, media: appJSON},
		{name: "application/* → application/json", accept: "application/*", body: typename, status: 200, media: appJSON},
		{name: "browser default Accept", accept: "text/html,application/xhtml+xml,*/*;q=0.8", body: typename, status: 200, media: appJSON},
		{name: "q=0 excludes json, wildcard leaves the other", accept: appJSON + ";q=0, */*", body: typename, status: 200, media: gqlResponse},
		{name: "unsupported Accept → 406", accept: "text/html", body: typename, status: 406, media: appJSON, code: "NOT_ACCEPTABLE"},
		{name: "everything excluded → 406", accept: appJSON + ";q=0, " + gqlResponse + ";q=0", body: typename, status: 406, media: appJSON, code: "NOT_ACCEPTABLE"},
		{name: "non-UTF-8 charset only → 406", accept: appJSON + "; charset=iso-8859-1", body: typename, status: 406, media: appJSON, code: "NOT_ACCEPTABLE"},

		// Content types (spec § POST; CSRF).
		{name: "charset=utf-8", ctype: appJSON + "; charset=utf-8", body: typename, status: 200, media: appJSON},
		{name: "charset=UTF-8 upper case", ctype: "Application/JSON; charset=UTF-8", body: typename, status: 200, media: appJSON},
		{name: "other charset → 415", ctype: appJSON + "; charset=latin1", body: typename, status: 415, media: appJSON, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "no Content-Type → 415", ctype: "-", body: typename, status: 415, media: appJSON, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "text/plain → 415", ctype: "text/plain", body: typename, status: 415, media: appJSON, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "form → 415", ctype: "application/x-www-form-urlencoded", body: "query=%7B__typename%7D", status: 415, media: appJSON, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "multipart → 415", ctype: "multipart/form-data; boundary=x", body: "--x--", status: 415, media: appJSON, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "application/graphql → 415", ctype: "application/graphql", body: "{ __typename }", status: 415, media: appJSON, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "415 in the negotiated type", ctype: "text/plain", accept: gqlResponse, body: typename, status: 415, media: gqlResponse, code: "UNSUPPORTED_MEDIA_TYPE"},

		// Malformed requests: 400 under both media types (spec § Status Codes,
		// "JSON parsing failure", "Invalid parameters").
		{name: "not JSON", body: "NONSENSE", status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "truncated JSON", body: `{"query":`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "truncated JSON, graphql-response+json", accept: gqlResponse, body: `{"query":`, status: 400, media: gqlResponse, code: "BAD_REQUEST"},
		{name: "empty body", body: "", status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "JSON array", body: `[` + typename + `]`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "JSON null", body: `null`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "trailing data", body: typename + ` {}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "query misspelt", body: `{"qeury":"{ __typename }"}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "query null", body: `{"query":null}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "query not a string", body: `{"query":{"a":1}}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "variables an array", body: `{"query":"query Q($i: Int!) { __typename }","variables":[7]}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "variables a string", body: `{"query":"{ __typename }","variables":"{}"}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "operationName a number", body: `{"query":"{ __typename }","operationName":1}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "extensions an array", body: `{"query":"{ __typename }","extensions":[]}`, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "null optional parameters", body: `{"query":"{ __typename }","variables":null,"operationName":null,"extensions":null}`, status: 200, media: appJSON},
		{name: "unknown top-level key ignored", body: `{"query":"{ __typename }","future":1}`, status: 200, media: appJSON},

		// Request errors of well-formed requests: 200 under
		// application/json, 400 under graphql-response+json, no data.
		{name: "parse error, json", body: `{"query":"{"}`, status: 200, media: appJSON, code: "GRAPHQL_PARSE_FAILED"},
		{name: "parse error, graphql-response", accept: gqlResponse, body: `{"query":"{"}`, status: 400, media: gqlResponse, code: "GRAPHQL_PARSE_FAILED"},
		{name: "empty query", body: `{"query":""}`, status: 200, media: appJSON, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "validation error, json", body: `{"query":"{ nope }"}`, status: 200, media: appJSON, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "validation error, graphql-response", accept: gqlResponse, body: `{"query":"{ nope }"}`, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "several operations, no operationName", accept: gqlResponse, body: `{"query":"query A { __typename } query B { __typename }"}`, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "several operations, no operationName, json", body: `{"query":"query A { __typename } query B { __typename }"}`, status: 200, media: appJSON, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "operationName picks one", accept: gqlResponse, body: `{"query":"query A { __typename } query B { __typename }","operationName":"B"}`, status: 200, media: gqlResponse},
		{name: "unknown operationName", accept: gqlResponse, body: `{"query":"query A { __typename }","operationName":"C"}`, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "subscription (schema has none)", accept: gqlResponse, body: `{"query":"subscription { __typename }"}`, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "missing variable", accept: gqlResponse, body: `{"query":"query ($id: ID!) { cloudCredential(id: $id) { id } }"}`, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "variable of the wrong type", accept: gqlResponse, body: `{"query":"query ($n: Int) { users(first: $n) { pageInfo { hasNextPage } } }","variables":{"n":"ten"}}`, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "variable of the wrong type, json", body: `{"query":"query ($n: Int) { users(first: $n) { pageInfo { hasNextPage } } }","variables":{"n":"ten"}}`, status: 200, media: appJSON, code: "GRAPHQL_VALIDATION_FAILED"},

		// GET (spec § GET).
		{name: "GET query", method: "GET", query: url.Values{"query": {"{ __typename }"}}, status: 200, media: appJSON},
		{name: "GET graphql-response+json", method: "GET", accept: gqlResponse, query: url.Values{"query": {"{ __typename }"}}, status: 200, media: gqlResponse},
		{name: "GET variables", method: "GET", query: url.Values{"query": {"query ($x: Boolean!) { __typename @include(if: $x) }"}, "variables": {`{"x":true}`}}, status: 200, media: appJSON},
		{name: "GET operationName", method: "GET", query: url.Values{"query": {"query A { __typename } query B { __typename }"}, "operationName": {"A"}}, status: 200, media: appJSON},
		{name: "GET empty operationName is none", method: "GET", accept: gqlResponse, query: url.Values{"query": {"query A { __typename } query B { __typename }"}, "operationName": {""}}, status: 400, media: gqlResponse, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "GET no query", method: "GET", status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "GET query twice", method: "GET", query: url.Values{"query": {"{ __typename }", "{ __typename }"}}, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "GET variables not JSON", method: "GET", query: url.Values{"query": {"{ __typename }"}, "variables": {"x=1"}}, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "GET variables an array", method: "GET", query: url.Values{"query": {"{ __typename }"}, "variables": {"[1]"}}, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "GET extensions not an object", method: "GET", query: url.Values{"query": {"{ __typename }"}, "extensions": {`"x"`}}, status: 400, media: appJSON, code: "BAD_REQUEST"},
		{name: "GET parse error", method: "GET", accept: gqlResponse, query: url.Values{"query": {"{"}}, status: 400, media: gqlResponse, code: "GRAPHQL_PARSE_FAILED"},
		{name: "GET unsupported Accept", method: "GET", accept: "text/html", query: url.Values{"query": {"{ __typename }"}}, status: 406, media: appJSON, code: "NOT_ACCEPTABLE"},
		{name: "GET mutation → 405", method: "GET", query: url.Values{"query": {"mutation { logout }"}}, status: 405, media: appJSON, code: "METHOD_NOT_ALLOWED", allow: "POST"},
		{name: "GET mutation → 405, graphql-response", method: "GET", accept: gqlResponse, query: url.Values{"query": {"mutation { logout }"}}, status: 405, media: gqlResponse, code: "METHOD_NOT_ALLOWED", allow: "POST"},
		{name: "GET invalid mutation → 405", method: "GET", query: url.Values{"query": {"mutation { nope }"}}, status: 405, media: appJSON, code: "METHOD_NOT_ALLOWED", allow: "POST"},
		{name: "GET mutation chosen by operationName → 405", method: "GET", query: url.Values{"query": {"query Q { __typename } mutation M { logout }"}, "operationName": {"M"}}, status: 405, media: appJSON, code: "METHOD_NOT_ALLOWED", allow: "POST"},
		{name: "GET query beside a mutation", method: "GET", query: url.Values{"query": {"query Q { __typename } mutation M { logout }"}, "operationName": {"Q"}}, status: 200, media: appJSON},

		// Other methods.
		{name: "HEAD", method: "HEAD", query: url.Values{"query": {"{ __typename }"}}, status: 200},
		{name: "OPTIONS", method: "OPTIONS", status: 204, allow: "GET, HEAD, POST, OPTIONS"},
		{name: "PUT → 405", method: "PUT", body: typename, status: 405, media: appJSON, code: "METHOD_NOT_ALLOWED", allow: "GET, HEAD, POST, OPTIONS"},
		{name: "DELETE → 405", method: "DELETE", status: 405, media: appJSON, code: "METHOD_NOT_ALLOWED", allow: "GET, HEAD, POST, OPTIONS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			var header []string
			switch {
			case method != http.MethodPost:
			case c.ctype == "-":
			case c.ctype != "":
				header = append(header, "Content-Type", c.ctype)
			default:
				header = append(header, "Content-Type", appJSON)
			}
			if c.accept != "" {
				header = append(header, "Accept", c.accept)
			}
			path := "/graphql"
			if c.query != nil {
				path += "?" + c.query.Encode()
			}
			r := app.send(t, method, path, strings.NewReader(c.body), header...)

			// Every /graphql answer, refusals included, is uncacheable and
			// not to be sniffed.
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if c.allow != "" && r.Header.Get("Allow") != c.allow {
				t.Errorf("Allow = %q, want %q", r.Header.Get("Allow"), c.allow)
			}
			switch {
			case c.media == "":
				if r.Status != c.status || len(r.Body) != 0 {
					t.Fatalf("want %d and no body, got %d: %q", c.status, r.Status, r.Body)
				}
				if method == http.MethodHead && r.mediaType() != appJSON {
					t.Fatalf("HEAD Content-Type = %q", r.Header.Get("Content-Type"))
				}
			case c.code != "":
				e := r.wantRequestError(t, c.status, c.media, c.code)
				if e.Message == "" {
					t.Fatal("error without a message")
				}
			default:
				if c.status != http.StatusOK {
					t.Fatalf("bad case: data answers are 200")
				}
				data := r.wantData(t, c.media)
				if len(r.errs(t)) != 0 {
					t.Fatalf("unexpected errors: %s", r.Body)
				}
				if string(data["__typename"]) != `"Query"` {
					t.Fatalf("want __typename Query, got %s", r.Body)
				}
			}
			if c.media != "" && !strings.HasSuffix(r.Header.Get("Content-Type"), "; charset=utf-8") {
				t.Errorf("Content-Type %q without charset", r.Header.Get("Content-Type"))
			}
		})
	}
}

// TestFieldErrorsAre200 pins that a field error is not a request error: the
// response has data and is 200 under both media types (spec § Status
// Codes, "Field errors encountered during execution").
func TestFieldErrorsAre200(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	for _, media := range []string{appJSON, gqlResponse} {
		r := app.postJSON(t, `{"query":"{ me { id } __typename }"}`, "Accept", media)
		data := r.wantData(t, media)
		if string(data["me"]) != "null" || string(data["__typename"]) != `"Query"` {
			t.Fatalf("%s: want me null beside __typename: %s", media, r.Body)
		}
		es := r.errs(t)
		if len(es) != 1 || es[0].Extensions["code"] != "UNAUTHENTICATED" {
			t.Fatalf("%s: want one UNAUTHENTICATED error: %s", media, r.Body)
		}
	}
}

// TestMutationOverGETNotExecuted checks that a mutation sent with GET is
// refused before anything runs: the account it would create does not exist
// afterwards, so the same registration over POST still makes the first
// (admin) account.
func TestMutationOverGETNotExecuted(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	mutation := `mutation { register(input: {email: "get@example.com", password: "correct horse"}) { id } }`
	for _, accept := range []string{"", gqlResponse} {
		r := app.get(t, url.Values{"query": {mutation}}, "Accept", accept)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
			t.Fatalf("want 405 Allow: POST, got %d %q: %s", r.Status, r.Header.Get("Allow"), r.Body)
		}
		if _, ok := r.doc(t)["data"]; ok {
			t.Fatalf("405 with data: %s", r.Body)
		}
	}
	// HEAD is GET without a body: refused the same way.
	if r := app.send(t, http.MethodHead, "/graphql?"+url.Values{"query": {mutation}}.Encode(), nil); r.Status != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD mutation: %d", r.Status)
	}
	u := app.client(t).register("get@example.com", "correct horse")
	if !u.IsAdmin {
		t.Fatal("the GET registration ran: the POST one is not the first account")
	}
}

// TestFormsRefusedNotExecuted sends a register mutation in each body a
// cross-site HTML form or a CORS simple request can send; none may run.
func TestFormsRefusedNotExecuted(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	const email = "csrf@example.com"
	mutation := `mutation { register(input: {email: "` + email + `", password: "correct horse"}) { id } }`
	jsonBody, _ := json.Marshal(map[string]any{"query": mutation})

	var multipart bytes.Buffer
	fmt.Fprintf(&multipart, "--B\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n%s\r\n", jsonBody)
	fmt.Fprintf(&multipart, "--B\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{}\r\n--B--\r\n")

	bodies := []struct{ ctype, body string }{
		{"application/x-www-form-urlencoded", url.Values{"query": {mutation}}.Encode()},
		{"multipart/form-data; boundary=B", multipart.String()},
		{"text/plain", string(jsonBody)},
		{"text/plain;charset=UTF-8", string(jsonBody)},
		{"application/graphql", mutation},
	}
	for _, b := range bodies {
		r := app.send(t, http.MethodPost, "/graphql", strings.NewReader(b.body), "Content-Type", b.ctype)
		r.wantRequestError(t, http.StatusUnsupportedMediaType, appJSON, "UNSUPPORTED_MEDIA_TYPE")
		// The form's URL query string is not read either.
		r = app.send(t, http.MethodPost, "/graphql?"+url.Values{"query": {mutation}}.Encode(),
			strings.NewReader(b.body), "Content-Type", b.ctype)
		r.wantRequestError(t, http.StatusUnsupportedMediaType, appJSON, "UNSUPPORTED_MEDIA_TYPE")
	}
	u := app.client(t).register(email, "correct horse")
	if !u.IsAdmin {
		t.Fatal("a refused form registration ran: the JSON one is not the first account")
	}
}

// TestCORS checks the allow-list: an allowed origin gets the CORS headers
// on its preflight and its request; any other origin, and every origin when
// none is configured, gets none.
func TestCORS(t *testing.T) {
	t.Parallel()
	preflight := func(app *testApp, origin, method, headers string) *httpResult {
		return app.send(t, http.MethodOptions, "/graphql", nil, "Origin", origin,
			"Access-Control-Request-Method", method, "Access-Control-Request-Headers", headers)
	}
	noCORS := func(t *testing.T, r *httpResult) {
		t.Helper()
		for name := range r.Header {
			if strings.HasPrefix(name, "Access-Control-") {
				t.Fatalf("unexpected %s: %q", name, r.Header.Get(name))
			}
		}
	}

	t.Run("none configured", func(t *testing.T) {
		t.Parallel()
		app := startApp(t, nil)
		r := preflight(app, "https://app.example.com", "POST", "authorization,content-type")
		noCORS(t, r)
		r = app.postJSON(t, `{"query":"{ __typename }"}`, "Origin", "https://app.example.com")
		r.wantData(t, appJSON)
		noCORS(t, r)
	})

	t.Run("allow-list", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.CORSOrigins = []string{"https://app.example.com", "https://*.dash.example.org"}
		app := startApp(t, cfg)
		for _, origin := range []string{"https://app.example.com", "https://eu.dash.example.org"} {
			r := preflight(app, origin, "POST", "authorization,content-type")
			if r.Status != http.StatusNoContent {
				t.Fatalf("preflight status %d", r.Status)
			}
			h := r.Header
			if h.Get("Access-Control-Allow-Origin") != origin {
				t.Fatalf("%s: Allow-Origin %q", origin, h.Get("Access-Control-Allow-Origin"))
			}
			if h.Get("Access-Control-Allow-Methods") != "POST" {
				t.Fatalf("Allow-Methods %q", h.Get("Access-Control-Allow-Methods"))
			}
			if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); got != "authorization, content-type" && got != "authorization,content-type" {
				t.Fatalf("Allow-Headers %q", got)
			}
			if h.Get("Access-Control-Max-Age") != "600" {
				t.Fatalf("Max-Age %q", h.Get("Access-Control-Max-Age"))
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatal("credentials must not be allowed")
			}
			r = app.postJSON(t, `{"query":"{ __typename }"}`, "Origin", origin)
			r.wantData(t, appJSON)
			if r.Header.Get("Access-Control-Allow-Origin") != origin || r.Header.Get("Access-Control-Expose-Headers") != "X-Request-Id" {
				t.Fatalf("actual request: %v", r.Header)
			}
			if !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
				t.Fatalf("Vary %q", r.Header.Values("Vary"))
			}
		}
		for _, origin := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com.evil.example", "null"} {
			noCORS(t, preflight(app, origin, "POST", "content-type"))
			r := app.postJSON(t, `{"query":"{ __typename }"}`, "Origin", origin)
			noCORS(t, r)
		}
		// A method or header outside the list: the preflight fails.
		noCORS(t, preflight(app, "https://app.example.com", "PUT", "content-type"))
		noCORS(t, preflight(app, "https://app.example.com", "POST", "x-custom"))
	})
}

// envConfig is the configuration config.Load makes of env alone, with the
// test's data directory and Argon2id parameters.
func envConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ref := testConfig(t)
	cfg.DataDir, cfg.Argon2, cfg.HashConcurrency = ref.DataDir, ref.Argon2, ref.HashConcurrency
	return cfg
}

// productionConfig is the configuration of CLOUDKEYS_ENV=production with
// the given extra environment.
func productionConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	all := map[string]string{
		"CLOUDKEYS_ENV":             "production",
		"CLOUDKEYS_JWT_SECRET":      strings.Repeat("s", 40),
		"CLOUDKEYS_AUDIT_KEY":       strings.Repeat("a", 40),
		"CLOUDKEYS_ENCRYPTION_KEYS": `{"keys":[{"kty":"oct","kid":"k1","alg":"A256KW","use":"enc","k":"` + strings.Repeat("A", 43) + `"}]}`,
	}
	for k, v := range env {
		all[k] = v
	}
	return envConfig(t, all)
}

// TestIntrospectionByEnvironment: introspection, /schema.graphql and the
// playground are on in development, off in production, and each can be
// switched explicitly.
func TestIntrospectionByEnvironment(t *testing.T) {
	t.Parallel()
	dev := func(env map[string]string) *config.Config { return envConfig(t, env) }
	cases := []struct {
		name                      string
		cfg                       func() *config.Config
		introspection, playground bool
	}{
		{"development", func() *config.Config { return dev(nil) }, true, true},
		{"development, both off", func() *config.Config {
			return dev(map[string]string{"CLOUDKEYS_INTROSPECTION": "false", "CLOUDKEYS_PLAYGROUND": "false"})
		}, false, false},
		{"production", func() *config.Config { return productionConfig(t, nil) }, false, false},
		{"production, introspection on", func() *config.Config {
			return productionConfig(t, map[string]string{"CLOUDKEYS_INTROSPECTION": "true"})
		}, true, false},
		{"production, playground on", func() *config.Config {
			return productionConfig(t, map[string]string{"CLOUDKEYS_PLAYGROUND": "true"})
		}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := startApp(t, c.cfg())
			for _, query := range []string{
				`{ __schema { queryType { name } } }`,
				`{ __type(name: "User") { name } }`,
				`query { ...I } fragment I on Query { __schema { types { name } } }`,
			} {
				r := app.postJSON(t, map[string]any{"query": query}, "Accept", gqlResponse)
				if c.introspection {
					r.wantData(t, gqlResponse)
				} else {
					e := r.wantRequestError(t, http.StatusBadRequest, gqlResponse, "GRAPHQL_VALIDATION_FAILED")
					if !strings.Contains(e.Message, "introspection is disabled") {
						t.Fatalf("message %q", e.Message)
					}
				}
			}
			// __typename is not introspection: it always works.
			app.postJSON(t, `{"query":"{ __typename }"}`).wantData(t, appJSON)

			// Validation errors suggest names ("Did you mean …?") only when
			// introspection would tell them anyway.
			for _, query := range []string{
				`mutation { resetUserPasswrd(id: "x", newPassword: "y") }`, // field
				`{ me { emial } }`, // field of a type
				`{ users(statuss: PENDING) { pageInfo { hasNextPage } } }`,                       // argument
				`{ users(status: PENDNG) { pageInfo { hasNextPage } } }`,                         // enum value
				`mutation { register(input: {email: "a", password: "b", pasword: "c"}) { id } }`, // input field
				`query { ...F } fragment F on Usr { __typename }`,                                // type
			} {
				r := app.postJSON(t, map[string]any{"query": query})
				r.wantRequestError(t, http.StatusOK, appJSON, "GRAPHQL_VALIDATION_FAILED")
				if suggests := strings.Contains(string(r.Body), "Did you mean"); suggests != c.introspection {
					t.Fatalf("%s: with introspection %v the answer is %s", query, c.introspection, r.Body)
				}
				if !c.introspection && strings.Contains(string(r.Body), "resetUserPassword") {
					t.Fatalf("the answer names a field the query did not: %s", r.Body)
				}
			}

			r := app.send(t, http.MethodGet, "/schema.graphql", nil)
			if c.introspection {
				if r.Status != http.StatusOK || string(r.Body) != schema.SDL() {
					t.Fatalf("/schema.graphql: %d, equal to schema.SDL(): %v", r.Status, string(r.Body) == schema.SDL())
				}
				if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Fatalf("/schema.graphql Content-Type %q", ct)
				}
			} else if r.Status != http.StatusNotFound {
				t.Fatalf("/schema.graphql with introspection off: %d", r.Status)
			}

			for _, path := range []string{"/", "/playground/graphiql.js"} {
				r := app.send(t, http.MethodGet, path, nil)
				if c.playground && r.Status != http.StatusOK || !c.playground && r.Status != http.StatusNotFound {
					t.Fatalf("GET %s with playground=%v: %d", path, c.playground, r.Status)
				}
			}
		})
	}
}

// TestSchemaMatchesFiles checks that /schema.graphql serves schema.SDL(),
// that it holds every schema file as it is on disk, and that it loads as a
// schema.
func TestSchemaMatchesFiles(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	r := app.send(t, http.MethodGet, "/schema.graphql", nil)
	if r.Status != http.StatusOK || string(r.Body) != schema.SDL() {
		t.Fatalf("/schema.graphql: %d, %d bytes; schema.SDL() has %d", r.Status, len(r.Body), len(schema.SDL()))
	}
	files, err := filepath.Glob("../schema/*.graphql")
	if err != nil || len(files) < 3 {
		t.Fatalf("schema files: %v %v", files, err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(r.Body), "# schema/"+filepath.Base(f)+"\n\n"+string(src)) {
			t.Fatalf("/schema.graphql lacks %s as it is on disk", f)
		}
	}
	if _, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: string(r.Body)}); err != nil {
		t.Fatalf("/schema.graphql does not load: %v", err)
	}
}

// TestPlaygroundPage checks the page through the real server: its CSP,
// security headers, no URL outside the origin, and every asset it names
// served.
func TestPlaygroundPage(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	r := app.send(t, http.MethodGet, "/", nil)
	if r.Status != http.StatusOK || r.mediaType() != "text/html" {
		t.Fatalf("GET /: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	if got := r.Header.Get("Content-Security-Policy"); got != playground.CSP {
		t.Fatalf("CSP = %q, want %q", got, playground.CSP)
	}
	// Directive by directive: scripts and connections from this origin
	// only, nothing else by default, no framing.
	directives := map[string]string{}
	for _, d := range strings.Split(playground.CSP, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{"default-src": "'none'", "script-src": "'self'",
		"connect-src": "'self'", "frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'none'"} {
		if directives[name] != want {
			t.Fatalf("CSP %s is %q, want exactly %q", name, directives[name], want)
		}
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("no nosniff")
	}
	page := string(r.Body)
	if strings.Contains(page, "http:") || strings.Contains(page, "https:") || strings.Contains(page, "//") {
		t.Fatalf("the page names a URL outside its origin:\n%s", page)
	}
	refs := regexp.MustCompile(`(?:src|href|data-[a-z-]+)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 6 {
		t.Fatalf("want the page's asset references, found %d", len(refs))
	}
	for _, ref := range refs {
		u := strings.ReplaceAll(ref[1], "&amp;", "&")
		if strings.HasPrefix(u, "data:") || u == "/graphql" {
			continue
		}
		if !strings.HasPrefix(u, "/playground/") {
			t.Fatalf("unexpected reference %q", u)
		}
		if a := app.send(t, http.MethodGet, u, nil); a.Status != http.StatusOK || len(a.Body) == 0 {
			t.Fatalf("asset %s: %d", u, a.Status)
		}
	}
}

// TestSecurityHeadersEverywhere: nosniff on every answer, whatever route.
func TestSecurityHeadersEverywhere(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	for _, path := range []string{"/", "/healthz", "/readyz", "/schema.graphql", "/graphql", "/nope", "/playground/nope.js"} {
		r := app.send(t, http.MethodGet, path, nil)
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s (%d): no X-Content-Type-Options: nosniff", path, r.Status)
		}
		if r.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-ID", path)
		}
	}
}

// A request with two Authorization headers is refused, not answered as
// the first: on /graphql in the GraphQL shape, on the relay in the
// provider's.
func TestTwoAuthorizationHeaders(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	_, u := app.adminClient(t)
	token := app.admin.token
	for _, path := range []string{"/graphql", "/relay/v1/chat/completions"} {
		req, _ := http.NewRequest("POST", app.URL+path, strings.NewReader(`{"query":"{ me { id } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("Authorization", "Bearer "+token)
		req.Header.Add("Authorization", "Bearer someone-else")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400: %s", path, res.StatusCode, b)
		}
		if strings.Contains(string(b), u.ID) {
			t.Errorf("%s: answered as the first header's caller", path)
		}
		want := `"code":"BAD_REQUEST"`
		if path != "/graphql" {
			want = `"type":"invalid_request_error"`
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %s, want %s", path, b, want)
		}
	}
}
