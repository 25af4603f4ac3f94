package keyring

import (
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
)

// The benchmarks compare Seal and Open with the bare jwx calls that produce
// and consume the same bytes: same key, same 51-byte plaintext (the length
// of an OpenAI project key), same protected header. SPEC §7 asks for
// Seal/JWXEncrypt and Open/JWXDecrypt ≤ 1.2.

const (
	benchBinding = "0b9b6c5e-6f2a-4c1e-9d8e-2f1a3b4c5d6e"
	benchKeyText = "sk-proj-" + "Q7xaZ3kLmN0pQrStUvWxYz1234567890AbCdEfGhIjK"
)

func benchKeyring(b *testing.B) *Keyring {
	b.Helper()
	k, err := New()
	if err != nil {
		b.Fatal(err)
	}
	if len(benchKeyText) != 51 {
		b.Fatalf("plaintext is %d bytes, want 51", len(benchKeyText))
	}
	return k
}

func BenchmarkSeal(b *testing.B) {
	k := benchKeyring(b)
	pt := []byte(benchKeyText)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.Seal(pt, benchBinding); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWXEncrypt is the baseline for Seal: the jwx call a caller would
// write to produce the same header, building the header per call because
// the binding differs per row.
func BenchmarkJWXEncrypt(b *testing.B) {
	k := benchKeyring(b)
	secret, kid := k.keys[0].secret, k.keys[0].kid
	pt := []byte(benchKeyText)
	b.ReportAllocs()
	for b.Loop() {
		h := jwe.NewHeaders()
		if err := h.Set(jwe.KeyIDKey, kid); err != nil {
			b.Fatal(err)
		}
		if err := h.Set("cid", benchBinding); err != nil {
			b.Fatal(err)
		}
		if _, err := jwe.Encrypt(pt,
			jwe.WithKey(jwa.A256KW(), secret),
			jwe.WithContentEncryption(jwa.A256GCM()),
			jwe.WithProtectedHeaders(h),
		); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := benchKeyring(b)
	benchOpen(b, k, k.Open)
}

// benchOpen measures open on a value Seal made.
func benchOpen(b *testing.B, k *Keyring, open func(sealed, binding string) ([]byte, error)) {
	sealed, _, err := k.Seal([]byte(benchKeyText), benchBinding)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := open(sealed, benchBinding); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenJWXPath is Open's jwx path (what Open cost before the
// standard-library fast path, and what it still costs for values outside
// the fast path's shape).
func BenchmarkOpenJWXPath(b *testing.B) {
	k := benchKeyring(b)
	benchOpen(b, k, k.openJWX)
}

// BenchmarkJWXDecrypt is the baseline for Open: jwx decrypting the same
// bytes with the raw key, with no header checks at all.
func BenchmarkJWXDecrypt(b *testing.B) {
	k := benchKeyring(b)
	sealed, _, err := k.Seal([]byte(benchKeyText), benchBinding)
	if err != nil {
		b.Fatal(err)
	}
	buf := []byte(sealed)
	secret := k.keys[0].secret
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwe.Decrypt(buf, jwe.WithKey(jwa.A256KW(), secret)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInterleavedRatios measures the two SPEC §7 ratios by
// interleaving short batches of each operation with its baseline, so that
// load from other processes (which only ever adds time) hits both sides
// alike, and compares the fastest and the median batches. One run is the
// whole measurement:
//
//	go test -run x -bench InterleavedRatios -benchtime 1x -v ./keyring/
func BenchmarkInterleavedRatios(b *testing.B) {
	t := b
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	secret, kid := k.keys[0].secret, k.keys[0].kid
	pt := []byte(benchKeyText)
	sealed, _, err := k.Seal(pt, benchBinding)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte(sealed)
	seal := func() {
		if _, _, err := k.Seal(pt, benchBinding); err != nil {
			t.Fatal(err)
		}
	}
	encrypt := func() {
		h := jwe.NewHeaders()
		_ = h.Set(jwe.KeyIDKey, kid)
		_ = h.Set("cid", benchBinding)
		if _, err := jwe.Encrypt(pt, jwe.WithKey(jwa.A256KW(), secret), jwe.WithContentEncryption(jwa.A256GCM()), jwe.WithProtectedHeaders(h)); err != nil {
			t.Fatal(err)
		}
	}
	open := func() {
		if _, err := k.Open(sealed, benchBinding); err != nil {
			t.Fatal(err)
		}
	}
	decrypt := func() {
		if _, err := jwe.Decrypt(buf, jwe.WithKey(jwa.A256KW(), secret)); err != nil {
			t.Fatal(err)
		}
	}
	const rounds, batch = 300, 100
	measure := func(f func()) time.Duration {
		start := time.Now()
		for range batch {
			f()
		}
		return time.Since(start) / batch
	}
	for _, p := range []struct {
		name       string
		ours, base func()
	}{{"Seal/JWXEncrypt", seal, encrypt}, {"Open/JWXDecrypt", open, decrypt}} {
		var ours, base []time.Duration
		for r := range rounds {
			// Alternate which side goes first, so neither always runs warm.
			if r%2 == 0 {
				ours, base = append(ours, measure(p.ours)), append(base, measure(p.base))
			} else {
				base, ours = append(base, measure(p.base)), append(ours, measure(p.ours))
			}
		}
		slices.Sort(ours)
		slices.Sort(base)
		b.Logf("%s: min %v / %v = %.3f, median %v / %v = %.3f", p.name,
			ours[0], base[0], float64(ours[0])/float64(base[0]),
			ours[rounds/2], base[rounds/2], float64(ours[rounds/2])/float64(base[rounds/2]))
		b.ReportMetric(float64(ours[rounds/2])/float64(base[rounds/2]), p.name+"-median-ratio")
	}
}
