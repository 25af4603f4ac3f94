package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	testBinding = "7d0c2a8e-1f4b-4c39-9a57-5e0b3d2f6a11"
	testAPIKey  = "sk-proj-" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
)

// sentinels are the errors Open may return; every failure wraps exactly one.
var sentinels = []error{ErrTooLarge, ErrMalformed, ErrAlgorithm, ErrCompressed, ErrUnknownKey, ErrBinding, ErrDecrypt}

// testKeyring has two keys with fixed material, "k2" active.
func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	return mustParse(t, goodKey("k2", 0xA5, nil), goodKey("k1", 0x5A, nil))
}

func mustSeal(t testing.TB, k *Keyring, plaintext, binding string) string {
	t.Helper()
	sealed, _, err := k.Seal([]byte(plaintext), binding)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// header decodes the protected header of a compact JWE into a map.
func header(t testing.TB, sealed string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(sealed, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// withHeader replaces the protected header of sealed with h (as JSON). The
// result no longer authenticates, which is fine for checks that must fire
// before decryption.
func withHeader(t testing.TB, sealed string, h any) string {
	t.Helper()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(sealed, ".")
	return base64.RawURLEncoding.EncodeToString(b) + "." + rest
}

// assertOnly checks that err wraps want and no other sentinel.
func assertOnly(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Errorf("err %v also matches %v", err, s)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := testKeyring(t)
	for _, pt := range []string{testAPIKey, "x", "", strings.Repeat("é", 2000)} {
		sealed, kid, err := k.Seal([]byte(pt), testBinding)
		if err != nil {
			t.Fatal(err)
		}
		if kid != "k2" {
			t.Errorf("Seal used kid %q, want the active k2", kid)
		}
		if len(pt) >= 8 && strings.Contains(sealed, pt) {
			t.Error("sealed value contains the plaintext")
		}
		got, err := k.Open(sealed, testBinding)
		if err != nil {
			t.Fatalf("Open(%d-byte plaintext): %v", len(pt), err)
		}
		if string(got) != pt {
			t.Errorf("Open returned a different %d-byte plaintext", len(pt))
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := testKeyring(t)
	a, b := mustSeal(t, k, testAPIKey, testBinding), mustSeal(t, k, testAPIKey, testBinding)
	if a == b {
		t.Fatal("two seals of the same plaintext are identical")
	}
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i, name := range []string{"", "encrypted key", "iv", "ciphertext", "tag"} {
		if i > 0 && pa[i] == pb[i] {
			t.Errorf("two seals share the %s", name)
		}
	}
}

func TestSealHeader(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	if got := strings.Count(sealed, "."); got != 4 {
		t.Fatalf("sealed value has %d dots, want 4 (compact serialization)", got)
	}
	want := map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding}
	if got := header(t, sealed); !maps.Equal(got, want) {
		t.Errorf("protected header = %v, want exactly %v", got, want)
	}
}

func TestSealRefuses(t *testing.T) {
	k := testKeyring(t)
	if _, _, err := k.Seal([]byte(testAPIKey), ""); !errors.Is(err, ErrBinding) {
		t.Errorf("empty binding: err = %v, want ErrBinding", err)
	}
	if _, _, err := k.Seal(make([]byte, MaxSealedSize+1), testBinding); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge plaintext: err = %v, want ErrTooLarge", err)
	}
	// Under the plaintext limit but over it once encrypted and encoded: Seal
	// must not produce a value Open would refuse.
	if _, _, err := k.Seal(make([]byte, MaxSealedSize*3/4), testBinding); !errors.Is(err, ErrTooLarge) {
		t.Errorf("plaintext that seals too large: err = %v, want ErrTooLarge", err)
	}
}

func TestOpenBinding(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	_, err := k.Open(sealed, "another-row")
	assertOnly(t, err, ErrBinding)
	_, err = k.Open(sealed, "")
	assertOnly(t, err, ErrBinding)

	// Rewriting the binding in the header (a copy "moved" to another row)
	// breaks the AAD, so even the matching binding does not open it.
	h := header(t, sealed)
	h["cid"] = "another-row"
	_, err = k.Open(withHeader(t, sealed, h), "another-row")
	assertOnly(t, err, ErrDecrypt)

	// A missing or non-string cid is a binding failure too.
	delete(h, "cid")
	_, err = k.Open(withHeader(t, sealed, h), testBinding)
	assertOnly(t, err, ErrBinding)
	h["cid"] = 42
	_, err = k.Open(withHeader(t, sealed, h), testBinding)
	assertOnly(t, err, ErrBinding)
}

func TestOpenUnknownKeyAfterRemoval(t *testing.T) {
	k := testKeyring(t)
	r, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	old := mustSeal(t, k, testAPIKey, testBinding) // sealed with k2
	retired, err := r.Without("k2")
	if err != nil {
		t.Fatal(err)
	}
	_, err = retired.Open(old, testBinding)
	assertOnly(t, err, ErrUnknownKey)
	if !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("error %q does not name the kid", err)
	}
}

func TestRotatedKeyringOpensOldValues(t *testing.T) {
	k := testKeyring(t)
	old := mustSeal(t, k, testAPIKey, testBinding)
	r, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Open(old, testBinding)
	if err != nil || string(got) != testAPIKey {
		t.Fatalf("rotated keyring cannot open an old value: %v", err)
	}
	sealed, kid, err := r.Seal([]byte(testAPIKey), testBinding)
	if err != nil {
		t.Fatal(err)
	}
	if kid != r.ActiveKID() || kid == "k2" {
		t.Errorf("Seal after Rotate used %q, want the new key %q", kid, r.ActiveKID())
	}
	if h := header(t, sealed); h["kid"] != r.ActiveKID() {
		t.Errorf("header kid = %v, want %q", h["kid"], r.ActiveKID())
	}
	// The old keyring does not know the new key.
	_, err = k.Open(sealed, testBinding)
	assertOnly(t, err, ErrUnknownKey)
}

// The same kid with different key material (a wrong key file) is an
// authentication failure, not an unknown key.
func TestOpenWrongKeyMaterial(t *testing.T) {
	sealed := mustSeal(t, testKeyring(t), testAPIKey, testBinding)
	impostor := mustParse(t, goodKey("k2", 0x11, nil))
	_, err := impostor.Open(sealed, testBinding)
	assertOnly(t, err, ErrDecrypt)
}

// Plain jwx, given only the key file, decrypts what Seal produced.
func TestJWXDecryptsSeal(t *testing.T) {
	k := testKeyring(t)
	sealed, kid, err := k.Seal([]byte(testAPIKey), testBinding)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, err := k.JSON()
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("jwk set has no key %q", kid)
	}
	got, err := jwe.Decrypt([]byte(sealed), jwe.WithKey(jwa.A256KW(), key))
	if err != nil || string(got) != testAPIKey {
		t.Fatalf("jwe.Decrypt with WithKey: %v", err)
	}
	// And with the whole set, letting jwx pick the key by kid.
	got, err = jwe.Decrypt([]byte(sealed), jwe.WithKeySet(set))
	if err != nil || string(got) != testAPIKey {
		t.Fatalf("jwe.Decrypt with WithKeySet: %v", err)
	}
}

// Open accepts what plain jwx produces with the right headers.
func TestOpenJWXEncrypt(t *testing.T) {
	k := testKeyring(t)
	keyFile, err := k.JSON()
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{"k2", "k1"} { // the active key and an old one
		key, ok := set.LookupKeyID(kid)
		if !ok {
			t.Fatalf("jwk set has no key %q", kid)
		}
		h := jwe.NewHeaders()
		if err := h.Set("cid", testBinding); err != nil {
			t.Fatal(err)
		}
		// jwx takes the kid from the jwk.Key.
		sealed, err := jwe.Encrypt([]byte(testAPIKey),
			jwe.WithKey(jwa.A256KW(), key),
			jwe.WithContentEncryption(jwa.A256GCM()),
			jwe.WithProtectedHeaders(h),
		)
		if err != nil {
			t.Fatal(err)
		}
		if got := header(t, string(sealed))["kid"]; got != kid {
			t.Fatalf("jwx wrote kid %v, want %q", got, kid)
		}
		got, err := k.Open(string(sealed), testBinding)
		if err != nil || string(got) != testAPIKey {
			t.Fatalf("Open of a jwx-made value (kid %s): %v", kid, err)
		}
	}
}

// jwxSeal encrypts like Seal but with the given algorithms, key and extra
// protected headers, to produce values Open must refuse.
func jwxSeal(t testing.TB, alg jwa.KeyEncryptionAlgorithm, enc jwa.ContentEncryptionAlgorithm, key []byte, extra map[string]any, opts ...jwe.EncryptOption) string {
	t.Helper()
	h := jwe.NewHeaders()
	for name, v := range map[string]any{"kid": "k2", "cid": testBinding} {
		if err := h.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range extra {
		if err := h.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	opts = append(opts, jwe.WithKey(alg, key), jwe.WithContentEncryption(enc), jwe.WithProtectedHeaders(h))
	out, err := jwe.Encrypt([]byte(testAPIKey), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestOpenRefusesAlgorithms(t *testing.T) {
	k := testKeyring(t)
	key := k.byKID["k2"]
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	tests := []struct {
		name   string
		sealed string
	}{
		{"alg A128KW", jwxSeal(t, jwa.A128KW(), jwa.A256GCM(), key[:16], nil)},
		{"alg dir", jwxSeal(t, jwa.DIRECT(), jwa.A256GCM(), key, nil)},
		{"alg A256GCMKW", jwxSeal(t, jwa.A256GCMKW(), jwa.A256GCM(), key, nil)},
		{"enc A128GCM", jwxSeal(t, jwa.A256KW(), jwa.A128GCM(), key, nil)},
		{"enc A256CBC-HS512", jwxSeal(t, jwa.A256KW(), jwa.A256CBC_HS512(), key, nil)},
		// Names jwx itself does not parse, so Open diagnoses them itself.
		{"alg HS256", withHeader(t, sealed, map[string]any{"alg": "HS256", "enc": "A256GCM", "kid": "k2", "cid": testBinding})},
		{"alg none", withHeader(t, sealed, map[string]any{"alg": "none", "enc": "A256GCM", "kid": "k2", "cid": testBinding})},
		{"alg missing", withHeader(t, sealed, map[string]any{"enc": "A256GCM", "kid": "k2", "cid": testBinding})},
		{"alg not a string", withHeader(t, sealed, map[string]any{"alg": 1, "enc": "A256GCM", "kid": "k2", "cid": testBinding})},
		{"enc made up", withHeader(t, sealed, map[string]any{"alg": "A256KW", "enc": "XC20P", "kid": "k2", "cid": testBinding})},
		{"enc missing", withHeader(t, sealed, map[string]any{"alg": "A256KW", "kid": "k2", "cid": testBinding})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Open(tt.sealed, testBinding)
			assertOnly(t, err, ErrAlgorithm)
		})
	}
}

func TestOpenRefusesCompressed(t *testing.T) {
	k := testKeyring(t)
	// A genuine DEFLATE-compressed JWE made by jwx with the right key.
	zipped := jwxSeal(t, jwa.A256KW(), jwa.A256GCM(), k.byKID["k2"], nil, jwe.WithCompress(jwa.Deflate()))
	if got := header(t, zipped)["zip"]; got != "DEF" {
		t.Fatalf("jwx did not write zip: %v", got)
	}
	_, err := k.Open(zipped, testBinding)
	assertOnly(t, err, ErrCompressed)

	// A zip value jwx does not know.
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	h := header(t, sealed)
	h["zip"] = "GZ"
	_, err = k.Open(withHeader(t, sealed, h), testBinding)
	assertOnly(t, err, ErrCompressed)
}

func TestOpenRefusesCrit(t *testing.T) {
	k := testKeyring(t)
	sealed := jwxSeal(t, jwa.A256KW(), jwa.A256GCM(), k.byKID["k2"], map[string]any{"crit": []string{"x-must"}, "x-must": true})
	_, err := k.Open(sealed, testBinding)
	assertOnly(t, err, ErrMalformed)
}

func TestOpenMalformed(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	parts := strings.Split(sealed, ".")
	fernet := "gAAAAABl3x8k0Qb2ZqYw9vX1uJc7nT5rS3pO6mL4kI2hG0fE8dC6bA9zY7xW5vU3tS1rQ-pO_nM2lK0jI8hG6fE4dC2bA0zY8xW6vU4tS2rQ0pO8nM6lK4jI2hG0fE=="
	tests := map[string]string{
		"empty":              "",
		"fernet":             fernet,
		"fernet unpadded":    strings.TrimRight(fernet, "="),
		"plaintext key":      testAPIKey,
		"four parts":         strings.Join(parts[:4], "."),
		"six parts":          sealed + ".AAAA",
		"only dots":          "....",
		"space":              " " + sealed,
		"newline":            sealed + "\n",
		"padding":            parts[0] + "=." + strings.Join(parts[1:], "."),
		"std base64":         strings.Replace(sealed, parts[0], strings.ReplaceAll(parts[0], "e", "+"), 1),
		"JSON serialization": `{"protected":"` + parts[0] + `","encrypted_key":"` + parts[1] + `","iv":"` + parts[2] + `","ciphertext":"` + parts[3] + `","tag":"` + parts[4] + `"}`,
		"header not JSON":    base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + strings.Join(parts[1:], "."),
		"header JSON array":  base64.RawURLEncoding.EncodeToString([]byte(`["A256KW"]`)) + "." + strings.Join(parts[1:], "."),
		"truncated base64":   parts[0] + "." + parts[1] + "." + parts[2] + "A." + parts[3] + "." + parts[4],
		"iv empty":           parts[0] + "." + parts[1] + ".." + parts[3] + "." + parts[4],
		"invalid UTF-8":      "\xff\xfe" + sealed,
	}
	for name, v := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := k.Open(v, testBinding)
			if name == "iv empty" {
				// Well-formed as far as encoding goes; jwx refuses the IV length
				// after the key has been handed over.
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDecrypt) {
					t.Fatalf("err = %v, want ErrMalformed or ErrDecrypt", err)
				}
				return
			}
			assertOnly(t, err, ErrMalformed)
		})
	}
	_, err := k.Open(fernet, testBinding)
	if !strings.Contains(err.Error(), "Fernet") {
		t.Errorf("error for a Fernet token %q does not say so", err)
	}
}

func TestOpenTooLarge(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	parts := strings.Split(sealed, ".")
	// A well-formed JWE padded past the limit in its ciphertext: refused for
	// size alone, before parsing.
	big := strings.Join(append(parts[:3:3], parts[3]+strings.Repeat("A", MaxSealedSize), parts[4]), ".")
	_, err := k.Open(big, testBinding)
	assertOnly(t, err, ErrTooLarge)
	_, err = k.Open(strings.Repeat("\x00", MaxSealedSize+1), testBinding)
	assertOnly(t, err, ErrTooLarge)
	// Exactly at the limit is not "too large".
	_, err = k.Open(strings.Repeat("A", MaxSealedSize), testBinding)
	assertOnly(t, err, ErrMalformed)
}

// Changing any character of any of the five parts makes Open fail. In the
// encrypted key, IV, ciphertext and tag that is an authentication failure
// (or, for a last character whose change only touches the unused trailing
// bits, a non-canonical encoding). In the header it can be anything but
// success: the JSON may break, the kid or cid may change, or the AAD does.
func TestOpenTampered(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	parts := strings.Split(sealed, ".")
	flip := func(c byte) byte {
		if c == 'A' {
			return 'B'
		}
		return 'A'
	}
	for p, name := range []string{"header", "encrypted key", "iv", "ciphertext", "tag"} {
		t.Run(name, func(t *testing.T) {
			for i := range len(parts[p]) {
				tampered := slices.Clone(parts)
				b := []byte(tampered[p])
				b[i] = flip(b[i])
				tampered[p] = string(b)
				_, err := k.Open(strings.Join(tampered, "."), testBinding)
				switch {
				case err == nil:
					t.Fatalf("Open accepted a value with %s character %d changed", name, i)
				case p == 0:
					if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCompressed) {
						t.Fatalf("character %d: unexpected %v", i, err)
					}
				case i == len(parts[p])-1 && errors.Is(err, ErrMalformed):
					// non-canonical trailing bits
				default:
					if !errors.Is(err, ErrDecrypt) {
						t.Fatalf("%s character %d: err = %v, want ErrDecrypt", name, i, err)
					}
				}
				assertNoSecret(t, err.Error(), k.byKID["k2"])
				if strings.Contains(err.Error(), testAPIKey[:12]) {
					t.Fatal("error message contains the plaintext")
				}
			}
		})
	}
	// A header re-encoded with the same members in another order is still
	// valid JSON with the right binding; only the AAD check catches it.
	h := header(t, sealed)
	reordered := fmt.Sprintf(`{"cid":%q,"kid":%q,"enc":%q,"alg":%q}`, h["cid"], h["kid"], h["enc"], h["alg"])
	_, err := k.Open(base64.RawURLEncoding.EncodeToString([]byte(reordered))+"."+strings.Join(parts[1:], "."), testBinding)
	assertOnly(t, err, ErrDecrypt)
	// Swapping the encrypted key with one from another seal of the same
	// plaintext: a valid unwrap under the same key, but the wrong CEK.
	other := strings.Split(mustSeal(t, k, testAPIKey, testBinding), ".")
	_, err = k.Open(strings.Join([]string{parts[0], other[1], parts[2], parts[3], parts[4]}, "."), testBinding)
	assertOnly(t, err, ErrDecrypt)
}

// Every spelling of a value is canonical: the last character of each part
// may not carry stray trailing bits (jwx's decoder would ignore them).
func TestOpenNonCanonicalBase64(t *testing.T) {
	k := testKeyring(t)
	// Three plaintext lengths, so the ciphertext part ends on every
	// base64 remainder (2 and 3 characters past a full quantum) too.
	for i := range 21 {
		sealed := mustSeal(t, k, testAPIKey+strings.Repeat("x", i%3), testBinding)
		parts := strings.Split(sealed, ".")
		for p := range parts {
			n := len(parts[p])
			if n%4 == 0 {
				continue
			}
			b := []byte(parts[p])
			idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", b[n-1])
			b[n-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|1]
			tampered := slices.Clone(parts)
			tampered[p] = string(b)
			_, err := k.Open(strings.Join(tampered, "."), testBinding)
			assertOnly(t, err, ErrMalformed)
		}
	}
}

// A value without a kid names no key of the set.
func TestOpenWithoutKid(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	noKid := withHeader(t, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM"})
	_, err := k.Open(noKid, testBinding)
	assertOnly(t, err, ErrUnknownKey)
}

// A Keyring is shared by every request: seal and open from many goroutines
// (run with -race).
func TestConcurrentUse(t *testing.T) {
	k := testKeyring(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			binding := fmt.Sprintf("row-%d", g)
			for range 50 {
				sealed, _, err := k.Seal([]byte(testAPIKey), binding)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.Open(sealed, binding)
				if err != nil || !bytes.Equal(got, []byte(testAPIKey)) {
					errs <- fmt.Errorf("open: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
