package server_test

// Helpers of the cloud-credential tests.

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"cloudkeys/config"
)

// keyMarker is part of every plaintext API key the credential tests use,
// so that a leak is found wherever it lands: every app started by
// credApp fails its test if its log ever contains the marker.
const keyMarker = "CKTESTMARK"

// apiKey returns a fresh plaintext key carrying the marker; its first 3
// and last 4 characters (the hint) do not contain the marker.
func apiKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	rand.Read(b)
	return "sk-" + keyMarker + "-" + hex.EncodeToString(b)
}

// credApp starts an app (testConfig when cfg is nil) and checks, when the
// test ends, that no plaintext key reached its log.
func credApp(t testing.TB, cfg *config.Config) *testApp {
	t.Helper()
	app := startApp(t, cfg)
	t.Cleanup(func() {
		if strings.Contains(app.Logs(), keyMarker) {
			t.Errorf("a plaintext API key reached the server log")
		}
	})
	return app
}

// user registers an account, approves it directly in the database (the
// admin mutation has its own tests) and signs it in.
func (a *testApp) user(t testing.TB, email string) (*client, userJSON) {
	t.Helper()
	c := a.client(t)
	u := c.register(email, "password-"+email)
	if err := a.DB.Exec("UPDATE users SET status = 'APPROVED' WHERE id = ?", u.ID).Error; err != nil {
		t.Fatal(err)
	}
	p := c.login(email, "password-"+email)
	return c.withToken(p.AccessToken), p.User
}

const credFields = `id name backendType apiType baseUrl apiKeyHint keyStatus keyStatusMessage createdAt updatedAt`

type credJSON struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	BackendType      string    `json:"backendType"`
	APIType          string    `json:"apiType"`
	BaseURL          optString `json:"baseUrl"`
	APIKeyHint       string    `json:"apiKeyHint"`
	KeyStatus        string    `json:"keyStatus"`
	KeyStatusMessage *string   `json:"keyStatusMessage"`
	CreatedAt        string    `json:"createdAt"`
	UpdatedAt        string    `json:"updatedAt"`
}

const (
	createMutation = `mutation($input: CreateCloudCredentialInput!) { createCloudCredential(input: $input) { ` + credFields + ` } }`
	updateMutation = `mutation($id: ID!, $input: UpdateCloudCredentialInput!) { updateCloudCredential(id: $id, input: $input) { ` + credFields + ` } }`
	deleteMutation = `mutation($id: ID!) { deleteCloudCredential(id: $id) }`
	testMutation   = `mutation($id: ID!) { testCloudCredential(id: $id) { ok httpStatus message } }`
	getQuery       = `query($id: ID!) { cloudCredential(id: $id) { ` + credFields + ` } }`
	listQuery      = `{ cloudCredentials { ` + credFields + ` } }`
)

func (c *client) createCred(input map[string]any) credJSON {
	c.t.Helper()
	var out credJSON
	c.must(createMutation, map[string]any{"input": input}, "createCloudCredential", &out)
	return out
}

func (c *client) updateCred(id string, input map[string]any) credJSON {
	c.t.Helper()
	var out credJSON
	c.must(updateMutation, map[string]any{"id": id, "input": input}, "updateCloudCredential", &out)
	return out
}

func (c *client) getCred(id string) credJSON {
	c.t.Helper()
	var out credJSON
	c.must(getQuery, map[string]any{"id": id}, "cloudCredential", &out)
	return out
}

func (c *client) listCreds() []credJSON {
	c.t.Helper()
	var out []credJSON
	c.must(listQuery, nil, "cloudCredentials", &out)
	return out
}

type probeJSON struct {
	OK         bool   `json:"ok"`
	HTTPStatus *int   `json:"httpStatus"`
	Message    string `json:"message"`
}

func (c *client) testCred(id string) probeJSON {
	c.t.Helper()
	var out probeJSON
	c.must(testMutation, map[string]any{"id": id}, "testCloudCredential", &out)
	return out
}

// hintOf is the hint the API should show for a key of 16 characters or more.
func hintOf(key string) string { return key[:3] + "…" + key[len(key)-4:] }

// rawRow is a cloud_credentials row read with plain SQL.
type rawRow struct {
	ID, UserID, Name, BackendType, APIType string
	BaseURL                                sql.NullString
	APIKeyJWE, KeyID                       string
	CreatedAt, UpdatedAt                   string
}

func (a *testApp) rawRow(t testing.TB, id string) rawRow {
	t.Helper()
	var r rawRow
	err := a.DB.Raw(`SELECT CAST(id AS TEXT), CAST(user_id AS TEXT), name, backend_type, api_type, base_url,
		api_key_jwe, key_id, CAST(created_at AS TEXT), CAST(updated_at AS TEXT) FROM cloud_credentials WHERE id = ?`, id).
		Row().Scan(&r.ID, &r.UserID, &r.Name, &r.BackendType, &r.APIType, &r.BaseURL, &r.APIKeyJWE, &r.KeyID, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		t.Fatalf("read row %s: %v", id, err)
	}
	return r
}

func (a *testApp) setJWE(t testing.TB, id, jwe string) {
	t.Helper()
	if err := a.DB.Exec("UPDATE cloud_credentials SET api_key_jwe = ? WHERE id = ?", jwe, id).Error; err != nil {
		t.Fatal(err)
	}
}

func (a *testApp) countCreds(t testing.TB, userID string) int64 {
	t.Helper()
	var n int64
	if err := a.DB.Raw("SELECT COUNT(*) FROM cloud_credentials WHERE user_id = ?", userID).Row().Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// jweHeader decodes the protected header of a compact JWE.
func jweHeader(t testing.TB, jwe string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(jwe, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("header is not base64url: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	return h
}

// containsPartOf reports whether s contains any 6-character piece of key
// (random bytes match one by chance with negligible probability).
func containsPartOf(s, key string) (string, bool) {
	for i := 0; i+6 <= len(key); i++ {
		if strings.Contains(s, key[i:i+6]) {
			return key[i : i+6], true
		}
	}
	return "", false
}

func openAIInput(name, key string) map[string]any {
	return map[string]any{"name": name, "backendType": "OPENAI", "apiKey": key}
}

// optString is a nullable JSON string that compares with ==.
type optString struct {
	Set bool
	V   string
}

func (o *optString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = optString{}
		return nil
	}
	o.Set = true
	return json.Unmarshal(b, &o.V)
}

// deref shows an optString as the tests compare it: quoted, or <nil>.
func deref(o optString) string {
	if !o.Set {
		return "<nil>"
	}
	return fmt.Sprintf("%q", o.V)
}
