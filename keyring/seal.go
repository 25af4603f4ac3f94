package keyring

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
)

// MaxSealedSize is the largest sealed value Open accepts, in bytes. Seal
// refuses to produce anything larger. An API key seals to about 250 bytes.
const MaxSealedSize = 16 << 10

// bindingHeader is the private protected-header parameter that carries the
// binding (the ID of the row the value belongs to).
const bindingHeader = "cid"

// Errors returned by Open (and, where they apply, Seal and KeyID). Each
// failure has its own sentinel so that callers can tell, with errors.Is, a
// value that was never a JWE from one sealed with a retired key or one that
// was tampered with. Their messages never contain plaintext or key material.
var (
	// ErrTooLarge: the value is longer than MaxSealedSize. Checked before
	// anything else is looked at.
	ErrTooLarge = errors.New("keyring: sealed value too large")
	// ErrMalformed: not a JWE in compact serialization (five dot-separated
	// base64url parts with a JSON header), e.g. a legacy Fernet token.
	ErrMalformed = errors.New("keyring: malformed sealed value")
	// ErrAlgorithm: the header asks for something other than alg A256KW
	// with enc A256GCM.
	ErrAlgorithm = errors.New("keyring: unsupported JWE algorithm")
	// ErrCompressed: the header has a "zip" parameter. Compressing before
	// encrypting leaks the plaintext length pattern, and decompression is a
	// resource hazard, so compressed values are refused.
	ErrCompressed = errors.New("keyring: compressed JWE refused")
	// ErrUnknownKey: the value names a kid that is not in the key set.
	ErrUnknownKey = errors.New("keyring: unknown key ID")
	// ErrBinding: the value was sealed for another row (its "cid" header is
	// not the expected binding), or the binding is empty.
	ErrBinding = errors.New("keyring: value is bound to another record")
	// ErrDecrypt: authentication failed; the value was altered or the key
	// with its kid is not the key it was sealed with.
	ErrDecrypt = errors.New("keyring: decryption failed")
)

// ErrLegacy is the ErrMalformed of a value that looks like a Fernet token,
// the format of the server cloudkeys replaced, so that a caller can tell the
// user why the value cannot be opened. errors.Is(err, ErrMalformed) holds
// for it too; it is not a sentinel of its own.
var ErrLegacy = fmt.Errorf("%w: looks like a legacy Fernet token", ErrMalformed)

// The algorithm values are looked up once; jwa's constructors consult a
// registry on every call.
var (
	algA256KW  = jwa.A256KW()
	encA256GCM = jwa.A256GCM()
)

// Seal encrypts plaintext under the active key and binds it to binding, the
// ID of the row that will store it. It returns the JWE in compact
// serialization and the kid of the key used (for the row's kid column).
// The binding must not be empty.
func (k *Keyring) Seal(plaintext []byte, binding string) (sealed string, kid string, err error) {
	if binding == "" {
		return "", "", fmt.Errorf("%w: empty binding", ErrBinding)
	}
	if len(plaintext) > MaxSealedSize {
		return "", "", fmt.Errorf("%w: %d-byte plaintext", ErrTooLarge, len(plaintext))
	}
	active := k.keys[k.active]
	h := jwe.NewHeaders()
	if err := h.Set(jwe.KeyIDKey, active.kid); err != nil {
		return "", "", fmt.Errorf("keyring: seal: setting kid: %w", err)
	}
	if err := h.Set(bindingHeader, binding); err != nil {
		return "", "", fmt.Errorf("keyring: seal: setting %s: %w", bindingHeader, err)
	}
	// jwe.Encrypt puts "alg" (from WithKey) and "enc" into the protected
	// header next to ours; compact serialization has no other header.
	out, err := jwe.Encrypt(plaintext,
		jwe.WithKey(algA256KW, active.secret),
		jwe.WithContentEncryption(encA256GCM),
		jwe.WithProtectedHeaders(h),
	)
	if err != nil {
		return "", "", fmt.Errorf("keyring: seal: %w", err)
	}
	if len(out) > MaxSealedSize {
		return "", "", fmt.Errorf("%w: sealed value would be %d bytes (limit %d)", ErrTooLarge, len(out), MaxSealedSize)
	}
	return string(out), active.kid, nil
}

// Open decrypts a value produced by Seal (or by any JOSE library with the
// same key set and headers) and checks that it was sealed for binding. The
// errors wrap ErrTooLarge, ErrMalformed, ErrAlgorithm, ErrCompressed,
// ErrUnknownKey, ErrBinding or ErrDecrypt.
//
// A value whose protected header is exactly the four members Seal writes,
// in the compact form every JOSE library emits, is opened by openFast with
// the standard library alone (it is most of what listing credentials
// costs); anything else — other or more members, white space, escapes,
// unusual part lengths — goes to jwx (openJWX), which decides. Both give
// the same answer for every input openFast handles (FuzzOpenFastMatchesJWX).
func (k *Keyring) Open(sealed string, binding string) ([]byte, error) {
	if len(sealed) > MaxSealedSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(sealed), MaxSealedSize)
	}
	if err := checkCompact(sealed); err != nil {
		return nil, err
	}
	if binding == "" {
		return nil, fmt.Errorf("%w: empty binding", ErrBinding)
	}
	if plaintext, err, handled := k.openFast(sealed, binding); handled {
		return plaintext, err
	}
	return k.openJWX(sealed, binding)
}

// openJWX opens a value that passed Open's first checks with jwx. The JWE
// is parsed once: the header checks run inside jwx's key lookup (see
// opener), before any decryption work. Only when jwx cannot parse the
// value does it decode the header itself, to say why.
func (k *Keyring) openJWX(sealed string, binding string) ([]byte, error) {
	o := opener{keys: k.byKID, binding: binding}
	plaintext, err := jwe.Decrypt([]byte(sealed), jwe.WithKeyProvider(&o))
	switch {
	case err == nil:
		return plaintext, nil
	case o.err != nil:
		return nil, o.err
	case o.called:
		// The headers passed and a key was handed over, so the key unwrap or
		// the GCM tag check failed. jwx's message is not passed on: it adds
		// nothing a caller can act on.
		return nil, ErrDecrypt
	default:
		return nil, diagnose(sealed)
	}
}

// opener is the jwe.KeyProvider Open hands to jwx. jwx calls FetchKeys once
// per recipient (a compact JWE has exactly one) with the message it has
// already parsed, so the header checks and the key lookup cost no second
// parse. It records why it refused, so Open can return its own sentinel
// rather than digging through jwx's wrapped errors.
type opener struct {
	keys    map[string][]byte
	binding string
	called  bool  // FetchKeys ran: the message parsed
	err     error // why FetchKeys refused, if it did
}

// FetchKeys implements jwe.KeyProvider.
func (o *opener) FetchKeys(_ context.Context, sink jwe.KeySink, _ jwe.Recipient, msg *jwe.Message) error {
	o.called = true
	secret, err := o.check(msg.ProtectedHeaders())
	if err != nil {
		o.err = err
		return err
	}
	sink.Key(algA256KW, secret)
	return nil
}

// check validates the protected header and returns the key it names.
func (o *opener) check(h jwe.Headers) ([]byte, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: no protected header", ErrMalformed)
	}
	if alg, ok := h.Algorithm(); !ok || alg != algA256KW {
		return nil, fmt.Errorf("%w: alg %s, want %q", ErrAlgorithm, quote(alg.String()), keyAlg)
	}
	if enc, ok := h.ContentEncryption(); !ok || enc != encA256GCM {
		return nil, fmt.Errorf("%w: enc %s, want %q", ErrAlgorithm, quote(enc.String()), encA256GCM.String())
	}
	if h.Has(jwe.CompressionKey) {
		return nil, ErrCompressed
	}
	// We implement no extension, so RFC 7516 §4.1.13 says refuse any "crit"
	// (jwx only checks it when asked to).
	if h.Has(jwe.CriticalKey) {
		return nil, fmt.Errorf("%w: unsupported crit header", ErrMalformed)
	}
	kid, _ := h.KeyID()
	secret, ok := o.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, quote(kid))
	}
	if cid, ok := binding(h); !ok || cid != o.binding {
		return nil, ErrBinding
	}
	return secret, nil
}

// binding returns the "cid" header; ok is false when it is missing or not
// a string.
func binding(h jwe.Headers) (string, bool) {
	var cid string
	if err := h.Get(bindingHeader, &cid); err != nil {
		return "", false
	}
	return cid, true
}

// b64 maps each byte of the unpadded base64url alphabet to its 6-bit value
// plus one; zero marks a byte outside the alphabet.
var b64 = func() (t [256]byte) {
	for i, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = byte(i) + 1
	}
	return t
}()

// checkCompact accepts exactly five '.'-separated parts of canonical
// unpadded base64url. It keeps JSON serialization, whitespace and padded or
// standard base64 away from jwx, which would otherwise accept them, and it
// refuses non-zero trailing bits, which jwx's decoder ignores: without that
// check one stored value would have several spellings that all open.
func checkCompact(s string) error {
	dots, start := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if b64[s[i]] == 0 {
				return malformed(s, "not base64url")
			}
			continue
		}
		// s[start:i] is one part.
		if n := i - start; n > 0 {
			last := b64[s[i-1]] - 1
			switch n % 4 {
			case 1:
				return malformed(s, "truncated base64url")
			case 2:
				if last&0x0f != 0 {
					return malformed(s, "non-canonical base64url")
				}
			case 3:
				if last&0x03 != 0 {
					return malformed(s, "non-canonical base64url")
				}
			}
		}
		if i < len(s) {
			dots++
			start = i + 1
		}
	}
	if dots != 4 {
		return malformed(s, "not five dot-separated parts")
	}
	return nil
}

// malformed builds an ErrMalformed, recognising the legacy format by name
// so that an operator reading the log knows what they are looking at.
func malformed(s, why string) error {
	// Fernet tokens start with version byte 0x80 and a big-endian
	// timestamp, which base64url-encode to "gAAAAA".
	if strings.HasPrefix(s, "gAAAAA") {
		return ErrLegacy
	}
	return fmt.Errorf("%w: %s", ErrMalformed, why)
}

// HeaderKID returns the "kid" of a sealed value's protected header,
// without opening it: what `cloudkeys keys status` compares with the
// row's key_id column. A value that is not a compact JWE with a JSON
// header is ErrMalformed (ErrLegacy for a Fernet token); a header
// without a string kid gives "".
func HeaderKID(sealed string) (string, error) {
	if len(sealed) > MaxSealedSize {
		return "", fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(sealed), MaxSealedSize)
	}
	if err := checkCompact(sealed); err != nil {
		return "", err
	}
	seg, _, _ := strings.Cut(sealed, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return "", fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var h struct {
		Kid json.RawMessage `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	kid, _ := jsonString(h.Kid)
	return kid, nil
}

// rawHeader is the part of a protected header that Open's diagnosis
// looks at, kept raw so that a value of the wrong JSON type is seen
// for what it is rather than failing the whole decode.
type rawHeader struct {
	Alg json.RawMessage `json:"alg"`
	Enc json.RawMessage `json:"enc"`
	Zip json.RawMessage `json:"zip"`
}

// decodeHeader decodes the first part of a compact JWE that checkCompact
// has accepted.
func decodeHeader(sealed string) (*rawHeader, error) {
	seg, _, _ := strings.Cut(sealed, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var h rawHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	return &h, nil
}

// diagnose says why jwx could not parse a value that looked compact. jwx
// refuses to parse an "alg", "enc" or "zip" it does not know, so those are
// reported here with the sentinel they would have had if it had parsed.
// This is the cold path; the hot path never decodes the header twice.
func diagnose(sealed string) error {
	h, err := decodeHeader(sealed)
	if err != nil {
		return err
	}
	if s, ok := jsonString(h.Alg); !ok || s != keyAlg {
		return fmt.Errorf("%w: alg %s, want %q", ErrAlgorithm, quote(s), keyAlg)
	}
	if s, ok := jsonString(h.Enc); !ok || s != encA256GCM.String() {
		return fmt.Errorf("%w: enc %s, want %q", ErrAlgorithm, quote(s), encA256GCM.String())
	}
	if h.Zip != nil {
		return ErrCompressed
	}
	return fmt.Errorf("%w: unparseable JWE", ErrMalformed)
}

// jsonString decodes a raw JSON string; ok is false when raw is absent or
// not a string.
func jsonString(raw json.RawMessage) (s string, ok bool) {
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
