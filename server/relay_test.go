package server_test

// The relay's main path, end to end: a relay key created over GraphQL, a
// call as an SDK makes it, the fake provider recording what arrived, the
// usage read back over GraphQL.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"cloudkeys/config"
	"cloudkeys/relay/fakeprovider"
)

// allowedUpstream are the request headers the provider may see: the
// allow-list of SPEC §8, the injected auth, and what Go's transport adds.
var allowedUpstream = []string{"Content-Type", "Accept", "Openai-Beta", "Anthropic-Version", "Anthropic-Beta",
	"Idempotency-Key", "Authorization", "X-Api-Key", "Content-Length", "Accept-Encoding", "User-Agent"}

// hostileHeaders are what a client sends that must never reach the
// provider (name, value pairs), beside its own relay key.
var hostileHeaders = []string{
	"Cookie", "session=browser-cookie",
	"X-Forwarded-For", "203.0.113.9",
	"X-Forwarded-Host", "evil.example",
	"X-Custom-Tracking", "track-me",
	"OpenAI-Organization", "org-client",
}

func wantUpstreamHeaders(t *testing.T, got http.Header) {
	t.Helper()
	for name := range got {
		if !slices.Contains(allowedUpstream, http.CanonicalHeaderKey(name)) {
			t.Errorf("header %s reached the provider", name)
		}
	}
}

// wantResponseHeaders checks the answer's headers came through the
// response allow-list: the provider's request ID and rate-limit headers
// kept, its cookies and debug headers dropped.
func wantResponseHeaders(t *testing.T, h http.Header, anthropic bool) {
	t.Helper()
	if h.Get("Set-Cookie") != "" || h.Get("X-Internal-Debug") != "" {
		t.Errorf("a provider header outside the allow-list reached the client: %v", h)
	}
	id, limit := "X-Request-Id", "X-Ratelimit-Remaining-Requests"
	if anthropic {
		id, limit = "Request-Id", "Anthropic-Ratelimit-Requests-Remaining"
	}
	if h.Get(id) == "" || h.Get(limit) == "" {
		t.Errorf("the provider's %s and %s did not come through: %v", id, limit, h)
	}
}

func TestRelayOpenAIChat(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		cfg.AllowPrivateBaseURLs = true
		e := newRelayEnv(t, cfg, fakeprovider.Options{})
		key, secret := e.c.createRelayKey(e.openAI.ID, nil)
		defer e.app.wantLogsWithout(t, secret)
		if key.SecretHint != secret[:8]+"…" || !strings.HasPrefix(secret, "ckr_") || len(secret) != 47 {
			t.Fatalf("secret %.8s… (%d chars), hint %q", secret, len(secret), key.SecretHint)
		}

		body := fakeprovider.ChatBody("gpt-4o-mini", false, false)
		headers := append([]string{"Authorization", "Bearer " + secret, "OpenAI-Beta", "assistants=v2",
			"Idempotency-Key", "idem-1"}, hostileHeaders...)
		a := e.call(t, "POST", "/relay/v1/chat/completions", body, headers...)
		if a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		var ans struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		json.Unmarshal(a.body, &ans)
		if len(ans.Choices) != 1 || ans.Choices[0].Message.Content != fakeprovider.Text {
			t.Fatalf("answer %s", a.body)
		}
		wantResponseHeaders(t, a.header, false)

		got := e.fake.Last()
		if got.Method != "POST" || got.Path != "/v1/chat/completions" {
			t.Fatalf("provider got %s %s", got.Method, got.Path)
		}
		if h := got.Header.Get("Authorization"); h != "Bearer "+e.openAIKey {
			t.Errorf("provider's Authorization is not the stored key (%d chars)", len(h))
		}
		if got.Header.Get("OpenAI-Beta") != "assistants=v2" || got.Header.Get("Idempotency-Key") != "idem-1" {
			t.Errorf("allow-listed headers lost: %v", got.Header)
		}
		wantUpstreamHeaders(t, got.Header)
		var sent map[string]any
		if err := json.Unmarshal(got.Body, &sent); err != nil || sent["model"] != "gpt-4o-mini" {
			t.Errorf("body changed on the way: %s", got.Body)
		}

		want := usageJSON{Requests: 1, InputTokens: fakeprovider.InputTokens, OutputTokens: fakeprovider.OutputTokens}
		if u := e.keyUsage(t, key.ID); !sameCounts(u, want) || u.LastUsedAt == nil {
			t.Errorf("key usage %+v, want %+v and lastUsedAt", u, want)
		}
		if u := e.credUsage(t, e.openAI.ID); !sameCounts(u, want) {
			t.Errorf("credential usage %+v, want %+v", u, want)
		}
		logs := e.app.Logs()
		if !strings.Contains(logs, "relayed call") || !strings.Contains(logs, key.ID) ||
			!strings.Contains(logs, "chat/completions") || !strings.Contains(logs, "output_tokens=7") {
			t.Errorf("no log line with the relay key, endpoint and tokens:\n%s", logs)
		}
		if strings.Contains(logs, fakeprovider.Text) {
			t.Error("the provider's answer reached the log")
		}
	})
}

func sameCounts(a, b usageJSON) bool {
	return a.Requests == b.Requests && a.Errors == b.Errors && a.InputTokens == b.InputTokens && a.OutputTokens == b.OutputTokens
}

func TestRelayAnthropicMessages(t *testing.T) {
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	key, secret := e.c.createRelayKey(e.anthropic.ID, nil)
	defer e.app.wantLogsWithout(t, secret)

	// Anthropic SDKs 0.x send the key in x-api-key; the default version is added.
	a := e.call(t, "POST", "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false),
		append([]string{"x-api-key", secret, "anthropic-beta", "tools-2024-04-04"}, hostileHeaders...)...)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if m := a.json(t); m["type"] != "message" || !strings.Contains(string(a.body), fakeprovider.Text) {
		t.Fatalf("answer %s", a.body)
	}
	wantResponseHeaders(t, a.header, true)
	got := e.fake.Last()
	if got.Header.Get("X-Api-Key") != e.anthropicKey {
		t.Error("provider's x-api-key is not the stored key")
	}
	if got.Header.Get("Authorization") != "" {
		t.Error("an Authorization header reached an Anthropic provider")
	}
	if v := got.Header.Get("Anthropic-Version"); v != "2023-06-01" {
		t.Errorf("anthropic-version %q, want the default 2023-06-01", v)
	}
	if got.Header.Get("Anthropic-Beta") != "tools-2024-04-04" {
		t.Error("anthropic-beta lost")
	}
	wantUpstreamHeaders(t, got.Header)

	// SDKs 1.x send Bearer and their own version, which is kept.
	a = e.call(t, "POST", "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", false),
		"Authorization", "Bearer "+secret, "anthropic-version", "2026-10-21")
	if a.status != 200 {
		t.Fatalf("Bearer form: status %d: %s", a.status, a.body)
	}
	got = e.fake.Last()
	if v := got.Header.Get("Anthropic-Version"); v != "2026-10-21" {
		t.Errorf("client's anthropic-version replaced by %q", v)
	}
	if got.Header.Get("Authorization") != "" || got.Header.Get("X-Api-Key") != e.anthropicKey {
		t.Error("Bearer form: wrong provider auth")
	}

	want := usageJSON{Requests: 2, InputTokens: 2 * fakeprovider.AnthropicInput, OutputTokens: 2 * fakeprovider.OutputTokens}
	if u := e.keyUsage(t, key.ID); !sameCounts(u, want) {
		t.Errorf("usage %+v, want %+v (input counts cache tokens)", u, want)
	}
}

func TestRelayStreams(t *testing.T) {
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	oKey, oSecret := e.c.createRelayKey(e.openAI.ID, map[string]any{"name": "openai-app"})
	aKey, aSecret := e.c.createRelayKey(e.anthropic.ID, map[string]any{"name": "anthropic-app"})
	defer e.app.wantLogsWithout(t, oSecret, aSecret)

	stream := func(t *testing.T, path string, body any, secret string) []string {
		t.Helper()
		// The SDKs send Accept: application/json even for streams.
		res := e.send(t, context.Background(), "POST", path, body, "Authorization", "Bearer "+secret, "Accept", "application/json")
		defer res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		data, _ := readEvents(t, res)
		if got := fakeprovider.StreamedText(data); got != fakeprovider.Text {
			t.Fatalf("streamed text %q, want %q", got, fakeprovider.Text)
		}
		return data
	}

	t.Run("OpenAI with include_usage", func(t *testing.T) {
		data := stream(t, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, true), oSecret)
		if data[len(data)-1] != "[DONE]" {
			t.Errorf("stream ended with %q, not [DONE]", data[len(data)-1])
		}
		want := usageJSON{Requests: 1, InputTokens: fakeprovider.InputTokens, OutputTokens: fakeprovider.OutputTokens}
		if u := e.keyUsage(t, oKey.ID); !sameCounts(u, want) {
			t.Errorf("usage %+v, want %+v", u, want)
		}
	})
	t.Run("OpenAI without include_usage counts the request only", func(t *testing.T) {
		stream(t, "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, false), oSecret)
		var sent map[string]any
		json.Unmarshal(e.fake.Last().Body, &sent)
		if _, ok := sent["stream_options"]; ok {
			t.Error("the relay changed the request: stream_options added")
		}
		want := usageJSON{Requests: 2, InputTokens: fakeprovider.InputTokens, OutputTokens: fakeprovider.OutputTokens}
		if u := e.keyUsage(t, oKey.ID); !sameCounts(u, want) {
			t.Errorf("usage %+v, want %+v", u, want)
		}
	})
	t.Run("Anthropic counts message_delta's cumulative output once", func(t *testing.T) {
		stream(t, "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", true), aSecret)
		want := usageJSON{Requests: 1, InputTokens: fakeprovider.AnthropicInput, OutputTokens: fakeprovider.OutputTokens}
		if u := e.keyUsage(t, aKey.ID); !sameCounts(u, want) {
			t.Errorf("usage %+v, want %+v", u, want)
		}
	})
	t.Run("OpenAI responses API, input_tokens and output_tokens", func(t *testing.T) {
		body := map[string]any{"model": "gpt-4o", "input": "hi", "stream": true}
		res := e.send(t, context.Background(), "POST", "/relay/v1/responses", body, "Authorization", "Bearer "+oSecret)
		data, _ := readEvents(t, res)
		res.Body.Close()
		if res.StatusCode != 200 || len(data) == 0 {
			t.Fatalf("status %d, %d events", res.StatusCode, len(data))
		}
		want := usageJSON{Requests: 3, InputTokens: 2 * fakeprovider.InputTokens, OutputTokens: 2 * fakeprovider.OutputTokens}
		if u := e.keyUsage(t, oKey.ID); !sameCounts(u, want) {
			t.Errorf("usage %+v, want %+v", u, want)
		}
	})
	// The credential's totals are its keys' sums.
	want := usageJSON{Requests: 3, InputTokens: 2 * fakeprovider.InputTokens, OutputTokens: 2 * fakeprovider.OutputTokens}
	if u := e.credUsage(t, e.openAI.ID); !sameCounts(u, want) {
		t.Errorf("credential usage %+v, want %+v", u, want)
	}
}

// The upstream URL keeps the base URL's path and query and adds the
// client's; GET models and models/{id} (an ID with a slash) pass through.
func TestRelayURLsAndModels(t *testing.T) {
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	cred := e.c.createCred(map[string]any{"name": "azure-like", "backendType": "OPENAI_COMPATIBLE",
		"apiKey": apiKey(t), "baseUrl": e.fake.URL + "/?api-version=2024-06-01"})
	_, secret := e.c.createRelayKey(cred.ID, nil)

	a := e.call(t, "GET", "/relay/v1/models?limit=5", nil, "Authorization", "Bearer "+secret)
	if a.status != 200 {
		t.Fatalf("models: %d %s", a.status, a.body)
	}
	got := e.fake.Last()
	if got.Path != "/v1/models" || got.Query != "api-version=2024-06-01&limit=5" {
		t.Errorf("provider got %s?%s", got.Path, got.Query)
	}
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	json.Unmarshal(a.body, &list)
	if len(list.Data) != len(fakeprovider.Models) {
		t.Errorf("models list %s", a.body)
	}

	a = e.call(t, "GET", "/relay/v1/models/meta-llama/Llama-3-8b", nil, "Authorization", "Bearer "+secret)
	if a.status != 200 || e.fake.Last().Path != "/v1/models/meta-llama/Llama-3-8b" {
		t.Errorf("model with a slash: %d %s → %s", a.status, a.body, e.fake.Last().Path)
	}
}

// testCloudCredential lists the models the provider answered with.
func TestRelayTestCredentialModels(t *testing.T) {
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	var res struct {
		OK     bool     `json:"ok"`
		Models []string `json:"models"`
	}
	e.c.must(`mutation($id: ID!) { testCloudCredential(id: $id) { ok models } }`,
		map[string]any{"id": e.openAI.ID}, "testCloudCredential", &res)
	if !res.OK || !slices.Equal(res.Models, fakeprovider.Models) {
		t.Errorf("test result %+v, want models %v", res, fakeprovider.Models)
	}
}

// A long stream is in use all along: each flush while it runs stamps its
// key's lastUsedAt (at most a flush interval stale), before the call is
// counted at its end.
func TestRelayLastUsedDuringAStream(t *testing.T) {
	e := newRelayEnv(t, nil, fakeprovider.Options{EventDelay: 300 * time.Millisecond})
	key, secret := e.c.createRelayKey(e.openAI.ID, nil)
	res := e.send(t, context.Background(), "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, true), "Authorization", "Bearer "+secret)
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil { // the stream has begun
		t.Fatal(err)
	}
	u := e.keyUsage(t, key.ID) // flushes the meter mid-stream
	if u.LastUsedAt == nil || u.Requests != 0 {
		t.Fatalf("mid-stream usage %+v: want lastUsedAt set and the request not counted yet", u)
	}
	io.Copy(io.Discard, br)
	res.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // bounded: the call is counted as its handler returns
		if u = e.keyUsage(t, key.ID); u.Requests == 1 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after the stream: %+v, want 1 request", u)
}

// A key that exists but may no longer be used is refused in its
// credential's error shape, whatever header carried it, and the refusal
// counts as an error of that key's credential; an unknown key counts
// against nobody.
func TestRelayDeadKeysCountAgainstTheirCredential(t *testing.T) {
	e := newRelayEnv(t, nil, fakeprovider.Options{})
	key, secret := e.c.createRelayKey(e.openAI.ID, nil)
	e.c.must(`mutation($id: ID!) { revokeRelayKey(id: $id) { id } }`, map[string]any{"id": key.ID}, "revokeRelayKey", new(map[string]any))
	a := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), "x-api-key", secret)
	if a.status != 401 {
		t.Fatalf("status %d", a.status)
	}
	a.errorShape(t, false) // OpenAI's, although x-api-key is Anthropic's header
	e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), "Authorization", "Bearer ckr_"+strings.Repeat("A", 43))
	if u := e.credUsage(t, e.openAI.ID); u.Requests != 1 || u.Errors != 1 {
		t.Errorf("credential usage %+v: want the revoked key's refusal only (1 request, 1 error)", u)
	}
	e.app.wantLogsWithout(t, secret)
}

// relayKeys lists live keys only — revoked and expired ones are gone from
// the list, their usage stays in the credential's totals — and the inputs
// of createRelayKey and usageByDay are checked.
func TestRelayKeysListingAndInputs(t *testing.T) {
	cfg := relayConfig(t)
	clock := useClock(cfg)
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	live, _ := e.c.createRelayKey(e.openAI.ID, map[string]any{"name": "live"})
	revoked, rSecret := e.c.createRelayKey(e.openAI.ID, map[string]any{"name": "revoked"})
	expiring, _ := e.c.createRelayKey(e.openAI.ID, map[string]any{"name": "expiring",
		"expiresAt": clock.Now().Add(time.Minute).Format(time.RFC3339)})
	if a := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), "Authorization", "Bearer "+rSecret); a.status != 200 {
		t.Fatalf("status %d", a.status)
	}
	e.c.must(`mutation($id: ID!) { revokeRelayKey(id: $id) { id } }`, map[string]any{"id": revoked.ID}, "revokeRelayKey", new(map[string]any))
	clock.Advance(2 * time.Minute)

	var keys []relayKeyJSON
	e.c.must(`{ relayKeys { id } }`, nil, "relayKeys", &keys)
	var cred struct {
		RelayKeys []relayKeyJSON `json:"relayKeys"`
	}
	e.c.must(`query($id: ID!) { cloudCredential(id: $id) { relayKeys { id } } }`, map[string]any{"id": e.openAI.ID}, "cloudCredential", &cred)
	for _, list := range [][]relayKeyJSON{keys, cred.RelayKeys} {
		if len(list) != 1 || list[0].ID != live.ID {
			t.Errorf("listed %+v, want only the live key %s (not %s revoked, %s expired)", list, live.ID, revoked.ID, expiring.ID)
		}
	}
	if u := e.credUsage(t, e.openAI.ID); u.Requests != 1 || u.InputTokens != fakeprovider.InputTokens {
		t.Errorf("credential usage %+v: the revoked key's call must stay in the totals", u)
	}

	bad := []struct {
		input map[string]any
		field string
	}{
		{map[string]any{"allowedModels": []string{}}, "input.allowedModels"},
		{map[string]any{"requestsPerMinute": 0}, "input.requestsPerMinute"},
		{map[string]any{"expiresAt": clock.Now().Add(-time.Second).Format(time.RFC3339)}, "input.expiresAt"},
		{map[string]any{"name": "  "}, "input.name"},
	}
	for _, b := range bad {
		in := map[string]any{"credentialId": e.openAI.ID, "name": "x"}
		for k, v := range b.input {
			in[k] = v
		}
		r := e.c.do(`mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret } }`, map[string]any{"in": in})
		if got := r.wantCode(t, "createRelayKey", "BAD_USER_INPUT"); got.Extensions["field"] != b.field {
			t.Errorf("%v: field %v, want %s", b.input, got.Extensions["field"], b.field)
		}
	}
	for _, days := range []int{0, 367} {
		r := e.c.do(`query($id: ID!, $d: Int) { cloudCredential(id: $id) { usageByDay(days: $d) { day } } }`,
			map[string]any{"id": e.openAI.ID, "d": days})
		if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
			t.Errorf("usageByDay(days: %d): %s", days, r)
		}
	}
	var year struct {
		UsageByDay []struct{ Day string } `json:"usageByDay"`
	}
	e.c.must(`query($id: ID!) { cloudCredential(id: $id) { usageByDay(days: 366) { day } } }`, map[string]any{"id": e.openAI.ID}, "cloudCredential", &year)
	if len(year.UsageByDay) != 366 || year.UsageByDay[0].Day != clock.Now().UTC().Format("2006-01-02") {
		t.Errorf("usageByDay(days: 366): %d days, first %v", len(year.UsageByDay), year.UsageByDay[:1])
	}
}
