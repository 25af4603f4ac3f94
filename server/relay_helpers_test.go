package server_test

// Helpers of the relay tests: a fake provider, credentials pointing at it,
// relay keys, and raw HTTP calls as an SDK would make them.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"cloudkeys/config"
	"cloudkeys/relay/fakeprovider"
)

// relayEnv is one app with a user holding an OpenAI-protocol and an
// Anthropic-protocol credential, both pointing at one fake provider.
type relayEnv struct {
	app       *testApp
	fake      *fakeprovider.Provider
	c         *client
	user      userJSON
	openAI    credJSON
	anthropic credJSON
	// openAIKey and anthropicKey are the stored provider keys.
	openAIKey, anthropicKey string
}

// relayConfig is testConfig letting the relay reach the fake on loopback.
func relayConfig(t testing.TB) *config.Config {
	cfg := testConfig(t)
	cfg.AllowPrivateBaseURLs = true
	return cfg
}

func newRelayEnv(t testing.TB, cfg *config.Config, fo fakeprovider.Options) *relayEnv {
	t.Helper()
	if cfg == nil {
		cfg = relayConfig(t)
	}
	e := &relayEnv{fake: fakeprovider.Start(t, fo)}
	e.app = credApp(t, cfg)
	e.c, e.user = e.app.user(t, "ada@example.com")
	e.openAIKey, e.anthropicKey = apiKey(t), "sk-ant-"+keyMarker+"-anthropic-key"
	e.openAI = e.c.createCred(map[string]any{"name": "openai", "backendType": "OPENAI_COMPATIBLE", "apiKey": e.openAIKey, "baseUrl": e.fake.URL})
	e.anthropic = e.c.createCred(map[string]any{"name": "anthropic", "backendType": "ANTHROPIC_COMPATIBLE", "apiKey": e.anthropicKey, "baseUrl": e.fake.URL})
	t.Cleanup(func() { e.app.wantLogsWithout(t, e.openAIKey, e.anthropicKey) })
	return e
}

type relayKeyJSON struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	SecretHint        string   `json:"secretHint"`
	ExpiresAt         *string  `json:"expiresAt"`
	RevokedAt         *string  `json:"revokedAt"`
	AllowedModels     []string `json:"allowedModels"`
	RequestsPerMinute *int     `json:"requestsPerMinute"`
	Credential        struct {
		ID string `json:"id"`
	} `json:"credential"`
	Usage usageJSON `json:"usage"`
}

type usageJSON struct {
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	InputTokens  int64   `json:"inputTokens"`
	OutputTokens int64   `json:"outputTokens"`
	LastUsedAt   *string `json:"lastUsedAt"`
}

const relayKeyFields = `id name secretHint expiresAt revokedAt allowedModels requestsPerMinute credential { id }
	usage { requests errors inputTokens outputTokens lastUsedAt }`

// createRelayKey makes a relay key with input (credentialId and name
// filled in when missing) and returns it with its secret.
func (c *client) createRelayKey(credID string, input map[string]any) (relayKeyJSON, string) {
	c.t.Helper()
	if input == nil {
		input = map[string]any{}
	}
	input["credentialId"] = credID
	if input["name"] == nil {
		input["name"] = "app"
	}
	var out struct {
		RelayKey relayKeyJSON `json:"relayKey"`
		Secret   string       `json:"secret"`
	}
	c.must(`mutation($in: CreateRelayKeyInput!) { createRelayKey(input: $in) { secret relayKey { `+relayKeyFields+` } } }`,
		map[string]any{"in": input}, "createRelayKey", &out)
	return out.RelayKey, out.Secret
}

// relayKeyUsage reads a relay key's usage (after the meter flushed).
func (e *relayEnv) keyUsage(t testing.TB, keyID string) usageJSON {
	t.Helper()
	if err := e.app.Meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var keys []relayKeyJSON
	e.c.must(`{ relayKeys { `+relayKeyFields+` } }`, nil, "relayKeys", &keys)
	for _, k := range keys {
		if k.ID == keyID {
			return k.Usage
		}
	}
	t.Fatalf("relay key %s is not listed", keyID)
	return usageJSON{}
}

// credUsage reads a credential's usage (after the meter flushed).
func (e *relayEnv) credUsage(t testing.TB, credID string) usageJSON {
	t.Helper()
	if err := e.app.Meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var cr struct {
		Usage usageJSON `json:"usage"`
	}
	e.c.must(`query($id: ID!) { cloudCredential(id: $id) { usage { requests errors inputTokens outputTokens lastUsedAt } } }`,
		map[string]any{"id": credID}, "cloudCredential", &cr)
	return cr.Usage
}

// relayAnswer is a relayed call's answer, read whole.
type relayAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a relayAnswer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return m
}

// errorShape returns the error type and message of an answer in either
// provider's shape.
func (a relayAnswer) errorShape(t testing.TB, anthropic bool) (typ, msg string) {
	t.Helper()
	m := a.json(t)
	e, _ := m["error"].(map[string]any)
	if e == nil || anthropic && m["type"] != "error" {
		t.Fatalf("not in the %s error shape: %s", map[bool]string{true: "Anthropic", false: "OpenAI"}[anthropic], a.body)
	}
	typ, _ = e["type"].(string)
	msg, _ = e["message"].(string)
	return typ, msg
}

// relayCall sends one request to the app's relay; header is name, value, ….
func (e *relayEnv) call(t testing.TB, method, path string, body any, header ...string) relayAnswer {
	t.Helper()
	res := e.send(t, context.Background(), method, path, body, header...)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return relayAnswer{status: res.StatusCode, header: res.Header, body: b}
}

func (e *relayEnv) send(t testing.TB, ctx context.Context, method, path string, body any, header ...string) *http.Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.app.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readEvents reads a stream's data lines, noting when each arrived.
func readEvents(t testing.TB, res *http.Response) (data []string, at []time.Time) {
	t.Helper()
	data, at, _ = fakeprovider.ReadData(res.Body)
	return data, at
}
