package keyring

import (
	"bytes"
	"crypto/aes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// RFC 3394 §4.6: wrap 256 bits of key data with a 256-bit KEK.
func TestUnwrapKeyRFC3394(t *testing.T) {
	kek, _ := hex.DecodeString("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	want, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	wrapped, _ := hex.DecodeString("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := unwrapKey(block, wrapped)
	if !ok || !bytes.Equal(got[:], want) {
		t.Fatalf("unwrap = %x, %v; want %x", got, ok, want)
	}
	for i := range wrapped {
		bad := bytes.Clone(wrapped)
		bad[i] ^= 1
		if _, ok := unwrapKey(block, bad); ok {
			t.Fatalf("unwrap accepted a wrapped key with byte %d changed", i)
		}
	}
}

// Values made by plain jwx, by Seal, and with the members in another
// order are opened by the fast path, not handed to jwx.
func TestOpenFastHandlesStandardValues(t *testing.T) {
	k := testKeyring(t)
	set, err := k.JSON()
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := jwk.Parse(set)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := jwks.LookupKeyID("k1")
	h := jwe.NewHeaders()
	h.Set("cid", testBinding)
	byJWX, err := jwe.Encrypt([]byte(testAPIKey), jwe.WithKey(jwa.A256KW(), key),
		jwe.WithContentEncryption(jwa.A256GCM()), jwe.WithProtectedHeaders(h))
	if err != nil {
		t.Fatal(err)
	}
	sealed := mustSeal(t, k, testAPIKey, testBinding)
	for name, v := range map[string]string{"Seal": sealed, "plain jwx, old key": string(byJWX), "empty plaintext": mustSeal(t, k, "", testBinding)} {
		plaintext, err, handled := k.openFast(v, testBinding)
		if !handled || err != nil {
			t.Fatalf("%s: handled %v, err %v", name, handled, err)
		}
		want := testAPIKey
		if name == "empty plaintext" {
			want = ""
		}
		if string(plaintext) != want {
			t.Fatalf("%s: wrong plaintext", name)
		}
	}
	// The fast path's refusals are the sentinels jwx's path gives.
	for _, tc := range []struct {
		name, sealed, binding string
		want                  error
	}{
		{"other binding", sealed, "another-row", ErrBinding},
		{"unknown kid", withHeader(t, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "gone", "cid": testBinding}), testBinding, ErrUnknownKey},
		{"reordered header", b64url(`{"kid":"k2","cid":"`+testBinding+`","enc":"A256GCM","alg":"A256KW"}`) + sealed[strings.IndexByte(sealed, '.'):], testBinding, ErrDecrypt},
	} {
		_, err, handled := k.openFast(tc.sealed, tc.binding)
		if !handled || !errors.Is(err, tc.want) {
			t.Errorf("%s: handled %v, err %v; want %v", tc.name, handled, err, tc.want)
		}
		_, jwxErr := k.openJWX(tc.sealed, tc.binding)
		if !errors.Is(jwxErr, tc.want) {
			t.Errorf("%s: jwx's path says %v", tc.name, jwxErr)
		}
	}
	// What it does not handle, it leaves to jwx.
	for name, v := range map[string]string{
		"zip":       withHeader(t, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding, "zip": "DEF"}),
		"other alg": withHeader(t, sealed, map[string]any{"alg": "A128KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding}),
		"no cid":    withHeader(t, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2"}),
		"white space": strings.Replace(sealed, strings.Split(sealed, ".")[0],
			b64url(`{"alg": "A256KW","cid":"`+testBinding+`","enc":"A256GCM","kid":"k2"}`), 1),
	} {
		if _, _, handled := k.openFast(v, testBinding); handled {
			t.Errorf("%s: the fast path handled it", name)
		}
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// FuzzOpenFastMatchesJWX checks, on any input, that Open (fast path first)
// and the jwx path agree: the same plaintext, or errors matching the same
// sentinel. Run longer with
// go test -run x -fuzz FuzzOpenFastMatchesJWX -fuzztime 60s ./keyring/
func FuzzOpenFastMatchesJWX(f *testing.F) {
	k := testKeyring(f)
	sealed := mustSeal(f, k, testAPIKey, testBinding)
	parts := strings.Split(sealed, ".")
	for _, s := range []string{
		sealed,
		mustSeal(f, k, "", testBinding),
		mustSeal(f, k, strings.Repeat("x", 300), testBinding),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k1", "cid": testBinding}),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "", "cid": testBinding}),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding, "zip": "DEF"}),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding, "x": "y"}),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": 1}),
		jwxSeal(f, jwa.A256KW(), jwa.A256GCM(), k.byKID["k2"], nil, jwe.WithCompress(jwa.Deflate())),
		jwxSeal(f, jwa.A128KW(), jwa.A256GCM(), k.byKID["k2"][:16], nil),
		jwxSeal(f, jwa.A256KW(), jwa.A128GCM(), k.byKID["k2"], nil),
		parts[0] + "." + parts[1] + ".." + parts[3] + "." + parts[4],
		parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3] + ".",
		parts[0] + ".." + parts[2] + "." + parts[3] + "." + parts[4],
		"gAAAAABl3x8k0Qb2ZqYw9vX1uJc7nT5rS3pO6mL4kI2hG0fE8dC6bA9zY7xW5vU3tS1rQ==",
		"e30.e30.e30.e30.e30",
	} {
		f.Add(s, testBinding)
	}
	f.Add(sealed, "other")
	f.Fuzz(func(t *testing.T, sealed, binding string) {
		got, err := k.Open(sealed, binding)
		var want []byte
		var wantErr error
		switch {
		case len(sealed) > MaxSealedSize:
			wantErr = ErrTooLarge
		case checkCompact(sealed) != nil:
			wantErr = checkCompact(sealed)
		case binding == "":
			wantErr = ErrBinding
		default:
			want, wantErr = k.openJWX(sealed, binding)
		}
		if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("Open = (%q, %v), jwx's path = (%q, %v)", got, err, want, wantErr)
		}
		if err != nil && sentinelOf(err) != sentinelOf(wantErr) {
			t.Fatalf("Open says %v, jwx's path %v", err, wantErr)
		}
	})
}

func sentinelOf(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}
