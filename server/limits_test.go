package server_test

// The request limits of SPEC §5: body size, parser tokens, depth, aliases,
// complexity, per-request timeout; persisted queries and the query cache.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloudkeys/auth"
)

// wantLimit asserts a request error with code under both response media
// types (200 / 400, no data) and returns its message.
func wantLimit(t *testing.T, app *testApp, body any, code string) string {
	t.Helper()
	app.postJSON(t, body).wantRequestError(t, http.StatusOK, appJSON, code)
	return app.postJSON(t, body, "Accept", gqlResponse).wantRequestError(t, http.StatusBadRequest, gqlResponse, code).Message
}

// wantPasses asserts that a request is not refused as a whole: it executes
// (a data entry, whatever its fields' errors).
func wantPasses(t *testing.T, app *testApp, body any) {
	t.Helper()
	r := app.postJSON(t, body, "Accept", gqlResponse)
	if r.Status != http.StatusOK {
		t.Fatalf("want it to execute, got %d: %s", r.Status, r.Body)
	}
	if _, ok := r.doc(t)["data"]; !ok {
		t.Fatalf("want it to execute, got %s", r.Body)
	}
}

func q(query string) map[string]any { return map[string]any{"query": query} }

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	limit := int(app.Config.MaxBodyBytes)
	if limit != 1<<20 {
		t.Fatalf("default body limit %d, want 1 MiB", limit)
	}
	// A body of exactly the limit is read and executed.
	frame := `{"query":"{ __typename }","variables":{"pad":""}}`
	fits := strings.Replace(frame, `""`, `"`+strings.Repeat("x", limit-len(frame))+`"`, 1)
	if len(fits) != limit {
		t.Fatalf("body of %d bytes", len(fits))
	}
	app.postJSON(t, fits).wantData(t, appJSON)

	// One byte more: 413, with a Content-Length and without one (chunked).
	over := strings.Replace(fits, `"pad":"`, `"pad":"x`, 1)
	for _, media := range []string{appJSON, gqlResponse} {
		e := app.postJSON(t, over, "Accept", media).wantRequestError(t, http.StatusRequestEntityTooLarge, media, "BODY_LIMIT_EXCEEDED")
		if !strings.Contains(e.Message, fmt.Sprint(limit)) {
			t.Fatalf("message does not name the limit: %q", e.Message)
		}
	}
	chunked := app.send(t, http.MethodPost, "/graphql", io.MultiReader(strings.NewReader(over)), "Content-Type", appJSON)
	chunked.wantRequestError(t, http.StatusRequestEntityTooLarge, appJSON, "BODY_LIMIT_EXCEEDED")

	// The limit is the configuration's.
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 100
	small := startApp(t, cfg)
	small.postJSON(t, `{"query":"{ __typename }"}`).wantData(t, appJSON)
	small.postJSON(t, q("{ __typename "+strings.Repeat(" ", 100)+"}")).
		wantRequestError(t, http.StatusRequestEntityTooLarge, appJSON, "BODY_LIMIT_EXCEEDED")
}

func TestTokenLimit(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxComplexity = 0 // the stream below is also more fields than it allows
	app := startApp(t, cfg)
	limit := app.Config.MaxTokens
	// { + n × __typename + } is n+2 tokens.
	stream := func(n int) string { return "{" + strings.Repeat(" __typename", n) + " }" }
	wantPasses(t, app, q(stream(limit-2)))
	msg := wantLimit(t, app, q(stream(limit-1)), "TOKEN_LIMIT_EXCEEDED")
	if !strings.Contains(msg, fmt.Sprint(limit)) || !strings.Contains(msg, "tokens") {
		t.Fatalf("message %q", msg)
	}
	// A far longer one, over GET too.
	r := app.get(t, url.Values{"query": {stream(20 * limit)}})
	r.wantRequestError(t, http.StatusOK, appJSON, "TOKEN_LIMIT_EXCEEDED")
}

// nest returns { me { approvedBy { … { id } } } } with depth fields on its
// longest path.
func nest(depth int) string {
	return "{ me {" + strings.Repeat(" approvedBy {", depth-2) + " id" + strings.Repeat(" }", depth-1) + " }"
}

func TestDepthLimit(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	limit := app.Config.MaxDepth
	wantPasses(t, app, q(nest(limit)))
	msg := wantLimit(t, app, q(nest(limit+1)), "DEPTH_LIMIT_EXCEEDED")
	if !strings.Contains(msg, fmt.Sprintf("%d deep", limit+1)) || !strings.Contains(msg, fmt.Sprint(limit)) {
		t.Fatalf("message %q", msg)
	}
	// Fragments and inline fragments add their depth where they are spread.
	frag := `query { me { ...A } }
fragment A on User { approvedBy { ... on User { approvedBy { ...B } } } }
fragment B on User { approvedBy { approvedBy { approvedBy { approvedBy { approvedBy { approvedBy { approvedBy { approvedBy { approvedBy { id } } } } } } } } } }`
	wantLimit(t, app, q(frag), "DEPTH_LIMIT_EXCEEDED") // me, 2 in A, 9 + id in B: 13
	// A cached document is checked again on every request.
	wantLimit(t, app, q(frag), "DEPTH_LIMIT_EXCEEDED")

	cfg := testConfig(t)
	cfg.MaxDepth = 3
	shallow := startApp(t, cfg)
	wantPasses(t, shallow, q(nest(3)))
	wantLimit(t, shallow, q(nest(4)), "DEPTH_LIMIT_EXCEEDED")
}

// introspectionQuery is the query GraphiQL 5 (graphql-js 16's
// getIntrospectionQuery, typeDepth 9) sends to load the schema, with every
// option on.
var introspectionQuery = `query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name` + strings.Repeat(" ofType { kind name", 9) + strings.Repeat(" }", 9) + `
}`

// TestIntrospectionQueryWithinLimits: the playground's schema query passes
// every default limit.
func TestIntrospectionQueryWithinLimits(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	r := app.postJSON(t, q(introspectionQuery), "Accept", gqlResponse)
	data := r.wantData(t, gqlResponse)
	if len(r.errs(t)) > 0 || !strings.Contains(string(data["__schema"]), `"cloudCredentials"`) {
		t.Fatalf("introspection: %.500s", r.Body)
	}
}

// aliases returns n aliased fields: a0: __typename a1: __typename …
func aliases(n int, field string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d: %s", i, field)
	}
	return b.String()
}

func TestAliasLimit(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	limit := app.Config.MaxAliases
	wantPasses(t, app, q("{"+aliases(limit, "__typename")+" }"))
	msg := wantLimit(t, app, q("{"+aliases(limit+1, "__typename")+" }"), "ALIAS_LIMIT_EXCEEDED")
	if !strings.Contains(msg, fmt.Sprintf("%d aliases", limit+1)) {
		t.Fatalf("message %q", msg)
	}
	// A wide bomb of logins: refused whole, so no attempt is made.
	bomb := "mutation {" + aliases(60, `login(email: "a@example.com", password: "guess") { accessToken }`) + " }"
	wantLimit(t, app, q(bomb), "ALIAS_LIMIT_EXCEEDED")

	// A field without an alias, or aliased to its own name, is no alias.
	wantPasses(t, app, q("{ __typename __typename: __typename"+aliases(limit, "__typename")+" }"))

	// Aliases in a fragment count once per place it is spread.
	frag := fmt.Sprintf(`query { me { ...F approvedBy { ...F } } }
fragment F on User {%s }`, aliases(limit/2+1, "id"))
	wantLimit(t, app, q(frag), "ALIAS_LIMIT_EXCEEDED")
	once := fmt.Sprintf(`query { me { ...F } }
fragment F on User {%s }`, aliases(limit/2+1, "id"))
	wantPasses(t, app, q(once))
}

func TestComplexityLimit(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	page := `users(first: 100) { edges { cursor node { id email isAdmin status createdAt approvedAt approvedBy { id email } } } pageInfo { hasNextPage endCursor } }`
	// The admin's largest page fits the default limit…
	wantPasses(t, app, q("{ "+page+" }"))
	// …two of them do not.
	msg := wantLimit(t, app, q("{ a: "+page+" b: "+page+" }"), "COMPLEXITY_LIMIT_EXCEEDED")
	if !strings.Contains(msg, fmt.Sprint(app.Config.MaxComplexity)) {
		t.Fatalf("message %q", msg)
	}
	// Password hashing is expensive: ten logins in one request are too many,
	// well under the alias limit.
	wantLimit(t, app, q("mutation {"+aliases(10, `login(email: "a@example.com", password: "guess") { accessToken }`)+" }"),
		"COMPLEXITY_LIMIT_EXCEEDED")

	// A fragment bomb (each fragment spreads the next twice: 2^40 fields
	// in a few hundred tokens) is refused at once.
	var b strings.Builder
	b.WriteString("query { ...F0 }\n")
	for i := range 40 {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ... on Query { ...F%d } }\n", i, i+1, i+1)
	}
	b.WriteString("fragment F40 on Query { __typename }\n")
	start := time.Now()
	wantLimit(t, app, q(b.String()), "COMPLEXITY_LIMIT_EXCEEDED")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the fragment bomb took %v", d)
	}

	cfg := testConfig(t)
	cfg.MaxComplexity = 5
	tight := startApp(t, cfg)
	wantPasses(t, tight, q("{ a: __typename b: __typename c: __typename d: __typename e: __typename }"))
	wantLimit(t, tight, q("{ me { id email isAdmin status createdAt } }"), "COMPLEXITY_LIMIT_EXCEEDED")
}

// TestLimitsOff: 0 turns each limit off.
func TestLimitsOff(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxDepth, cfg.MaxAliases, cfg.MaxComplexity, cfg.MaxTokens = 0, 0, 0, 0
	app := startApp(t, cfg)
	wantPasses(t, app, q(nest(40)))
	wantPasses(t, app, q("{"+aliases(300, "__typename")+" }"))
	wantPasses(t, app, q("{"+strings.Repeat(" a: __typename", 2_000)+" }"))
}

func TestTimeout(t *testing.T) {
	t.Parallel()

	t.Run("before execution", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t)
		cfg.RequestTimeout = time.Nanosecond
		app := startApp(t, cfg)
		body := q("{ __typename }")
		app.postJSON(t, body).wantRequestError(t, http.StatusOK, appJSON, "TIMEOUT")
		e := app.postJSON(t, body, "Accept", gqlResponse).wantRequestError(t, http.StatusServiceUnavailable, gqlResponse, "TIMEOUT")
		if !strings.Contains(e.Message, "time limit") {
			t.Fatalf("message %q", e.Message)
		}
	})

	t.Run("during a field", func(t *testing.T) {
		t.Parallel()
		// register hashes the password (slow parameters here, hundreds of
		// milliseconds), then writes with the request's context, whose
		// deadline has passed by then.
		cfg := testConfig(t)
		cfg.Argon2 = auth.Params{MemoryKiB: 64 * 1024, Iterations: 8, Parallelism: 1, SaltLength: 16, KeyLength: 32}
		cfg.RequestTimeout = 50 * time.Millisecond
		app := startApp(t, cfg)
		start := time.Now()
		r := app.client(t).do(registerMutation, map[string]any{"email": "slow@example.com", "password": "correct horse"})
		if time.Since(start) < cfg.RequestTimeout {
			t.Skip("hashing was faster than the timeout on this machine")
		}
		e := r.wantCode(t, "register", "TIMEOUT")
		if r.Status != http.StatusOK || !strings.Contains(e.Message, "time limit") {
			t.Fatalf("%d %s", r.Status, r)
		}
		if !strings.Contains(app.Logs(), "field timed out") {
			t.Fatal("the timeout is not logged")
		}
	})
}

func apqHash(query string) string {
	sum := sha256.Sum256([]byte(query))
	return hex.EncodeToString(sum[:])
}

func TestPersistedQueries(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	query := "{ __typename }"
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": apqHash(query)}}

	// Miss: the hash alone, before the server has seen the query.
	wantLimit(t, app, map[string]any{"extensions": ext}, "PERSISTED_QUERY_NOT_FOUND")
	extJSON := `{"persistedQuery":{"version":1,"sha256Hash":"` + apqHash(query) + `"}}`
	app.get(t, url.Values{"extensions": {extJSON}}).wantRequestError(t, http.StatusOK, appJSON, "PERSISTED_QUERY_NOT_FOUND")

	// Register: the query with its hash.
	data := app.postJSON(t, map[string]any{"query": query, "extensions": ext}).wantData(t, appJSON)
	if string(data["__typename"]) != `"Query"` {
		t.Fatal("registering run")
	}
	// Hit: the hash alone, over POST and over GET.
	for _, r := range []*httpResult{
		app.postJSON(t, map[string]any{"extensions": ext}),
		app.get(t, url.Values{"extensions": {extJSON}}),
	} {
		if data := r.wantData(t, appJSON); string(data["__typename"]) != `"Query"` {
			t.Fatalf("hit: %s", r.Body)
		}
	}
	// A hash that does not match the query is refused.
	bad := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": apqHash("{ me { id } }")}}
	wantLimit(t, app, map[string]any{"query": query, "extensions": bad}, "BAD_REQUEST")
	// A persisted mutation still cannot run over GET.
	mutation := "mutation { logout }"
	mext := `{"persistedQuery":{"version":1,"sha256Hash":"` + apqHash(mutation) + `"}}`
	app.postJSON(t, map[string]any{"query": mutation, "extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": apqHash(mutation)}}})
	app.get(t, url.Values{"extensions": {mext}}).wantRequestError(t, http.StatusMethodNotAllowed, appJSON, "METHOD_NOT_ALLOWED")
}
