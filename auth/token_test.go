package auth

import (
	"testing"
	"time"
)

// BenchmarkVerify measures an access token's verification: in full (a
// token seen for the first time) and remembered (the same token again).
//
//	go test -run '^$' -bench Verify -benchmem ./auth/
func BenchmarkVerify(b *testing.B) {
	tokens := NewTokens([]byte("0123456789abcdef0123456789abcdef"), "cloudkeys", "cloudkeys", 15*time.Minute, nil)
	issue := func() string {
		tok, _, err := tokens.Issue("6f1c1d2e-0000-4000-8000-000000000001", "6f1c1d2e-0000-4000-8000-000000000002")
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	b.Run("first", func(b *testing.B) {
		tok := issue()
		for b.Loop() {
			if _, err := tokens.parse(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		tok := issue()
		for b.Loop() {
			if _, err := tokens.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
