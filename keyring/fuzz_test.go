package keyring

import (
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
)

// FuzzOpen feeds Open arbitrary values and bindings. Open must never panic,
// every failure must be one of the sentinels, and anything that opens must
// carry the expected binding and a kid of the set.
func FuzzOpen(f *testing.F) {
	k := testKeyring(f)
	sealed := mustSeal(f, k, testAPIKey, testBinding)
	parts := strings.Split(sealed, ".")
	seeds := []string{
		sealed,
		mustSeal(f, k, "", testBinding),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k1", "cid": testBinding}),
		withHeader(f, sealed, map[string]any{"alg": "none"}),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding, "zip": "DEF"}),
		withHeader(f, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM", "kid": "k2", "cid": testBinding, "crit": []string{"b64"}}),
		jwxSeal(f, jwa.A256KW(), jwa.A256GCM(), k.byKID["k2"], nil, jwe.WithCompress(jwa.Deflate())),
		jwxSeal(f, jwa.DIRECT(), jwa.A256GCM(), k.byKID["k2"], nil),
		strings.Join(parts[:4], "."),
		parts[0] + "...." + parts[4],
		"gAAAAABl3x8k0Qb2ZqYw9vX1uJc7nT5rS3pO6mL4kI2hG0fE8dC6bA9zY7xW5vU3tS1rQ==",
		"",
		"....",
		"e30.e30.e30.e30.e30",
		`{"protected":"e30"}`,
	}
	for _, s := range seeds {
		f.Add(s, testBinding)
	}
	f.Add(sealed, "")
	f.Add(sealed, "other")
	f.Fuzz(func(t *testing.T, sealed, binding string) {
		plaintext, err := k.Open(sealed, binding)
		if err != nil {
			if plaintext != nil {
				t.Error("Open returned plaintext with an error")
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("error %v matches %d sentinels, want 1", err, n)
			}
			return
		}
		if binding == "" {
			t.Error("Open succeeded with an empty binding")
		}
		if kid, _ := header(t, sealed)["kid"].(string); !k.Has(kid) {
			t.Errorf("opened a value whose kid %q is not in the set", kid)
		}
	})
}
