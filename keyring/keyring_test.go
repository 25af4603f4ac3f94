package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// secretB64 returns the base64url form of a deterministic n-byte key whose
// bytes all equal fill. Tests check error messages against it.
func secretB64(n int, fill byte) string {
	return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

// jwkSet renders keys (each a map of JWK members) as a JWK Set.
func jwkSet(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goodKey returns the members of a valid key; with changes applied (a nil
// value deletes the member).
func goodKey(kid string, fill byte, changes map[string]any) map[string]any {
	m := map[string]any{"kty": "oct", "kid": kid, "use": "enc", "alg": "A256KW", "k": secretB64(32, fill)}
	for name, v := range changes {
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
	}
	return m
}

// mustParse parses a set built from keys or fails the test.
func mustParse(t testing.TB, keys ...map[string]any) *Keyring {
	t.Helper()
	k, err := Parse(jwkSet(t, keys...))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseValid(t *testing.T) {
	k := mustParse(t,
		goodKey("k2", 2, nil),
		goodKey("k1", 1, map[string]any{"use": nil, "key_ops": []string{"wrapKey", "unwrapKey"}}),
	)
	if got := k.ActiveKID(); got != "k2" {
		t.Errorf("ActiveKID = %q, want k2", got)
	}
	if got := k.KIDs(); !slices.Equal(got, []string{"k2", "k1"}) {
		t.Errorf("KIDs = %q, want [k2 k1]", got)
	}
	if !k.Has("k1") || !k.Has("k2") || k.Has("k3") || k.Has("") {
		t.Error("Has answers wrongly")
	}
	if !bytes.Equal(k.byKID["k1"], bytes.Repeat([]byte{1}, 32)) {
		t.Error("k1 decoded to the wrong key material")
	}
}

func TestParseRejects(t *testing.T) {
	secret := secretB64(32, 0xA5) // the key material no message may contain
	key := func(changes map[string]any) map[string]any { return goodKey("kid-x", 0xA5, changes) }
	tests := []struct {
		name string
		json []byte
		want string // substring of the error
	}{
		{"not JSON", []byte(`{"keys": [`), "not valid JSON"},
		{"broken JSON after the key", []byte(`{"keys":[{"kty":"oct","k":"` + secret + `"x}]}`), "not valid JSON"},
		{"array", []byte(`[]`), "not a JSON object"},
		{"no keys member", []byte(`{}`), "no keys"},
		{"empty set", []byte(`{"keys": []}`), "no keys"},
		{"keys not an array", []byte(`{"keys": {}}`), `"keys"`},
		{"key not an object", []byte(`{"keys": [1]}`), "key 0"},
		{"kid missing", jwkSet(t, key(map[string]any{"kid": nil})), "key 0: kid is missing"},
		{"kid empty", jwkSet(t, key(map[string]any{"kid": ""})), "kid is missing or empty"},
		{"kid not a string", jwkSet(t, key(map[string]any{"kid": 7})), `"kid" has the wrong JSON type`},
		{"kid too long", jwkSet(t, key(map[string]any{"kid": strings.Repeat("x", 129)})), "longer than 128"},
		{"kty RSA", jwkSet(t, key(map[string]any{"kty": "RSA"})), `key 0 (kid "kid-x"): kty is "RSA"`},
		{"kty missing", jwkSet(t, key(map[string]any{"kty": nil})), `kty is ""`},
		{"alg missing", jwkSet(t, key(map[string]any{"alg": nil})), "alg is missing"},
		{"alg A128KW", jwkSet(t, key(map[string]any{"alg": "A128KW"})), `alg is "A128KW"`},
		{"alg dir", jwkSet(t, key(map[string]any{"alg": "dir"})), `alg is "dir"`},
		{"use sig", jwkSet(t, key(map[string]any{"use": "sig"})), `use is "sig"`},
		{"use empty", jwkSet(t, key(map[string]any{"use": ""})), `use is ""`},
		{"k missing", jwkSet(t, key(map[string]any{"k": nil})), "k is missing"},
		{"k not base64url", jwkSet(t, key(map[string]any{"k": secret[:40] + "+/="})), "not unpadded base64url"},
		{"k padded", jwkSet(t, key(map[string]any{"k": secret + "="})), "not unpadded base64url"},
		{"k 16 bytes", jwkSet(t, key(map[string]any{"k": secretB64(16, 0xA5)})), "k is 16 bytes, want 32"},
		{"k 33 bytes", jwkSet(t, key(map[string]any{"k": secretB64(33, 0xA5)})), "k is 33 bytes, want 32"},
		{"k 64 bytes", jwkSet(t, key(map[string]any{"k": secretB64(64, 0xA5)})), "k is 64 bytes, want 32"},
		{"second key bad", jwkSet(t, goodKey("ok", 1, nil), goodKey("bad", 0xA5, map[string]any{"alg": "A192KW"})), `key 1 (kid "bad")`},
		{"duplicate kid", jwkSet(t, goodKey("same", 1, nil), goodKey("same", 0xA5, nil)), `key 1 (kid "same"): kid already used by key 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse(tt.json)
			if err == nil {
				t.Fatalf("Parse accepted %s (%v)", tt.name, k)
			}
			if !errors.Is(err, ErrInvalidKeySet) {
				t.Errorf("error does not wrap ErrInvalidKeySet: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			assertNoSecret(t, err.Error(), bytes.Repeat([]byte{0xA5}, 32))
		})
	}
}

// assertNoSecret fails if s contains any sizeable piece of secret, raw or
// in base64url. It never prints the secret itself.
func assertNoSecret(t testing.TB, s string, secret []byte) {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString(secret)
	decimal := strings.Trim(fmt.Sprint(secret[:4]), "[]") // how %v prints a []byte
	for _, needle := range []string{enc[:8], enc[len(enc)-8:], string(secret[:8]), decimal, fmt.Sprintf("%x", secret[:4])} {
		if strings.Contains(s, needle) {
			t.Errorf("message contains key material (%d-char message)", len(s))
			return
		}
	}
}

func TestNew(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.KIDs()); got != 1 {
		t.Fatalf("New made %d keys, want 1", got)
	}
	kidRE := regexp.MustCompile(`^k-\d{8}-[0-9a-f]{8}$`)
	if !kidRE.MatchString(a.ActiveKID()) {
		t.Errorf("kid %q does not look like k-YYYYMMDD-xxxxxxxx", a.ActiveKID())
	}
	if a.ActiveKID() == b.ActiveKID() {
		t.Error("two new keyrings share a kid")
	}
	if bytes.Equal(a.keys[0].secret, b.keys[0].secret) {
		t.Error("two new keyrings share a key")
	}
	if len(a.keys[0].secret) != 32 {
		t.Errorf("key is %d bytes, want 32", len(a.keys[0].secret))
	}
}

func TestJSONRoundTrip(t *testing.T) {
	k := mustParse(t, goodKey("b", 2, nil), goodKey("a", 1, map[string]any{"use": nil}))
	b, err := k.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\n  ")) {
		t.Error("JSON is not indented")
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for i, m := range doc.Keys {
		want := map[string]any{"kty": "oct", "use": "enc", "alg": "A256KW"}
		for name, v := range want {
			if m[name] != v {
				t.Errorf("key %d: %s = %v, want %v", i, name, m[name], v)
			}
		}
		if len(m) != 5 {
			t.Errorf("key %d has members %v, want kty kid use alg k", i, slices.Sorted(mapKeys(m)))
		}
	}
	again, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.KIDs(), k.KIDs()) {
		t.Errorf("KIDs after round trip = %q, want %q", again.KIDs(), k.KIDs())
	}
	for _, kid := range k.KIDs() {
		if !bytes.Equal(again.byKID[kid], k.byKID[kid]) {
			t.Errorf("key %q changed in the round trip", kid)
		}
	}
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestRotate(t *testing.T) {
	k := mustParse(t, goodKey("old", 1, nil))
	r, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	kids := r.KIDs()
	if len(kids) != 2 || kids[1] != "old" || kids[0] == "old" {
		t.Fatalf("KIDs after Rotate = %q, want [<new> old]", kids)
	}
	if r.ActiveKID() != kids[0] {
		t.Errorf("ActiveKID = %q, want the new key %q", r.ActiveKID(), kids[0])
	}
	if got := k.KIDs(); !slices.Equal(got, []string{"old"}) {
		t.Errorf("Rotate changed the original keyring: %q", got)
	}
	r2, err := r.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.KIDs(); len(got) != 3 || got[1] != kids[0] || got[2] != "old" {
		t.Errorf("KIDs after a second Rotate = %q", got)
	}
}

func TestWithout(t *testing.T) {
	k := mustParse(t, goodKey("c", 3, nil), goodKey("b", 2, nil), goodKey("a", 1, nil))
	w, err := k.Without("b")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.KIDs(); !slices.Equal(got, []string{"c", "a"}) {
		t.Errorf("KIDs = %q, want [c a]", got)
	}
	if w.Has("b") {
		t.Error("removed key still present")
	}
	if !k.Has("b") {
		t.Error("Without changed the original keyring")
	}

	if _, err := k.Without("c"); !errors.Is(err, ErrActiveKey) {
		t.Errorf("removing the active key: err = %v, want ErrActiveKey", err)
	}
	if _, err := k.Without("zzz"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("removing an unknown key: err = %v, want ErrUnknownKey", err)
	}
	one := mustParse(t, goodKey("only", 1, nil))
	if _, err := one.Without("only"); !errors.Is(err, ErrActiveKey) || !strings.Contains(err.Error(), "only key") {
		t.Errorf("removing the last key: err = %v, want ErrActiveKey naming the only key", err)
	}
}

func TestKIDsIsACopy(t *testing.T) {
	k := mustParse(t, goodKey("a", 1, nil))
	k.KIDs()[0] = "mutated"
	if k.ActiveKID() != "a" {
		t.Error("KIDs exposed the keyring's own slice")
	}
}

// Printing or logging a keyring by mistake must not leak a key.
func TestPrintingDoesNotLeak(t *testing.T) {
	k := mustParse(t, goodKey("b", 0xA5, nil), goodKey("a", 0xA5, nil))
	// Both of slog's handlers: the text one (the server's default) prints
	// unexported fields that the JSON one would drop.
	var asJSON, asText bytes.Buffer
	slog.New(slog.NewJSONHandler(&asJSON, nil)).Info("loaded", "keys", k, "deref", *k)
	slog.New(slog.NewTextHandler(&asText, nil)).Info("loaded", "keys", k, "deref", *k)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprintf("%v", *k), asJSON.String(), asText.String(),
	} {
		assertNoSecret(t, s, bytes.Repeat([]byte{0xA5}, 32))
		if !strings.Contains(s, `b`) {
			t.Errorf("%q does not name the keys", s)
		}
	}
	if got := k.String(); got != "keyring[b a]" {
		t.Errorf("String = %q", got)
	}
}
