package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

// Sizes of the parts of an A256KW + A256GCM JWE.
const (
	wrappedKeySize = 40 // a 32-byte content key wrapped by RFC 3394
	gcmIVSize      = 12
	gcmTagSize     = 16
)

// openFast opens a compact JWE (already size- and encoding-checked by
// Open) with the standard library alone, when its protected header is a
// flat JSON object of exactly the members alg "A256KW", enc "A256GCM", kid
// and cid, in any order, without white space or escapes, and its parts
// have the sizes A256KW and A256GCM give. handled is false for anything
// else, and Open then asks jwx, so every refusal that depends on a header
// this parser does not read (zip, crit, other algorithms, odd JSON) keeps
// its one implementation. When handled, the answer is the one jwx's path
// gives: the plaintext, or ErrUnknownKey, ErrBinding or ErrDecrypt.
func (k *Keyring) openFast(sealed, binding string) (plaintext []byte, err error, handled bool) {
	raw := []byte(sealed)
	var parts [5][]byte
	rest := raw
	for i := range 4 {
		parts[i], rest, _ = bytes.Cut(rest, []byte{'.'})
	}
	parts[4] = rest
	enc := base64.RawURLEncoding
	if enc.DecodedLen(len(parts[1])) != wrappedKeySize || enc.DecodedLen(len(parts[2])) != gcmIVSize ||
		enc.DecodedLen(len(parts[4])) != gcmTagSize {
		return nil, nil, false
	}

	// One buffer for everything decoded: header, then ciphertext and tag
	// together (GCM wants them adjacent), then IV and wrapped key.
	hLen, ctLen := enc.DecodedLen(len(parts[0])), enc.DecodedLen(len(parts[3]))
	buf := make([]byte, hLen+ctLen+gcmTagSize+gcmIVSize+wrappedKeySize)
	header := buf[:hLen]
	sealedCT := buf[hLen : hLen+ctLen+gcmTagSize]
	iv := buf[hLen+ctLen+gcmTagSize : hLen+ctLen+gcmTagSize+gcmIVSize]
	wrapped := buf[hLen+ctLen+gcmTagSize+gcmIVSize:]
	// checkCompact accepted every part as canonical base64url, so these
	// decodes cannot fail; a failure is treated as "not handled" all the same.
	for _, d := range [...]struct{ dst, src []byte }{
		{header, parts[0]}, {sealedCT[:ctLen], parts[3]}, {sealedCT[ctLen:], parts[4]}, {iv, parts[2]}, {wrapped, parts[1]},
	} {
		if n, err := enc.Decode(d.dst, d.src); err != nil || n != len(d.dst) {
			return nil, nil, false
		}
	}

	h, ok := parseFlatHeader(header)
	if !ok || string(h.alg) != keyAlg || string(h.enc) != "A256GCM" {
		return nil, nil, false
	}
	kek, ok := k.kek[string(h.kid)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, quote(string(h.kid))), true
	}
	if string(h.cid) != binding {
		return nil, ErrBinding, true
	}
	cek, ok := unwrapKey(kek, wrapped)
	if !ok {
		return nil, ErrDecrypt, true
	}
	block, err := aes.NewCipher(cek[:])
	clear(cek[:])
	if err != nil {
		return nil, ErrDecrypt, true
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, ErrDecrypt, true
	}
	// The additional authenticated data is the encoded protected header.
	plaintext, err = gcm.Open(sealedCT[:0], iv, sealedCT, parts[0])
	if err != nil {
		return nil, ErrDecrypt, true
	}
	return plaintext, nil, true
}

// flatHeader holds the raw string values of the four members.
type flatHeader struct{ alg, enc, kid, cid []byte }

// parseFlatHeader parses {"name":"value",…} where names and values are
// strings of printable ASCII without '\' or '"', there is no white space,
// and the names are exactly alg, enc, kid and cid, each once. ok is false
// for anything else, including valid JSON outside that shape.
func parseFlatHeader(b []byte) (h flatHeader, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return h, false
	}
	b = b[1 : len(b)-1]
	seen := 0
	for len(b) > 0 {
		var name, value []byte
		if name, b, ok = flatString(b); !ok || len(b) == 0 || b[0] != ':' {
			return h, false
		}
		if value, b, ok = flatString(b[1:]); !ok {
			return h, false
		}
		var slot *[]byte
		switch string(name) {
		case "alg":
			slot = &h.alg
		case "enc":
			slot = &h.enc
		case "kid":
			slot = &h.kid
		case "cid":
			slot = &h.cid
		default:
			return h, false
		}
		if *slot != nil {
			return h, false // a duplicate member
		}
		*slot, seen = value, seen+1
		if len(b) > 0 {
			if b[0] != ',' || len(b) == 1 {
				return h, false
			}
			b = b[1:]
		}
	}
	return h, seen == 4
}

// flatString reads a JSON string without escapes at the start of b and
// returns its contents (never nil) and the rest of b.
func flatString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return b[1:i:i], b[i+1:], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// kwIV is RFC 3394's default initial value.
var kwIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// unwrapKey is the AES key unwrap of RFC 3394 §2.2.2 for a 32-byte key
// (n = 4 blocks of 64 bits); ok is false when the integrity check fails.
func unwrapKey(kek cipher.Block, wrapped []byte) (cek [32]byte, ok bool) {
	const n = 4
	a := binary.BigEndian.Uint64(wrapped[:8])
	copy(cek[:], wrapped[8:])
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(b[:8], a^uint64(n*j+i))
			copy(b[8:], cek[(i-1)*8:i*8])
			kek.Decrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8])
			copy(cek[(i-1)*8:i*8], b[8:])
		}
	}
	var got [8]byte
	binary.BigEndian.PutUint64(got[:], a)
	if subtle.ConstantTimeCompare(got[:], kwIV[:]) != 1 {
		clear(cek[:])
		return cek, false
	}
	return cek, true
}
