package server_test

// The relay's refusals and its security, end to end over HTTP as an SDK
// speaks to it (SPEC §8): who may call (401), what may be called (404,
// 403), how much (413, 429), with which key (409), where the relay may
// connect (502), how long it waits (504), the owner's browser path, the
// cap of relay keys, and CORS. Each refusal is checked for its status, the
// provider's error shape, that nothing reached the provider when nothing
// should, and how usage counted it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"cloudkeys/config"
	"cloudkeys/relay/fakeprovider"
)

// refusalKey creates a relay key of credID as c and checks, when the test
// ends, that its secret never reached app's log.
func refusalKey(t *testing.T, app *testApp, c *client, credID string, input map[string]any) (relayKeyJSON, string) {
	t.Helper()
	k, secret := c.createRelayKey(credID, input)
	if !strings.HasPrefix(secret, "ckr_") {
		t.Fatalf("relay key secret %.6s… does not start with ckr_", secret)
	}
	t.Cleanup(func() { app.wantLogsWithout(t, secret) })
	return k, secret
}

// issueKey is refusalKey as the env's user.
func (e *relayEnv) issueKey(t *testing.T, credID string, input map[string]any) (relayKeyJSON, string) {
	t.Helper()
	return refusalKey(t, e.app, e.c, credID, input)
}

// wantRefusal asserts that a is the relay's own refusal with status, in
// the provider's error shape — OpenAI {"error":{"message","type","code"}},
// Anthropic {"type":"error","error":{"type","message"}} — and returns the
// error's type, message and (OpenAI) code.
func wantRefusal(t *testing.T, what string, a relayAnswer, status int, anthropic bool) (typ, msg string, code any) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	typ, msg = a.errorShape(t, anthropic)
	if typ == "" || msg == "" {
		t.Fatalf("%s: error without a type or message: %s", what, a.body)
	}
	e := a.json(t)["error"].(map[string]any)
	if !anthropic {
		var ok bool
		if code, ok = e["code"]; !ok {
			t.Fatalf("%s: OpenAI error without a code: %s", what, a.body)
		}
		if _, ok := a.json(t)["type"]; ok {
			t.Fatalf("%s: OpenAI error in Anthropic's shape: %s", what, a.body)
		}
	}
	return typ, msg, code
}

// wantOK asserts a relayed call succeeded.
func wantRelayOK(t *testing.T, what string, a relayAnswer) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200: %s", what, a.status, a.body)
	}
}

// wantProviderGot asserts that the fake has received exactly n requests.
func (e *relayEnv) wantProviderGot(t *testing.T, what string, n int) {
	t.Helper()
	if got := len(e.fake.Requests()); got != n {
		t.Fatalf("%s: the provider received %d requests, want %d", what, got, n)
	}
}

// relayUsageTotals flushes the meter and sums every usage row: what was counted
// against anybody at all.
func relayUsageTotals(t *testing.T, app *testApp) (requests, errs int) {
	t.Helper()
	if err := app.Meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return app.count(t, "SELECT COALESCE(SUM(requests), 0) FROM relay_usage"),
		app.count(t, "SELECT COALESCE(SUM(errors), 0) FROM relay_usage")
}

func wantKeyCounts(t *testing.T, what string, got usageJSON, requests, errs int64) {
	t.Helper()
	if got.Requests != requests || got.Errors != errs {
		t.Fatalf("%s: usage %d requests / %d errors, want %d / %d", what, got.Requests, got.Errors, requests, errs)
	}
}

// unknownRelaySecret is well-formed (ckr_ and 43 base64url characters) and no
// key's.
const unknownRelaySecret = "ckr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func authBearer(s string) []string { return []string{"Authorization", "Bearer " + s} }

// TestRelayRefusesUnauthenticated: only a live relay key of an approved
// owner gets through, in either header; refusals before a key is
// established count against nobody; revoking, expiring, deleting the
// credential and disabling the owner stop a key on the next request.
func TestRelayRefusesUnauthenticated(t *testing.T) {
	t.Parallel()
	cfg := relayConfig(t)
	clock := useClock(cfg)
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	chat := fakeprovider.ChatBody("gpt-4o-mini", false, false)
	msgs := fakeprovider.MessagesBody("claude-3-5-haiku-latest", false)

	// Before any key is established: nothing sent, nothing counted.
	for _, c := range []struct {
		what      string
		path      string
		body      any
		header    []string
		anthropic bool
	}{
		{"no key", "/relay/v1/chat/completions", chat, nil, false},
		{"no key, Anthropic SDK", "/relay/v1/messages", msgs, []string{"anthropic-version", "2023-06-01"}, true},
		{"empty bearer", "/relay/v1/chat/completions", chat, []string{"Authorization", "Bearer "}, false},
		{"unknown key", "/relay/v1/chat/completions", chat, authBearer(unknownRelaySecret), false},
		{"unknown key in x-api-key", "/relay/v1/messages", msgs, []string{"x-api-key", unknownRelaySecret}, true},
		{"malformed key", "/relay/v1/chat/completions", chat, authBearer("ckr_short"), false},
		{"the provider key itself", "/relay/v1/chat/completions", chat, authBearer(e.openAIKey), false},
		{"the owner's access token", "/relay/v1/chat/completions", chat, authBearer(e.c.token), false},
		{"no key, GET models", "/relay/v1/models", nil, nil, false},
	} {
		method := http.MethodPost
		if c.body == nil {
			method = http.MethodGet
		}
		a := e.call(t, method, c.path, c.body, c.header...)
		typ, _, code := wantRefusal(t, c.what, a, http.StatusUnauthorized, c.anthropic)
		if c.anthropic && typ != "authentication_error" {
			t.Errorf("%s: Anthropic error type %q, want authentication_error", c.what, typ)
		}
		if !c.anthropic && code != "invalid_api_key" {
			t.Errorf("%s: OpenAI error code %v, want invalid_api_key", c.what, code)
		}
	}
	e.wantProviderGot(t, "refused before a key", 0)
	if req, errs := relayUsageTotals(t, e.app); req != 0 || errs != 0 {
		t.Fatalf("refusals before a key was established counted %d requests / %d errors against somebody", req, errs)
	}

	// A valid key works in both forms, and the provider sees its own key,
	// never the relay key.
	k, secret := e.issueKey(t, e.openAI.ID, nil)
	wantRelayOK(t, "Bearer", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...))
	wantRelayOK(t, "x-api-key", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, "x-api-key", secret))
	wantRelayOK(t, "lower-case bearer", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, "Authorization", "bearer "+secret))
	ak, asecret := e.issueKey(t, e.anthropic.ID, nil)
	wantRelayOK(t, "x-api-key, Anthropic", e.call(t, http.MethodPost, "/relay/v1/messages", msgs,
		"x-api-key", asecret, "anthropic-version", "2023-06-01"))
	e.wantProviderGot(t, "valid keys", 4)
	for _, r := range e.fake.Requests() {
		for name, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, secret) || strings.Contains(v, asecret) {
					t.Fatalf("the relay key reached the provider in %s", name)
				}
			}
		}
	}
	if got := e.fake.Requests()[0].Header.Get("Authorization"); got != "Bearer "+e.openAIKey {
		t.Fatal("the provider did not get the stored key")
	}
	wantKeyCounts(t, "valid key", e.keyUsage(t, k.ID), 3, 0)
	wantKeyCounts(t, "valid Anthropic key", e.keyUsage(t, ak.ID), 1, 0)

	// Revoked: refused on the next request.
	rk, rsecret := e.issueKey(t, e.openAI.ID, map[string]any{"name": "to revoke"})
	wantRelayOK(t, "before revoking", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(rsecret)...))
	var revoked relayKeyJSON
	e.c.must(`mutation($id: ID!) { revokeRelayKey(id: $id) { `+relayKeyFields+` } }`,
		map[string]any{"id": rk.ID}, "revokeRelayKey", &revoked)
	if revoked.RevokedAt == nil {
		t.Fatalf("revokeRelayKey answered %+v without revokedAt", revoked)
	}
	sent := len(e.fake.Requests())
	wantRefusal(t, "revoked key", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(rsecret)...), http.StatusUnauthorized, false)
	// In x-api-key, before its credential is read, the shape is the
	// request's guess (Anthropic's here); the status is what counts.
	if a := e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, "x-api-key", rsecret); a.status != http.StatusUnauthorized {
		t.Fatalf("revoked key in x-api-key: %d %s", a.status, a.body)
	}
	e.wantProviderGot(t, "revoked key", sent)

	// Expired: the relay's clock is the configuration's.
	exp := clock.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	xk, xsecret := e.issueKey(t, e.anthropic.ID, map[string]any{"name": "expiring", "expiresAt": exp})
	if xk.ExpiresAt == nil {
		t.Fatal("createRelayKey dropped expiresAt")
	}
	wantRelayOK(t, "before expiry", e.call(t, http.MethodPost, "/relay/v1/messages", msgs, "x-api-key", xsecret))
	clock.Advance(59 * time.Second)
	wantRelayOK(t, "just before expiry", e.call(t, http.MethodPost, "/relay/v1/messages", msgs, "x-api-key", xsecret))
	clock.Advance(2 * time.Second)
	sent = len(e.fake.Requests())
	typ, _, _ := wantRefusal(t, "expired key", e.call(t, http.MethodPost, "/relay/v1/messages", msgs, "x-api-key", xsecret), http.StatusUnauthorized, true)
	if typ != "authentication_error" {
		t.Errorf("expired key: Anthropic error type %q, want authentication_error", typ)
	}
	e.wantProviderGot(t, "expired key", sent)

	// The credential deleted: its keys stop.
	extra := e.c.createCred(map[string]any{"name": "doomed", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": e.fake.URL})
	_, dsecret := e.issueKey(t, extra.ID, nil)
	wantRelayOK(t, "before deleting the credential", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(dsecret)...))
	var deleted bool
	e.c.must(deleteMutation, map[string]any{"id": extra.ID}, "deleteCloudCredential", &deleted)
	sent = len(e.fake.Requests())
	wantRefusal(t, "deleted credential", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(dsecret)...), http.StatusUnauthorized, false)
	e.wantProviderGot(t, "deleted credential", sent)

	// The owner disabled by an admin (ada, the first account, is one).
	if !e.user.IsAdmin {
		t.Fatal("setup: the first account is not an admin")
	}
	bob, bobUser := e.app.user(t, "bob@example.com")
	bobCred := bob.createCred(map[string]any{"name": "bob's", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": e.fake.URL})
	_, bsecret := refusalKey(t, e.app, bob, bobCred.ID, nil)
	wantRelayOK(t, "before disabling the owner", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(bsecret)...))
	e.c.mustUpdateUser(bobUser.ID, map[string]any{"status": "DISABLED"})
	sent = len(e.fake.Requests())
	wantRefusal(t, "disabled owner", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(bsecret)...), http.StatusUnauthorized, false)
	e.wantProviderGot(t, "disabled owner", sent)
	// The owner's other keys are unaffected by all this.
	wantRelayOK(t, "the first key, still", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...))
	e.app.wantLogsWithout(t, e.openAIKey, e.anthropicKey)
}

// TestRelayRefusesUnknownEndpoints: only the allow-list of the
// credential's API type is forwarded; dot segments, encoded slashes and
// empty segments are 404 and never reach the provider, while a model ID
// may hold a slash.
func TestRelayRefusesUnknownEndpoints(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	k, secret := e.issueKey(t, e.openAI.ID, nil)
	ak, asecret := e.issueKey(t, e.anthropic.ID, nil)
	chat := fakeprovider.ChatBody("gpt-4o-mini", false, false)
	msgs := fakeprovider.MessagesBody("claude-3-5-haiku-latest", false)

	type refusal struct {
		method, path string
		body         any
	}
	openAIRefusals := []refusal{
		{http.MethodPost, "/relay/v1/files", chat},
		{http.MethodPost, "/relay/v1/audio/speech", chat},
		{http.MethodGet, "/relay/v1/chat/completions", nil},
		{http.MethodPut, "/relay/v1/chat/completions", chat},
		{http.MethodDelete, "/relay/v1/models/gpt-4o-mini", nil},
		{http.MethodPost, "/relay/v1/models", chat},
		{http.MethodPost, "/relay/v1/messages", msgs}, // Anthropic's endpoint on an OpenAI credential
		{http.MethodPost, "/relay/v1/./chat/completions", chat},
		{http.MethodPost, "/relay/v1/chat/./completions", chat},
		{http.MethodPost, "/relay/v1/models/../chat/completions", chat},
		{http.MethodPost, "/relay/v1/models/%2e%2e/chat/completions", chat},
		{http.MethodPost, "/relay/v1/models/%2E%2E/chat/completions", chat},
		{http.MethodPost, "/relay/v1/%2e/chat/completions", chat},
		{http.MethodPost, "/relay/v1/chat%2Fcompletions", chat},
		{http.MethodPost, "/relay/v1/chat%2fcompletions", chat},
		{http.MethodPost, "/relay/v1//chat/completions", chat},
		{http.MethodPost, "/relay/v1/chat//completions", chat},
		{http.MethodPost, "/relay/v1/chat/completions/", chat},
		{http.MethodPost, "/relay/v1/chat/completions%00", chat},
		{http.MethodGet, "/relay/v1/models/meta-llama%2FLlama-3-8b", nil},
		{http.MethodGet, "/relay/v1/models/meta-llama//Llama-3-8b", nil},
		{http.MethodGet, "/relay/v1/models/..", nil},
		{http.MethodGet, "/relay/v1/models/", nil},
	}
	for _, r := range openAIRefusals {
		what := r.method + " " + r.path
		typ, _, code := wantRefusal(t, what, e.call(t, r.method, r.path, r.body, authBearer(secret)...), http.StatusNotFound, false)
		if typ != "invalid_request_error" || code != "not_found" {
			t.Errorf("%s: OpenAI error %s/%v, want invalid_request_error/not_found", what, typ, code)
		}
	}
	anthropicRefusals := []refusal{
		{http.MethodPost, "/relay/v1/chat/completions", chat}, // OpenAI's endpoint on an Anthropic credential
		{http.MethodPost, "/relay/v1/embeddings", chat},
		{http.MethodGet, "/relay/v1/messages", nil},
		{http.MethodPost, "/relay/v1/messages/../messages", msgs},
		{http.MethodPost, "/relay/v1/messages%2Fcount_tokens", msgs},
		{http.MethodPost, "/relay/v1/messages/batches", msgs},
	}
	for _, r := range anthropicRefusals {
		what := "Anthropic " + r.method + " " + r.path
		typ, _, _ := wantRefusal(t, what, e.call(t, r.method, r.path, r.body, "x-api-key", asecret), http.StatusNotFound, true)
		if typ != "not_found_error" {
			t.Errorf("%s: Anthropic error type %q, want not_found_error", what, typ)
		}
	}
	// Outside /relay/v1/ and /relay/credentials/{id}/v1/: 404 too.
	for _, p := range []string{"/relay/v2/chat/completions", "/relay/", "/relay/credentials/" + e.openAI.ID + "/chat/completions",
		"/relay/credentials//v1/chat/completions"} {
		wantRefusal(t, "POST "+p, e.call(t, http.MethodPost, p, chat, authBearer(secret)...), http.StatusNotFound, false)
	}
	e.wantProviderGot(t, "paths outside the allow-list", 0)
	// Refusals after the key was established count as its errors.
	wantKeyCounts(t, "OpenAI key", e.keyUsage(t, k.ID), int64(len(openAIRefusals)), int64(len(openAIRefusals)))
	wantKeyCounts(t, "Anthropic key", e.keyUsage(t, ak.ID), int64(len(anthropicRefusals)), int64(len(anthropicRefusals)))

	// A model ID may contain "/"; the provider gets the path as matched.
	a := e.call(t, http.MethodGet, "/relay/v1/models/meta-llama/Llama-3-8b", nil, authBearer(secret)...)
	wantRelayOK(t, "model ID with a slash", a)
	if id, _ := a.json(t)["id"].(string); id != "meta-llama/Llama-3-8b" {
		t.Fatalf("model ID with a slash: %s", a.body)
	}
	if p := e.fake.Last().Path; p != "/v1/models/meta-llama/Llama-3-8b" {
		t.Fatalf("the provider got %q", p)
	}
	wantRelayOK(t, "GET models", e.call(t, http.MethodGet, "/relay/v1/models", nil, authBearer(secret)...))
	wantRelayOK(t, "Anthropic GET models/{id}", e.call(t, http.MethodGet, "/relay/v1/models/claude-3-5-haiku-latest", nil, "x-api-key", asecret))
	wantRelayOK(t, "count_tokens", e.call(t, http.MethodPost, "/relay/v1/messages/count_tokens", msgs, "x-api-key", asecret))
	e.wantProviderGot(t, "allowed endpoints", 4)
}

// TestRelayRefusesLargeBodies: a body over CLOUDKEYS_RELAY_MAX_BODY_BYTES
// is 413 and nothing is sent, whether its length is announced or chunked;
// a body of exactly the limit passes.
func TestRelayRefusesLargeBodies(t *testing.T) {
	t.Parallel()
	const limit = 1024
	cfg := relayConfig(t)
	cfg.RelayMaxBodyBytes = limit
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	k, secret := e.issueKey(t, e.openAI.ID, nil)
	_, asecret := e.issueKey(t, e.anthropic.ID, nil)

	sized := func(n int) []byte { // a chat body of exactly n bytes
		b := fakeprovider.ChatBody("gpt-4o-mini", false, false)
		b["messages"] = []any{map[string]any{"role": "user", "content": ""}}
		empty, _ := json.Marshal(b)
		b["messages"] = []any{map[string]any{"role": "user", "content": strings.Repeat("x", n-len(empty))}}
		j, _ := json.Marshal(b)
		if len(j) != n {
			t.Fatalf("setup: body of %d bytes, want %d", len(j), n)
		}
		return j
	}
	wantRelayOK(t, "body of exactly the limit", e.call(t, http.MethodPost, "/relay/v1/chat/completions", sized(limit), authBearer(secret)...))
	e.wantProviderGot(t, "body of exactly the limit", 1)

	typ, _, code := wantRefusal(t, "one byte over", e.call(t, http.MethodPost, "/relay/v1/chat/completions", sized(limit+1), authBearer(secret)...),
		http.StatusRequestEntityTooLarge, false)
	if typ != "invalid_request_error" || code != "request_too_large" {
		t.Errorf("413: OpenAI error %s/%v", typ, code)
	}
	wantRefusal(t, "four times over", e.call(t, http.MethodPost, "/relay/v1/chat/completions", sized(4*limit), authBearer(secret)...),
		http.StatusRequestEntityTooLarge, false)
	atyp, _, _ := wantRefusal(t, "Anthropic, over", e.call(t, http.MethodPost, "/relay/v1/messages", sized(2*limit), "x-api-key", asecret),
		http.StatusRequestEntityTooLarge, true)
	if atyp != "request_too_large" {
		t.Errorf("413: Anthropic error type %q, want request_too_large", atyp)
	}

	// Chunked: no Content-Length to refuse on, the limit is hit while reading.
	req, _ := http.NewRequest(http.MethodPost, e.app.URL+"/relay/v1/chat/completions", io.MultiReader(bytes.NewReader(sized(3*limit))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if req.ContentLength != 0 {
		t.Fatal("setup: the chunked request announced a length")
	}
	wantRefusal(t, "chunked, over", relayAnswer{status: res.StatusCode, header: res.Header, body: body}, http.StatusRequestEntityTooLarge, false)

	e.wantProviderGot(t, "bodies over the limit", 1)
	wantKeyCounts(t, "413s count as errors", e.keyUsage(t, k.ID), 4, 3)
}

// TestRelayRefusesModelsOutsideAllowedModels: allowedModels refuses other
// models (403, nothing sent), filters GET models and hides the others'
// models/{id}; an empty list cannot be created.
func TestRelayRefusesModelsOutsideAllowedModels(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	allowed := []string{"gpt-4o-mini", "meta-llama/Llama-3-8b"}
	k, secret := e.issueKey(t, e.openAI.ID, map[string]any{"allowedModels": allowed})
	if fmt.Sprint(k.AllowedModels) != fmt.Sprint(allowed) {
		t.Fatalf("allowedModels %v, want %v", k.AllowedModels, allowed)
	}
	_, asecret := e.issueKey(t, e.anthropic.ID, map[string]any{"allowedModels": []string{"claude-3-5-haiku-latest"}})

	for _, body := range []any{
		fakeprovider.ChatBody("gpt-4o", false, false),
		fakeprovider.ChatBody("GPT-4O-MINI", false, false),
		fakeprovider.ChatBody("gpt-4o", true, true),
		map[string]any{"messages": []any{}},                // no model
		map[string]any{"model": 42},                        // not a string
		[]byte(`{"model":"gpt-4o-mini","model":"gpt-4o"}`), // one allowed, one not
		[]byte(`not json`),
	} {
		typ, _, code := wantRefusal(t, fmt.Sprintf("POST %v", body), e.call(t, http.MethodPost, "/relay/v1/chat/completions", body, authBearer(secret)...),
			http.StatusForbidden, false)
		if typ == "" || code == nil {
			t.Errorf("403 without a type or code")
		}
	}
	wantRefusal(t, "embeddings of another model", e.call(t, http.MethodPost, "/relay/v1/embeddings",
		map[string]any{"model": "text-embedding-3-small", "input": "hi"}, authBearer(secret)...), http.StatusForbidden, false)
	atyp, _, _ := wantRefusal(t, "Anthropic, another model", e.call(t, http.MethodPost, "/relay/v1/messages",
		fakeprovider.MessagesBody("claude-3-opus-latest", false), "x-api-key", asecret), http.StatusForbidden, true)
	if atyp != "permission_error" {
		t.Errorf("403: Anthropic error type %q, want permission_error", atyp)
	}
	wantRefusal(t, "models/{id} of another model", e.call(t, http.MethodGet, "/relay/v1/models/gpt-4o", nil, authBearer(secret)...), http.StatusNotFound, false)
	wantRefusal(t, "Anthropic models/{id} of another model", e.call(t, http.MethodGet, "/relay/v1/models/gpt-4o-mini", nil, "x-api-key", asecret),
		http.StatusNotFound, true)
	e.wantProviderGot(t, "models outside the list", 0)

	wantRelayOK(t, "an allowed model", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(secret)...))
	wantRelayOK(t, "an allowed Anthropic model", e.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), "x-api-key", asecret))
	wantRelayOK(t, "models/{id} of an allowed model with a slash", e.call(t, http.MethodGet, "/relay/v1/models/meta-llama/Llama-3-8b", nil, authBearer(secret)...))
	e.wantProviderGot(t, "allowed models", 3)

	listed := func(a relayAnswer) []string {
		t.Helper()
		wantRelayOK(t, "GET models", a)
		var l struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(a.body, &l); err != nil {
			t.Fatalf("GET models: %v: %s", err, a.body)
		}
		var ids []string
		for _, m := range l.Data {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if got := listed(e.call(t, http.MethodGet, "/relay/v1/models", nil, authBearer(secret)...)); fmt.Sprint(got) != fmt.Sprint(allowed) {
		t.Fatalf("GET models under allowedModels listed %v, want %v", got, allowed)
	}
	if got := listed(e.call(t, http.MethodGet, "/relay/v1/models", nil, "x-api-key", asecret)); fmt.Sprint(got) != "[claude-3-5-haiku-latest]" {
		t.Fatalf("Anthropic GET models under allowedModels listed %v", got)
	}
	_, free := e.issueKey(t, e.openAI.ID, map[string]any{"name": "any model"})
	if got := listed(e.call(t, http.MethodGet, "/relay/v1/models", nil, authBearer(free)...)); len(got) != len(fakeprovider.Models) {
		t.Fatalf("GET models without allowedModels listed %v, want all of %v", got, fakeprovider.Models)
	}
	wantRelayOK(t, "any model without allowedModels", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", false, false), authBearer(free)...))

	// An empty list is refused; null means any model.
	r := e.c.do(`mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret } }`,
		map[string]any{"in": map[string]any{"credentialId": e.openAI.ID, "name": "empty", "allowedModels": []string{}}})
	ge := r.wantCode(t, "createRelayKey", "BAD_USER_INPUT")
	if f, _ := ge.Extensions["field"].(string); !strings.Contains(f, "allowedModels") {
		t.Fatalf("BAD_USER_INPUT on field %q, want allowedModels", f)
	}
}

// TestRelayRefusesKeysNeedingReentry: a credential whose stored key cannot
// be opened is 409 and nothing is sent — whatever the reason, and never
// with another row's key.
func TestRelayRefusesKeysNeedingReentry(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	k, secret := e.issueKey(t, e.openAI.ID, nil)
	_, asecret := e.issueKey(t, e.anthropic.ID, nil)
	wantRelayOK(t, "before", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(secret)...))
	sent := len(e.fake.Requests())

	foreign, err := jwk.Import(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	openAIJWE := e.app.rawRow(t, e.openAI.ID).APIKeyJWE
	for _, c := range []struct{ what, jwe string }{
		{"garbage", "not-a-jwe"},
		{"a Fernet token", "gAAAAABl3x8k0Qb2ZqYw9vX1uJc7nT5rS3pO6mL4kI2hG0fE8dC6bA9zY7xW5vU3tS1rQ-pO_nM2lK0jI8hG6fE4dC2bA0zY8xW6vU4tS2rQ0pO8nM6lK4jI2hG0fE=="},
		{"an unknown kid", jwxSeal(t, foreign, "k-gone", e.openAI.ID)},
	} {
		e.app.setJWE(t, e.openAI.ID, c.jwe)
		if got := e.c.getCred(e.openAI.ID).KeyStatus; got != "NEEDS_REENTRY" {
			t.Fatalf("%s: keyStatus %s", c.what, got)
		}
		typ, _, code := wantRefusal(t, c.what, e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(secret)...),
			http.StatusConflict, false)
		if typ != "invalid_request_error" || code != "key_needs_reentry" {
			t.Errorf("%s: OpenAI error %s/%v", c.what, typ, code)
		}
		wantRefusal(t, c.what+", GET models", e.call(t, http.MethodGet, "/relay/v1/models", nil, authBearer(secret)...), http.StatusConflict, false)
	}
	// The OpenAI row's ciphertext copied into the Anthropic row does not
	// open there: 409, and the OpenAI key is not sent to anyone.
	e.app.setJWE(t, e.anthropic.ID, openAIJWE)
	wantRefusal(t, "another row's ciphertext", e.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), "x-api-key", asecret),
		http.StatusConflict, true)
	e.wantProviderGot(t, "keys needing re-entry", sent)
	wantKeyCounts(t, "409s count as errors", e.keyUsage(t, k.ID), 7, 6)

	// Entering the key again heals it.
	e.c.updateCred(e.openAI.ID, map[string]any{"apiKey": e.openAIKey})
	wantRelayOK(t, "after re-entry", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(secret)...))
}

// TestRelayRefusesOverRateLimit: requestsPerMinute is counted in the
// database (on both backends) and refuses with 429 and an honest
// Retry-After, counted as an error of the key; the provider's own 429
// passes through unchanged.
func TestRelayRefusesOverRateLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.AllowPrivateBaseURLs = true
		clock := useClock(cfg)
		e := newRelayEnv(t, cfg, fakeprovider.Options{})
		k, secret := e.issueKey(t, e.openAI.ID, map[string]any{"requestsPerMinute": 2})
		if k.RequestsPerMinute == nil || *k.RequestsPerMinute != 2 {
			t.Fatalf("requestsPerMinute %v", k.RequestsPerMinute)
		}
		chat := fakeprovider.ChatBody("gpt-4o-mini", false, false)
		wantRelayOK(t, "first", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...))
		wantRelayOK(t, "second", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...))
		a := e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...)
		typ, _, code := wantRefusal(t, "third", a, http.StatusTooManyRequests, false)
		if code != "rate_limit_exceeded" || typ == "" {
			t.Errorf("429: OpenAI error %s/%v", typ, code)
		}
		ra, err := strconv.Atoi(a.header.Get("Retry-After"))
		now := clock.Now().UTC().Truncate(time.Microsecond)
		next := time.Unix((now.Unix()/60+1)*60, 0)
		want := int((next.Sub(now) + time.Second - 1) / time.Second)
		if err != nil || ra < 1 || ra > 60 || ra != want {
			t.Fatalf("Retry-After %q, want %d whole seconds (1–60)", a.header.Get("Retry-After"), want)
		}
		e.wantProviderGot(t, "over the rate limit", 2)
		// Other keys of the credential have their own count.
		_, other := e.issueKey(t, e.openAI.ID, map[string]any{"name": "other", "requestsPerMinute": 1})
		wantRelayOK(t, "another key", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(other)...))
		wantRefusal(t, "another key, second", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(other)...), http.StatusTooManyRequests, false)
		// Past Retry-After, the key works again.
		clock.Advance(time.Duration(ra) * time.Second)
		wantRelayOK(t, "after Retry-After", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...))
		wantKeyCounts(t, "429 of the relay", e.keyUsage(t, k.ID), 4, 1)

		// Anthropic's shape for an Anthropic credential.
		_, asecret := e.issueKey(t, e.anthropic.ID, map[string]any{"requestsPerMinute": 1})
		msgs := fakeprovider.MessagesBody("claude-3-5-haiku-latest", false)
		wantRelayOK(t, "Anthropic first", e.call(t, http.MethodPost, "/relay/v1/messages", msgs, "x-api-key", asecret))
		a = e.call(t, http.MethodPost, "/relay/v1/messages", msgs, "x-api-key", asecret)
		if atyp, _, _ := wantRefusal(t, "Anthropic second", a, http.StatusTooManyRequests, true); atyp != "rate_limit_error" {
			t.Errorf("429: Anthropic error type %q, want rate_limit_error", atyp)
		}
		if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Anthropic 429: Retry-After %q", a.header.Get("Retry-After"))
		}

		// The provider's own 429 passes through unchanged, counted as an error.
		pk, psecret := e.issueKey(t, e.openAI.ID, map[string]any{"name": "provider limited"})
		sent := len(e.fake.Requests())
		a = e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("fail-429", false, false), authBearer(psecret)...)
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "7" || a.header.Get("X-Ratelimit-Remaining-Requests") != "0" {
			t.Fatalf("provider's 429: %d %v %s", a.status, a.header, a.body)
		}
		var pe struct {
			Error map[string]any `json:"error"`
		}
		if json.Unmarshal(a.body, &pe) != nil || pe.Error["message"] != "the fake answers 429" || pe.Error["type"] != "rate_limit_error" ||
			pe.Error["code"] != nil || len(pe.Error) != 3 {
			t.Fatalf("the provider's 429 was not passed through unchanged: %s", a.body)
		}
		_, a2 := e.issueKey(t, e.anthropic.ID, map[string]any{"name": "anthropic provider limited"})
		a = e.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("fail-429", false), "x-api-key", a2)
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "7" || a.header.Get("Anthropic-Ratelimit-Requests-Remaining") != "0" ||
			!strings.Contains(string(a.body), `"the fake answers 429"`) {
			t.Fatalf("provider's Anthropic 429: %d %v %s", a.status, a.header, a.body)
		}
		e.wantProviderGot(t, "the provider's 429s", sent+2)
		wantKeyCounts(t, "the provider's 429", e.keyUsage(t, pk.ID), 1, 1)
	})
}

// TestRelayRefusesUnsafeUpstreams: a redirect is not followed, the SSRF
// guard refuses metadata addresses whatever the switch and loopback
// without it (before any connection), and an unreachable provider is 502.
func TestRelayRefusesUnsafeUpstreams(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	k, secret := e.issueKey(t, e.openAI.ID, nil)
	_, asecret := e.issueKey(t, e.anthropic.ID, nil)

	a := e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("redirect", false, false), authBearer(secret)...)
	if _, _, code := wantRefusal(t, "redirect", a, http.StatusBadGateway, false); code != "bad_gateway" {
		t.Errorf("redirect: code %v", code)
	}
	if a.header.Get("Location") != "" {
		t.Fatal("the provider's Location reached the client")
	}
	wantRefusal(t, "Anthropic redirect", e.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("redirect", false), "x-api-key", asecret),
		http.StatusBadGateway, true)
	e.wantProviderGot(t, "redirects (sent once each, not followed)", 2)
	wantKeyCounts(t, "a redirect counts as an error", e.keyUsage(t, k.ID), 1, 1)

	// The metadata service: refused whatever CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS
	// says (it is on here). The guard refuses an IP literal before a socket
	// is opened (probe.Guard.dialContext), so nothing leaves this machine.
	meta := e.c.createCred(map[string]any{"name": "metadata", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": "http://169.254.169.254"})
	mk, msecret := e.issueKey(t, meta.ID, nil)
	start := time.Now()
	_, guardMsg, _ := wantRefusal(t, "metadata address", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(msecret)...),
		http.StatusBadGateway, false)
	if time.Since(start) > 2*time.Second {
		t.Fatal("the metadata address was not refused at once")
	}
	wantKeyCounts(t, "a guard refusal counts as an error", e.keyUsage(t, mk.ID), 1, 1)
	metaA := e.c.createCred(map[string]any{"name": "metadata anthropic", "backendType": "ANTHROPIC_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": "http://169.254.169.254:80/"})
	_, masecret := e.issueKey(t, metaA.ID, nil)
	wantRefusal(t, "Anthropic metadata address", e.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), "x-api-key", masecret),
		http.StatusBadGateway, true)

	// Unreachable: a closed port on loopback (allowed here).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	down := e.c.createCred(map[string]any{"name": "down", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": closed})
	_, dsecret := e.issueKey(t, down.ID, nil)
	_, downMsg, _ := wantRefusal(t, "unreachable", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(dsecret)...),
		http.StatusBadGateway, false)
	if downMsg == guardMsg || !strings.Contains(guardMsg, "refused") {
		t.Fatalf("a guard refusal (%q) does not say so apart from an unreachable provider (%q)", guardMsg, downMsg)
	}
	e.wantProviderGot(t, "refused upstreams", 2)

	// Loopback without CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS: refused, and the
	// fake (on loopback) sees not even a connection.
	strict := newRelayEnv(t, testConfig(t), fakeprovider.Options{})
	_, ssecret := strict.issueKey(t, strict.openAI.ID, nil)
	_, sasecret := strict.issueKey(t, strict.anthropic.ID, nil)
	_, loopMsg, _ := wantRefusal(t, "loopback", strict.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(ssecret)...),
		http.StatusBadGateway, false)
	wantRefusal(t, "loopback models", strict.call(t, http.MethodGet, "/relay/v1/models", nil, authBearer(ssecret)...), http.StatusBadGateway, false)
	wantRefusal(t, "Anthropic loopback", strict.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), "x-api-key", sasecret),
		http.StatusBadGateway, true)
	if loopMsg != guardMsg {
		t.Fatalf("loopback refusal %q is not the guard's %q", loopMsg, guardMsg)
	}
	strict.wantProviderGot(t, "loopback refused", 0)
	if n := strict.fake.Conns(); n != 0 {
		t.Fatalf("the guard let %d connections to loopback through", n)
	}
	// The owner's browser path goes through the same guard.
	wantRefusal(t, "loopback, browser path", strict.call(t, http.MethodPost, "/relay/credentials/"+strict.openAI.ID+"/v1/chat/completions",
		fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(strict.c.token)...), http.StatusBadGateway, false)
	if n := strict.fake.Conns(); n != 0 {
		t.Fatalf("the guard let %d connections to loopback through", n)
	}
}

// TestRelayRefusesSlowProviders: no response headers within
// CLOUDKEYS_RELAY_HEADER_TIMEOUT is 504, and the upstream call is ended.
func TestRelayRefusesSlowProviders(t *testing.T) {
	t.Parallel()
	cfg := relayConfig(t)
	cfg.RelayHeaderTimeout = 150 * time.Millisecond
	e := newRelayEnv(t, cfg, fakeprovider.Options{FirstByteDelay: 700 * time.Millisecond})
	k, secret := e.issueKey(t, e.openAI.ID, nil)
	_, asecret := e.issueKey(t, e.anthropic.ID, nil)

	start := time.Now()
	a := e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("slow-first-byte", false, false), authBearer(secret)...)
	took := time.Since(start)
	if _, _, code := wantRefusal(t, "slow provider", a, http.StatusGatewayTimeout, false); code != "gateway_timeout" {
		t.Errorf("504: code %v", code)
	}
	if took < 150*time.Millisecond || took > 600*time.Millisecond {
		t.Fatalf("the 504 came after %v, want about the header timeout (150ms)", took)
	}
	select {
	case <-e.fake.Last().Canceled:
	case <-time.After(time.Second):
		t.Fatal("the upstream call was not ended at the header timeout")
	}
	wantRefusal(t, "Anthropic slow provider", e.call(t, http.MethodPost, "/relay/v1/messages", fakeprovider.MessagesBody("slow-first-byte", false), "x-api-key", asecret),
		http.StatusGatewayTimeout, true)
	wantKeyCounts(t, "a 504 counts as an error", e.keyUsage(t, k.ID), 1, 1)
	// A prompt provider is unaffected.
	wantRelayOK(t, "prompt provider", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(secret)...))
}

// TestRelayRefusesOtherOwners: the browser path answers the owner's
// access token only (another user's: 404 as for a missing credential; none
// or a relay key: 401); relay keys are created and revoked by their
// credential's owner only.
func TestRelayRefusesOtherOwners(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	bob, _ := e.app.user(t, "bob@example.com")
	bobCred := bob.createCred(map[string]any{"name": "bob's", "backendType": "OPENAI_COMPATIBLE", "apiKey": apiKey(t), "baseUrl": e.fake.URL})
	_, secret := e.issueKey(t, e.openAI.ID, nil)
	chat := fakeprovider.ChatBody("gpt-4o-mini", false, false)
	owner := "/relay/credentials/" + e.openAI.ID + "/v1/chat/completions"
	t.Cleanup(func() { e.app.wantLogsWithout(t, e.c.token, bob.token) })

	a := e.call(t, http.MethodPost, owner, chat, authBearer(e.c.token)...)
	wantRelayOK(t, "the owner's browser path", a)
	if got := e.fake.Last().Header.Get("Authorization"); got != "Bearer "+e.openAIKey {
		t.Fatal("the browser path did not inject the stored key")
	}
	if strings.Contains(fmt.Sprint(e.fake.Last().Header), e.c.token) {
		t.Fatal("the owner's access token reached the provider")
	}
	wantRelayOK(t, "the owner's browser path, Anthropic", e.call(t, http.MethodPost, "/relay/credentials/"+e.anthropic.ID+"/v1/messages",
		fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), authBearer(e.c.token)...))
	wantKeyCounts(t, "the browser path counts against the credential", e.credUsage(t, e.openAI.ID), 1, 0)
	sent := len(e.fake.Requests())
	reqs, errs := relayUsageTotals(t, e.app)

	// Another user's token: 404, exactly as for a missing credential.
	_, other, _ := wantRefusal(t, "another user's token", e.call(t, http.MethodPost, owner, chat, authBearer(bob.token)...), http.StatusNotFound, false)
	_, missing, _ := wantRefusal(t, "a missing credential", e.call(t, http.MethodPost, "/relay/credentials/00000000-0000-4000-8000-000000000000/v1/chat/completions",
		chat, authBearer(e.c.token)...), http.StatusNotFound, false)
	if other != missing {
		t.Fatalf("another user's credential (%q) answers apart from a missing one (%q)", other, missing)
	}
	wantRefusal(t, "another user's token, Anthropic", e.call(t, http.MethodPost, "/relay/credentials/"+e.anthropic.ID+"/v1/messages",
		fakeprovider.MessagesBody("claude-3-5-haiku-latest", false), authBearer(bob.token)...), http.StatusNotFound, true)
	wantRefusal(t, "no token", e.call(t, http.MethodPost, owner, chat), http.StatusUnauthorized, false)
	wantRefusal(t, "a relay key on the browser path", e.call(t, http.MethodPost, owner, chat, authBearer(secret)...), http.StatusUnauthorized, false)
	wantRefusal(t, "a relay key in x-api-key on the browser path", e.call(t, http.MethodPost, owner, chat, "x-api-key", secret), http.StatusUnauthorized, true)
	wantRefusal(t, "a garbled token", e.call(t, http.MethodPost, owner, chat, authBearer(e.c.token+"x")...), http.StatusUnauthorized, false)
	e.wantProviderGot(t, "refused on the browser path", sent)
	if r, er := relayUsageTotals(t, e.app); r != reqs || er != errs {
		t.Fatalf("refusals before an owner was established counted: %d/%d → %d/%d", reqs, errs, r, er)
	}
	// The browser path's own endpoint rules.
	wantRefusal(t, "dot segment, browser path", e.call(t, http.MethodPost, "/relay/credentials/"+e.openAI.ID+"/v1/models/../chat/completions",
		chat, authBearer(e.c.token)...), http.StatusNotFound, false)
	e.wantProviderGot(t, "dot segment, browser path", sent)

	// Relay keys of another user's credential, or another user's keys:
	// NOT_FOUND, and nothing changes.
	create := `mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret } }`
	bob.do(create, map[string]any{"in": map[string]any{"credentialId": e.openAI.ID, "name": "stolen"}}).wantCode(t, "createRelayKey", "NOT_FOUND")
	e.c.do(create, map[string]any{"in": map[string]any{"credentialId": bobCred.ID, "name": "stolen"}}).wantCode(t, "createRelayKey", "NOT_FOUND")
	e.c.do(create, map[string]any{"in": map[string]any{"credentialId": "00000000-0000-4000-8000-000000000000", "name": "nowhere"}}).
		wantCode(t, "createRelayKey", "NOT_FOUND")
	k, _ := e.issueKey(t, e.openAI.ID, map[string]any{"name": "kept"})
	revoke := `mutation($id: ID!) { revokeRelayKey(id: $id) { id revokedAt } }`
	bob.do(revoke, map[string]any{"id": k.ID}).wantCode(t, "revokeRelayKey", "NOT_FOUND")
	bob.do(revoke, map[string]any{"id": "00000000-0000-4000-8000-000000000000"}).wantCode(t, "revokeRelayKey", "NOT_FOUND")
	var bobKeys []relayKeyJSON
	bob.must(`{ relayKeys { id } }`, nil, "relayKeys", &bobKeys)
	if len(bobKeys) != 0 {
		t.Fatalf("bob lists ada's relay keys: %+v", bobKeys)
	}
	wantRelayOK(t, "the key bob failed to revoke", e.call(t, http.MethodPost, "/relay/v1/chat/completions", chat, authBearer(secret)...))
	e.keyUsage(t, k.ID) // still listed, so still live
}

// TestRelayRefusesKeysOverCap: a credential holds at most RelayMaxKeysPerCredential
// live keys (FORBIDDEN beyond); revoking one frees a slot, and the cap is
// per credential.
func TestRelayRefusesKeysOverCap(t *testing.T) {
	t.Parallel()
	cfg := relayConfig(t)
	cfg.RelayMaxKeysPerCredential = 2
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	first, _ := e.issueKey(t, e.openAI.ID, map[string]any{"name": "one"})
	e.issueKey(t, e.openAI.ID, map[string]any{"name": "two"})
	create := `mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret } }`
	over := map[string]any{"in": map[string]any{"credentialId": e.openAI.ID, "name": "three"}}
	ge := e.c.do(create, over).wantCode(t, "createRelayKey", "FORBIDDEN")
	if !strings.Contains(ge.Message, "2") {
		t.Fatalf("the cap's refusal does not name the cap: %q", ge.Message)
	}
	e.issueKey(t, e.anthropic.ID, map[string]any{"name": "other credential"})
	e.c.must(`mutation($id: ID!) { revokeRelayKey(id: $id) { id } }`, map[string]any{"id": first.ID}, "revokeRelayKey", new(map[string]any))
	_, third := e.issueKey(t, e.openAI.ID, map[string]any{"name": "three"})
	wantRelayOK(t, "the key in the freed slot", e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), authBearer(third)...))
	e.c.do(create, map[string]any{"in": map[string]any{"credentialId": e.openAI.ID, "name": "four"}}).wantCode(t, "createRelayKey", "FORBIDDEN")
}

// TestRelayRefusalsCORS: a preflight from a configured origin allows the headers
// the SDKs send; from another origin, no CORS header; preflights never
// reach the provider.
func TestRelayRefusalsCORS(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	cfg := relayConfig(t)
	cfg.CORSOrigins = []string{origin}
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	_, secret := e.issueKey(t, e.openAI.ID, nil)
	sdkHeaders := []string{"authorization", "content-type", "x-stainless-os", "x-stainless-retry-count", "anthropic-version",
		"anthropic-beta", "anthropic-dangerous-direct-browser-access", "x-api-key", "openai-beta", "idempotency-key"}

	preflight := func(path, from string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, e.app.URL+path, nil)
		req.Header.Set("Origin", from)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		// As browsers send it (Fetch): lower case, sorted, comma-separated.
		req.Header.Set("Access-Control-Request-Headers", strings.Join(slices.Sorted(slices.Values(sdkHeaders)), ","))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, path := range []string{"/relay/v1/chat/completions", "/relay/v1/messages", "/relay/credentials/" + e.openAI.ID + "/v1/chat/completions"} {
		res := preflight(path, origin)
		if res.StatusCode/100 != 2 || res.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("%s: preflight from %s: %d %v", path, origin, res.StatusCode, res.Header)
		}
		allowed := strings.ToLower(strings.Join(res.Header.Values("Access-Control-Allow-Headers"), ","))
		for _, h := range sdkHeaders {
			if !strings.Contains(","+strings.ReplaceAll(allowed, " ", "")+",", ","+h+",") {
				t.Errorf("%s: preflight does not allow %s: %q", path, h, allowed)
			}
		}
		if m := res.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, http.MethodPost) {
			t.Errorf("%s: preflight does not allow POST: %q", path, m)
		}
		if res.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: credentials allowed", path)
		}
		res = preflight(path, "https://evil.example")
		if res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Access-Control-Allow-Headers") != "" {
			t.Fatalf("%s: preflight from another origin answered %v", path, res.Header)
		}
	}
	a := e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), append(authBearer(secret), "Origin", origin)...)
	wantRelayOK(t, "call from the allowed origin", a)
	if a.header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("call from the allowed origin without Access-Control-Allow-Origin: %v", a.header)
	}
	a = e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), append(authBearer(secret), "Origin", "https://evil.example")...)
	if a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("call from another origin answered with Access-Control-Allow-Origin: %v", a.header)
	}
	// A refusal reaches the allowed page too, so that its SDK can read it.
	a = e.call(t, http.MethodPost, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), "Origin", origin)
	wantRefusal(t, "no key, from the allowed origin", a, http.StatusUnauthorized, false)
	if a.header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("a refusal to the allowed origin without Access-Control-Allow-Origin: %v", a.header)
	}
	e.wantProviderGot(t, "preflights and two calls", 2)
}
