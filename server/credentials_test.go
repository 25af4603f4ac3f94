package server_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"cloudkeys/config"
)

func TestCredentialRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := credApp(t, cfg)
		c, me := app.user(t, "ada@example.com")
		key := apiKey(t)
		created := c.createCred(openAIInput("  Production  ", key))

		if u, err := uuid.Parse(created.ID); err != nil || u.Version() != 4 || u.String() != created.ID {
			t.Fatalf("id %q is not a random (v4) UUID", created.ID)
		}
		if created.Name != "Production" || created.BackendType != "OPENAI" || created.APIType != "OPENAI" ||
			deref(created.BaseURL) != `"https://api.openai.com"` || created.KeyStatus != "OK" ||
			created.KeyStatusMessage != nil || created.APIKeyHint != hintOf(key) {
			t.Fatalf("created: %+v", created)
		}
		for _, ts := range []string{created.CreatedAt, created.UpdatedAt} {
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				t.Fatalf("timestamp %q is not RFC 3339", ts)
			}
		}
		if got := c.getCred(created.ID); got != created {
			t.Fatalf("cloudCredential = %+v, want %+v", got, created)
		}
		if list := c.listCreds(); len(list) != 1 || list[0] != created {
			t.Fatalf("cloudCredentials = %+v", list)
		}

		// The raw column, read with plain SQL.
		row := app.rawRow(t, created.ID)
		if row.UserID != me.ID || row.KeyID != app.Keys().ActiveKID() {
			t.Fatalf("row owner %s kid %s", row.UserID, row.KeyID)
		}
		parts := strings.Split(row.APIKeyJWE, ".")
		if len(parts) != 5 {
			t.Fatalf("api_key_jwe has %d parts, want 5 (JWE compact serialization)", len(parts))
		}
		h := jweHeader(t, row.APIKeyJWE)
		want := map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": app.Keys().ActiveKID(), "cid": created.ID}
		if len(h) != len(want) {
			t.Fatalf("header has members %v, want exactly alg, enc, kid, cid", h)
		}
		for k, v := range want {
			if h[k] != v {
				t.Fatalf("header %s = %v, want %v", k, h[k], v)
			}
		}
		if piece, found := containsPartOf(row.APIKeyJWE, key); found {
			t.Fatalf("the stored value contains %d characters of the key", len(piece))
		}
		for i, p := range parts {
			b, err := base64.RawURLEncoding.DecodeString(p)
			if err != nil {
				t.Fatalf("part %d is not base64url: %v", i, err)
			}
			if _, found := containsPartOf(string(b), key); found {
				t.Fatalf("decoded part %d contains part of the key", i)
			}
		}
		// Any JOSE library holding the key file decrypts it: plain jwx here.
		set, err := app.Keys().JSON()
		if err != nil {
			t.Fatal(err)
		}
		jwks, err := jwk.Parse(set)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := jwe.Decrypt([]byte(row.APIKeyJWE), jwe.WithKeySet(jwks, jwe.WithRequireKid(true)))
		if err != nil || string(plain) != key {
			t.Fatalf("plain jwx could not decrypt the stored value: %v", err)
		}
		_ = jwa.A256KW
	})
}

func TestSameKeyDifferentCiphertexts(t *testing.T) {
	t.Parallel()
	app := credApp(t, nil)
	c, _ := app.user(t, "ada@example.com")
	key := apiKey(t)
	a := c.createCred(openAIInput("a", key))
	b := c.createCred(openAIInput("b", key))
	ra, rb := app.rawRow(t, a.ID), app.rawRow(t, b.ID)
	pa, pb := strings.Split(ra.APIKeyJWE, "."), strings.Split(rb.APIKeyJWE, ".")
	for i, name := range []string{"header", "encrypted key", "iv", "ciphertext", "tag"} {
		if pa[i] == pb[i] {
			t.Errorf("two credentials with the same key share the %s", name)
		}
	}
	if a.APIKeyHint != b.APIKeyHint {
		t.Error("the same key has two hints")
	}
}

// wantReentry asserts that a credential reads NEEDS_REENTRY with an empty
// hint and a message containing want.
func wantReentry(t *testing.T, got credJSON, want string) {
	t.Helper()
	if got.KeyStatus != "NEEDS_REENTRY" || got.APIKeyHint != "" || got.KeyStatusMessage == nil {
		t.Fatalf("%s: want NEEDS_REENTRY with an empty hint and a message, got %+v", got.Name, got)
	}
	if !strings.Contains(*got.KeyStatusMessage, want) || !strings.Contains(*got.KeyStatusMessage, "Enter the API key again") {
		t.Fatalf("%s: message %q does not say %q and ask for the key", got.Name, *got.KeyStatusMessage, want)
	}
}

func TestSwappedCiphertextsOpenInNeither(t *testing.T) {
	t.Parallel()
	app := credApp(t, nil)
	c, _ := app.user(t, "ada@example.com")
	a := c.createCred(openAIInput("a", apiKey(t)))
	b := c.createCred(openAIInput("b", apiKey(t)))
	good := c.createCred(openAIInput("c", apiKey(t)))
	ja, jb := app.rawRow(t, a.ID).APIKeyJWE, app.rawRow(t, b.ID).APIKeyJWE
	app.setJWE(t, a.ID, jb)
	app.setJWE(t, b.ID, ja)
	list := c.listCreds()
	if len(list) != 3 {
		t.Fatalf("listing returned %d credentials, want 3", len(list))
	}
	wantReentry(t, list[0], "belongs to another credential")
	wantReentry(t, list[1], "belongs to another credential")
	if list[2] != good {
		t.Fatalf("the intact credential changed: %+v", list[2])
	}
	// One credential at a time answers the same, without an error.
	wantReentry(t, c.getCred(a.ID), "belongs to another credential")
}

func TestUnreadableKeysNeedReentry(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := credApp(t, cfg)
		c, _ := app.user(t, "ada@example.com")
		ids := map[string]string{}
		for _, name := range []string{"1 tampered", "2 unknown kid", "3 fernet", "4 zip", "5 not a jwe", "6 intact"} {
			ids[name] = c.createCred(openAIInput(name, apiKey(t))).ID
		}
		// Tampered: one character of the ciphertext part changed.
		parts := strings.Split(app.rawRow(t, ids["1 tampered"]).APIKeyJWE, ".")
		ct := []byte(parts[3])
		if ct[0] == 'A' {
			ct[0] = 'B'
		} else {
			ct[0] = 'A'
		}
		parts[3] = string(ct)
		app.setJWE(t, ids["1 tampered"], strings.Join(parts, "."))
		// Unknown kid: sealed by plain jwx with a key the server does not have.
		foreign, err := jwk.Import(make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		app.setJWE(t, ids["2 unknown kid"], jwxSeal(t, foreign, "k-gone", ids["2 unknown kid"]))
		// A legacy Fernet token.
		app.setJWE(t, ids["3 fernet"], "gAAAAABl3x8k0Qb2ZqYw9vX1uJc7nT5rS3pO6mL4kI2hG0fE8dC6bA9zY7xW5vU3tS1rQ-pO_nM2lK0jI8hG6fE4dC2bA0zY8xW6vU4tS2rQ0pO8nM6lK4jI2hG0fE==")
		// A genuine DEFLATE-compressed JWE under the server's own active key.
		set, _ := app.Keys().JSON()
		jwks, _ := jwk.Parse(set)
		own, _ := jwks.LookupKeyID(app.Keys().ActiveKID())
		app.setJWE(t, ids["4 zip"], jwxSeal(t, own, app.Keys().ActiveKID(), ids["4 zip"], jwe.WithCompress(jwa.Deflate())))
		if jweHeader(t, app.rawRow(t, ids["4 zip"]).APIKeyJWE)["zip"] != "DEF" {
			t.Fatal("setup: no zip header")
		}
		app.setJWE(t, ids["5 not a jwe"], "plaintext-looking-value")

		list := c.listCreds()
		if len(list) != 6 {
			t.Fatalf("listing returned %d credentials, want 6", len(list))
		}
		wantReentry(t, list[0], "could not be decrypted")
		wantReentry(t, list[1], "encryption key this server no longer has")
		wantReentry(t, list[2], "Fernet")
		wantReentry(t, list[3], "format cloudkeys does not accept")
		wantReentry(t, list[4], "not in cloudkeys' encrypted format")
		if list[5].KeyStatus != "OK" || list[5].KeyStatusMessage != nil {
			t.Fatalf("the intact credential: %+v", list[5])
		}

		// Entering the key again repairs each of them.
		for _, cr := range list[:5] {
			key := apiKey(t)
			fixed := c.updateCred(cr.ID, map[string]any{"apiKey": key})
			if fixed.KeyStatus != "OK" || fixed.APIKeyHint != hintOf(key) || fixed.KeyStatusMessage != nil {
				t.Fatalf("%s after re-entry: %+v", cr.Name, fixed)
			}
			row := app.rawRow(t, cr.ID)
			if h := jweHeader(t, row.APIKeyJWE); h["kid"] != app.Keys().ActiveKID() || h["cid"] != cr.ID || row.KeyID != app.Keys().ActiveKID() {
				t.Fatalf("%s: re-entered key stored with header %v, kid column %s", cr.Name, h, row.KeyID)
			}
			if got := c.getCred(cr.ID); got.KeyStatus != "OK" || got.APIKeyHint != hintOf(key) {
				t.Fatalf("%s read back: %+v", cr.Name, got)
			}
		}
	})
}

// jwxSeal encrypts a key as cloudkeys does, with plain jwx.
func jwxSeal(t testing.TB, key jwk.Key, kid, cid string, opts ...jwe.EncryptOption) string {
	t.Helper()
	h := jwe.NewHeaders()
	h.Set("kid", kid)
	h.Set("cid", cid)
	opts = append(opts, jwe.WithKey(jwa.A256KW(), key), jwe.WithContentEncryption(jwa.A256GCM()), jwe.WithProtectedHeaders(h))
	out, err := jwe.Encrypt([]byte(apiKey(t)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestCredentialIDOR(t *testing.T) {
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := credApp(t, cfg)
		admin, _ := app.adminClient(t)
		alice, _ := app.user(t, "alice@example.com")
		bob, _ := app.user(t, "bob@example.com")
		victim := alice.createCred(openAIInput("alice's", apiKey(t)))
		before := app.rawRow(t, victim.ID)
		if !uuidRE.MatchString(victim.ID) {
			t.Fatalf("id %q", victim.ID)
		}
		missing := uuid.NewString()
		// The answer for someone else's ID must be the answer for a missing
		// one, and for a malformed one.
		type answer struct{ code, message string }
		ask := func(c *client, query, field string, vars map[string]any) answer {
			t.Helper()
			r := c.do(query, vars)
			e := r.wantCode(t, field, "NOT_FOUND")
			return answer{e.Extensions["code"].(string), e.Message}
		}
		ops := []struct {
			name, query, field string
			vars               func(id string) map[string]any
		}{
			{"read", getQuery, "cloudCredential", func(id string) map[string]any { return map[string]any{"id": id} }},
			{"update", updateMutation, "updateCloudCredential", func(id string) map[string]any {
				return map[string]any{"id": id, "input": map[string]any{"name": "pwned", "apiKey": "sk-attacker-0123456789"}}
			}},
			{"test", testMutation, "testCloudCredential", func(id string) map[string]any { return map[string]any{"id": id} }},
			{"delete", deleteMutation, "deleteCloudCredential", func(id string) map[string]any { return map[string]any{"id": id} }},
		}
		for _, op := range ops {
			for _, who := range []struct {
				name string
				c    *client
			}{{"another user", bob}, {"an admin", admin}} {
				foreign := ask(who.c, op.query, op.field, op.vars(victim.ID))
				absent := ask(who.c, op.query, op.field, op.vars(missing))
				malformed := ask(who.c, op.query, op.field, op.vars("not-a-uuid"))
				if foreign != absent || absent != malformed {
					t.Fatalf("%s by %s: foreign %+v, missing %+v, malformed %+v differ", op.name, who.name, foreign, absent, malformed)
				}
			}
		}
		for _, c := range []*client{bob, admin} {
			if list := c.listCreds(); len(list) != 0 {
				t.Fatalf("another user lists %d credentials", len(list))
			}
		}
		if after := app.rawRow(t, victim.ID); after != before {
			t.Fatalf("the victim's row changed:\nbefore %+v\nafter  %+v", before, after)
		}
		if got := alice.getCred(victim.ID); got != victim {
			t.Fatalf("the owner now reads %+v", got)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := credApp(t, cfg)
		c, me := app.user(t, "ada@example.com")
		key := apiKey(t)
		taken := c.createCred(openAIInput("taken", key))
		with := func(changes map[string]any) map[string]any {
			in := openAIInput("new", apiKey(t))
			for k, v := range changes {
				if v == nil {
					delete(in, k)
				} else {
					in[k] = v
				}
			}
			return in
		}
		cases := []struct {
			name, code, field string
			input             map[string]any
		}{
			{"empty name", "BAD_USER_INPUT", "input.name", with(map[string]any{"name": ""})},
			{"blank name", "BAD_USER_INPUT", "input.name", with(map[string]any{"name": " \t "})},
			{"name of 101 characters", "BAD_USER_INPUT", "input.name", with(map[string]any{"name": strings.Repeat("é", 101)})},
			{"name with a line break", "BAD_USER_INPUT", "input.name", with(map[string]any{"name": "a\nb"})},
			{"empty key", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": ""})},
			{"blank key", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "  \n"})},
			{"key of 4097 characters", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-" + strings.Repeat("x", 4094)})},
			{"key with a line break", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-abc\ndef-" + keyMarker})},
			{"key with a NUL", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-abc\x00def-" + keyMarker})},
			{"key with DEL", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-abc\x7fdef-" + keyMarker})},
			{"key with a tab", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-abc\tdef-" + keyMarker})},
			{"key with a space", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-abc def-" + keyMarker})},
			{"key with an ellipsis (a pasted hint)", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-…" + keyMarker})},
			{"key with a zero-width space", "BAD_USER_INPUT", "input.apiKey", with(map[string]any{"apiKey": "sk-\u200b" + keyMarker})},
			{"base URL not absolute", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "api.openai.com"})},
			{"base URL relative path", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "/v1"})},
			{"base URL ftp", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "ftp://example.com"})},
			{"base URL javascript", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "javascript:alert(1)"})},
			{"base URL without host", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://"})},
			{"base URL with user info", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://user:pw@example.com"})},
			{"base URL with user only", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://user@example.com"})},
			{"base URL with fragment", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://example.com/#x"})},
			{"base URL with empty fragment", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://example.com/#"})},
			{"base URL with a space", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://example.com/a b"})},
			{"base URL too long", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://example.com/" + strings.Repeat("a", 2030)})},
			{"base URL bad port", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"baseUrl": "https://example.com:99999999999/"})},
			{"compatible without base URL", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"backendType": "OPENAI_COMPATIBLE"})},
			{"compatible with blank base URL", "BAD_USER_INPUT", "input.baseUrl", with(map[string]any{"backendType": "ANTHROPIC_COMPATIBLE", "baseUrl": "  "})},
			{"OpenAI with the Anthropic protocol", "BAD_USER_INPUT", "input.apiType", with(map[string]any{"apiType": "ANTHROPIC"})},
			{"Anthropic with the OpenAI protocol", "BAD_USER_INPUT", "input.apiType", with(map[string]any{"backendType": "ANTHROPIC", "apiType": "OPENAI"})},
			{"OpenAI-compatible with the Anthropic protocol", "BAD_USER_INPUT", "input.apiType",
				with(map[string]any{"backendType": "OPENAI_COMPATIBLE", "baseUrl": "http://127.0.0.1:8000", "apiType": "ANTHROPIC"})},
			{"duplicate name", "CONFLICT", "input.name", with(map[string]any{"name": "taken"})},
			{"duplicate name after trimming", "CONFLICT", "input.name", with(map[string]any{"name": " taken "})},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := c.do(createMutation, map[string]any{"input": tc.input})
				e := r.wantCode(t, "createCloudCredential", tc.code)
				if e.Extensions["field"] != tc.field {
					t.Fatalf("field = %v, want %s", e.Extensions["field"], tc.field)
				}
				if k, _ := tc.input["apiKey"].(string); len(k) > 4 && strings.Contains(e.Message, k) {
					t.Fatal("the error repeats the key")
				}
			})
		}
		// Nothing of the refused inputs was stored.
		if n := app.countCreds(t, me.ID); n != 1 {
			t.Fatalf("%d credentials stored, want only the first", n)
		}
		if got := c.getCred(taken.ID); got != taken {
			t.Fatalf("the existing credential changed: %+v", got)
		}

		// Boundaries and normalisation that pass.
		long := c.createCred(map[string]any{"name": strings.Repeat("é", 100), "backendType": "OPENAI",
			"apiKey": "  sk-" + strings.Repeat("y", 4093) + "\n"})
		if long.APIKeyHint != "sk-…yyyy" || long.Name != strings.Repeat("é", 100) {
			t.Fatalf("boundary credential: name %d runes, hint %q", len([]rune(long.Name)), long.APIKeyHint)
		}
		other := c.createCred(map[string]any{"name": "Taken", "backendType": "DEEPSEEK", "apiKey": apiKey(t),
			"apiType": "ANTHROPIC", "baseUrl": " https://api.deepseek.com/anthropic?x=1 "})
		if other.APIType != "ANTHROPIC" || deref(other.BaseURL) != `"https://api.deepseek.com/anthropic?x=1"` {
			t.Fatalf("hosted provider with the Anthropic protocol: %+v", other)
		}
		local := c.createCred(map[string]any{"name": "local", "backendType": "OPENAI_COMPATIBLE", "apiKey": "abc",
			"baseUrl": "http://127.0.0.1:11434"})
		if local.APIType != "OPENAI" || local.APIKeyHint != "…" {
			t.Fatalf("compatible credential with a 3-character key: %+v", local)
		}
	})
}

func TestCredentialDefaultsPerBackend(t *testing.T) {
	t.Parallel()
	app := credApp(t, nil)
	c, _ := app.user(t, "ada@example.com")
	want := map[string][2]string{
		"OPENAI":               {"OPENAI", "https://api.openai.com"},
		"ANTHROPIC":            {"ANTHROPIC", "https://api.anthropic.com"},
		"OPENAI_COMPATIBLE":    {"OPENAI", "http://127.0.0.1:1"},
		"ANTHROPIC_COMPATIBLE": {"ANTHROPIC", "http://127.0.0.1:1"},
		"TOGETHER":             {"OPENAI", "https://api.together.xyz"},
		"GROQ":                 {"OPENAI", "https://api.groq.com/openai"},
		"FIREWORKS":            {"OPENAI", "https://api.fireworks.ai/inference"},
		"MISTRAL":              {"OPENAI", "https://api.mistral.ai"},
		"DEEPSEEK":             {"OPENAI", "https://api.deepseek.com"},
	}
	for backend, w := range want {
		in := map[string]any{"name": backend, "backendType": backend, "apiKey": apiKey(t)}
		if strings.HasSuffix(backend, "_COMPATIBLE") {
			in["baseUrl"] = w[1]
		}
		got := c.createCred(in)
		if got.APIType != w[0] || deref(got.BaseURL) != `"`+w[1]+`"` {
			t.Errorf("%s: apiType %s baseUrl %s, want %s %s", backend, got.APIType, deref(got.BaseURL), w[0], w[1])
		}
	}
	if list := c.listCreds(); len(list) != len(want) || list[0].Name != "ANTHROPIC" || list[8].Name != "TOGETHER" {
		t.Fatalf("listing is not by name: %v", list)
	}
}

func TestUpdateCredential(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := credApp(t, cfg)
		c, _ := app.user(t, "ada@example.com")
		key := apiKey(t)
		cr := c.createCred(openAIInput("main", key))
		c.createCred(openAIInput("other", apiKey(t)))
		before := app.rawRow(t, cr.ID)

		t.Run("an empty update changes nothing", func(t *testing.T) {
			if got := c.updateCred(cr.ID, map[string]any{}); got != cr {
				t.Fatalf("got %+v", got)
			}
			if app.rawRow(t, cr.ID) != before {
				t.Fatal("the row changed")
			}
		})
		time.Sleep(2 * time.Millisecond)
		t.Run("renaming keeps the key", func(t *testing.T) {
			got := c.updateCred(cr.ID, map[string]any{"name": " renamed "})
			if got.Name != "renamed" || got.APIKeyHint != hintOf(key) || got.KeyStatus != "OK" || got.UpdatedAt == cr.UpdatedAt || got.CreatedAt != cr.CreatedAt {
				t.Fatalf("got %+v", got)
			}
			row := app.rawRow(t, cr.ID)
			if row.APIKeyJWE != before.APIKeyJWE || row.KeyID != before.KeyID {
				t.Fatal("renaming rewrote the ciphertext")
			}
			if plain, err := app.Keys().Open(row.APIKeyJWE, cr.ID); err != nil || string(plain) != key {
				t.Fatal("the stored key no longer opens to the original")
			}
		})
		t.Run("the same key again is not sealed again", func(t *testing.T) {
			c.updateCred(cr.ID, map[string]any{"apiKey": " " + key + " "})
			if app.rawRow(t, cr.ID).APIKeyJWE != before.APIKeyJWE {
				t.Fatal("an unchanged key was sealed again")
			}
		})
		t.Run("a new key replaces the old", func(t *testing.T) {
			next := apiKey(t)
			got := c.updateCred(cr.ID, map[string]any{"apiKey": next})
			row := app.rawRow(t, cr.ID)
			if got.APIKeyHint != hintOf(next) || row.APIKeyJWE == before.APIKeyJWE {
				t.Fatalf("got %+v", got)
			}
			if plain, err := app.Keys().Open(row.APIKeyJWE, cr.ID); err != nil || string(plain) != next {
				t.Fatal("the stored value does not open to the new key")
			}
		})
		t.Run("changing the backend type re-defaults apiType and baseUrl", func(t *testing.T) {
			got := c.updateCred(cr.ID, map[string]any{"backendType": "ANTHROPIC"})
			if got.APIType != "ANTHROPIC" || deref(got.BaseURL) != `"https://api.anthropic.com"` {
				t.Fatalf("got %+v", got)
			}
			got = c.updateCred(cr.ID, map[string]any{"backendType": "GROQ", "baseUrl": "https://proxy.example.com/groq"})
			if got.APIType != "OPENAI" || deref(got.BaseURL) != `"https://proxy.example.com/groq"` {
				t.Fatalf("got %+v", got)
			}
			// The same backend type again is not a change: the custom URL stays.
			got = c.updateCred(cr.ID, map[string]any{"backendType": "GROQ"})
			if deref(got.BaseURL) != `"https://proxy.example.com/groq"` {
				t.Fatalf("got %+v", got)
			}
			got = c.updateCred(cr.ID, map[string]any{"backendType": "DEEPSEEK", "apiType": "ANTHROPIC", "baseUrl": "https://api.deepseek.com/anthropic"})
			if got.APIType != "ANTHROPIC" || got.BackendType != "DEEPSEEK" {
				t.Fatalf("got %+v", got)
			}
			// A blank baseUrl returns to the backend type's default.
			got = c.updateCred(cr.ID, map[string]any{"baseUrl": "", "apiType": "OPENAI"})
			if deref(got.BaseURL) != `"https://api.deepseek.com"` || got.APIType != "OPENAI" {
				t.Fatalf("got %+v", got)
			}
			got = c.updateCred(cr.ID, map[string]any{"backendType": "OPENAI_COMPATIBLE", "baseUrl": "http://127.0.0.1:9/"})
			if got.APIType != "OPENAI" || deref(got.BaseURL) != `"http://127.0.0.1:9/"` {
				t.Fatalf("got %+v", got)
			}
		})

		current := c.getCred(cr.ID)
		currentRow := app.rawRow(t, cr.ID)
		cases := []struct {
			name, code, field string
			input             map[string]any
		}{
			{"empty name", "BAD_USER_INPUT", "input.name", map[string]any{"name": " "}},
			{"long name", "BAD_USER_INPUT", "input.name", map[string]any{"name": strings.Repeat("n", 101)}},
			{"name taken", "CONFLICT", "input.name", map[string]any{"name": "other"}},
			{"empty key", "BAD_USER_INPUT", "input.apiKey", map[string]any{"apiKey": ""}},
			{"key with control character", "BAD_USER_INPUT", "input.apiKey", map[string]any{"apiKey": "sk-\x1b[31m"}},
			{"long key", "BAD_USER_INPUT", "input.apiKey", map[string]any{"apiKey": strings.Repeat("k", 4097)}},
			{"bad base URL", "BAD_USER_INPUT", "input.baseUrl", map[string]any{"baseUrl": "file:///etc/passwd"}},
			{"compatible loses its base URL", "BAD_USER_INPUT", "input.baseUrl", map[string]any{"baseUrl": ""}},
			{"compatible with the other protocol", "BAD_USER_INPUT", "input.apiType", map[string]any{"apiType": "ANTHROPIC"}},
			{"to compatible without base URL", "BAD_USER_INPUT", "input.baseUrl", map[string]any{"backendType": "ANTHROPIC_COMPATIBLE"}},
			{"a valid name with an invalid key", "BAD_USER_INPUT", "input.apiKey", map[string]any{"name": "fresh", "apiKey": "a\nb"}},
			{"a valid key with an invalid URL", "BAD_USER_INPUT", "input.baseUrl", map[string]any{"apiKey": apiKey(t), "baseUrl": "nope"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := c.do(updateMutation, map[string]any{"id": cr.ID, "input": tc.input})
				e := r.wantCode(t, "updateCloudCredential", tc.code)
				if e.Extensions["field"] != tc.field {
					t.Fatalf("field = %v, want %s", e.Extensions["field"], tc.field)
				}
				if strings.Contains(tc.name, "control character") && !strings.Contains(e.Message, "control characters") {
					t.Fatalf("a control character in the key is not named: %q", e.Message)
				}
				if got := c.getCred(cr.ID); got != current {
					t.Fatalf("a refused update changed the credential: %+v", got)
				}
				if app.rawRow(t, cr.ID) != currentRow {
					t.Fatal("a refused update changed the row")
				}
			})
		}
	})
}

func TestDeleteCredential(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, cfg *config.Config) {
		app := credApp(t, cfg)
		c, me := app.user(t, "ada@example.com")
		a := c.createCred(openAIInput("a", apiKey(t)))
		b := c.createCred(openAIInput("b", apiKey(t)))
		var ok bool
		c.must(deleteMutation, map[string]any{"id": a.ID}, "deleteCloudCredential", &ok)
		if !ok {
			t.Fatal("deleteCloudCredential did not answer true")
		}
		c.do(getQuery, map[string]any{"id": a.ID}).wantCode(t, "cloudCredential", "NOT_FOUND")
		c.do(deleteMutation, map[string]any{"id": a.ID}).wantCode(t, "deleteCloudCredential", "NOT_FOUND")
		if list := c.listCreds(); len(list) != 1 || list[0] != b {
			t.Fatalf("after delete: %+v", list)
		}
		// The name is free again.
		c.createCred(openAIInput("a", apiKey(t)))
		// Deleting the user deletes their credentials.
		if err := app.DB.Exec("DELETE FROM users WHERE id = ?", me.ID).Error; err != nil {
			t.Fatal(err)
		}
		if n := app.countCreds(t, me.ID); n != 0 {
			t.Fatalf("%d credentials outlived their owner", n)
		}
	})
}

func TestCredentialsNeedSignIn(t *testing.T) {
	t.Parallel()
	app := credApp(t, nil)
	anon := app.client(t)
	anon.do(listQuery, nil).wantCode(t, "cloudCredentials", "UNAUTHENTICATED")
	anon.do(createMutation, map[string]any{"input": openAIInput("x", apiKey(t))}).wantCode(t, "createCloudCredential", "UNAUTHENTICATED")
	var n int64
	app.DB.Raw("SELECT COUNT(*) FROM cloud_credentials").Row().Scan(&n)
	if n != 0 {
		t.Fatal("an anonymous create stored something")
	}
}
