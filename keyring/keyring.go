// Package keyring holds cloudkeys' versioned data-encryption keys and seals
// and opens API keys with them.
//
// The keys form a JWK Set of 256-bit symmetric ("oct") keys, each with
// "alg": "A256KW", "use": "enc" and a unique "kid". One key is active: Seal
// always uses it, Open uses whichever key the sealed value names. A parsed
// set's active key is its first; WithActive picks another (cloudkeys records
// which kid is active in its database, so that every replica agrees). Add
// appends a fresh key that opens nothing yet and seals nothing until it is
// made active, so values sealed before a rotation still open.
//
// A sealed value is a JWE in compact serialization (RFC 7516) whose protected
// header is exactly
//
//	{"alg":"A256KW","enc":"A256GCM","kid":"<key ID>","cid":"<binding>"}
//
// where the binding is the ID of the database row that stores the value. The
// protected header is the AES-GCM additional authenticated data, so the
// binding cannot be changed without breaking decryption, and Open also
// refuses a value whose "cid" is not the row it was read from. Nothing else
// is proprietary: any conformant JOSE library given the key file can decrypt
// a stored value.
//
// A Keyring is immutable; Add, Rotate, WithActive and Without return new
// ones. It is safe for concurrent use.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

const (
	// keySize is the length of every key in bytes (A256KW wants 256 bits).
	keySize = 32
	// keyAlg, keyUse and keyType are the JWK members every key must carry.
	keyAlg  = "A256KW"
	keyUse  = "enc"
	keyType = "oct"
	// maxKIDLen bounds a key ID; it travels in every sealed value.
	maxKIDLen = 128
)

// ErrInvalidKeySet is wrapped by every error Parse returns for a key set
// that is syntactically or semantically unacceptable.
var ErrInvalidKeySet = errors.New("keyring: invalid key set")

// ErrEmptySet is the ErrInvalidKeySet of a set without keys: a valid JWK
// Set, but nothing to seal or open with. `cloudkeys keys add` starts from
// one.
var ErrEmptySet = fmt.Errorf("%w: no keys", ErrInvalidKeySet)

// ErrActiveKey is returned by Without when asked to remove the active key
// (which is also the case of the only key left).
var ErrActiveKey = errors.New("keyring: cannot remove the active key")

// Keyring is an ordered set of data-encryption keys, one of them active.
// It is immutable after construction and safe for concurrent use.
type Keyring struct {
	keys   []key             // set order, as in the file
	active int               // index in keys of the key Seal uses
	byKID  map[string][]byte // kid → secret, for Open
	// kek holds each key's AES cipher, built once, for the key unwrap of
	// Open's fast path.
	kek map[string]cipher.Block
}

// key is one entry of the set. secret is never shown by String, errors or
// logs; only JSON writes it out.
type key struct {
	kid    string
	secret []byte
}

// newKeyring builds a Keyring from entries whose validity the caller has
// established. It does not copy the secrets.
func newKeyring(keys []key) *Keyring {
	byKID := make(map[string][]byte, len(keys))
	kek := make(map[string]cipher.Block, len(keys))
	for _, k := range keys {
		byKID[k.kid] = k.secret
		block, err := aes.NewCipher(k.secret)
		if err != nil {
			panic("keyring: a validated 32-byte key is not an AES key: " + err.Error())
		}
		kek[k.kid] = block
	}
	return &Keyring{keys: keys, byKID: byKID, kek: kek}
}

// jwkJSON is the wire form of one key. Use is a pointer so that "absent"
// and "present but empty" can be told apart.
type jwkJSON struct {
	Kty string  `json:"kty"`
	Kid string  `json:"kid"`
	Use *string `json:"use,omitempty"`
	Alg string  `json:"alg"`
	K   string  `json:"k"`
}

// setJSON is the wire form of the JWK Set.
type setJSON struct {
	Keys []json.RawMessage `json:"keys"`
}

// Parse reads a JWK Set and validates every key: the set is not empty, and
// each key has kty "oct", exactly 32 bytes of key material in "k" (unpadded
// base64url), alg "A256KW", use "enc" if use is present, and a non-empty kid
// that no other key in the set has. Members it does not know (key_ops, ext,
// …) are ignored. Errors wrap ErrInvalidKeySet and name the key by index and
// kid; they never contain key material.
func Parse(jwkSetJSON []byte) (*Keyring, error) {
	var set setJSON
	if err := json.Unmarshal(jwkSetJSON, &set); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidKeySet, describeJSONError(err))
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf(`%w (want {"keys": [...]} with at least one key)`, ErrEmptySet)
	}
	keys := make([]key, 0, len(set.Keys))
	seen := make(map[string]int, len(set.Keys))
	for i, raw := range set.Keys {
		var j jwkJSON
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("%w: key %d: %s", ErrInvalidKeySet, i, describeJSONError(err))
		}
		k, err := j.validate()
		if err != nil {
			if j.Kid != "" {
				return nil, fmt.Errorf("%w: key %d (kid %s): %s", ErrInvalidKeySet, i, quote(j.Kid), err)
			}
			return nil, fmt.Errorf("%w: key %d: %s", ErrInvalidKeySet, i, err)
		}
		if first, dup := seen[k.kid]; dup {
			return nil, fmt.Errorf("%w: key %d (kid %s): kid already used by key %d", ErrInvalidKeySet, i, quote(k.kid), first)
		}
		seen[k.kid] = i
		keys = append(keys, k)
	}
	return newKeyring(keys), nil
}

// validate checks one key. Its error messages name the offending member but
// never its value when that value is (or may be) key material.
func (j *jwkJSON) validate() (key, error) {
	switch {
	case j.Kid == "":
		return key{}, errors.New("kid is missing or empty")
	case len(j.Kid) > maxKIDLen:
		return key{}, fmt.Errorf("kid is longer than %d bytes", maxKIDLen)
	case j.Kty != keyType:
		return key{}, fmt.Errorf("kty is %s, want %q", quote(j.Kty), keyType)
	case j.Alg == "":
		return key{}, fmt.Errorf("alg is missing, want %q", keyAlg)
	case j.Alg != keyAlg:
		return key{}, fmt.Errorf("alg is %s, want %q", quote(j.Alg), keyAlg)
	case j.Use != nil && *j.Use != keyUse:
		return key{}, fmt.Errorf("use is %s, want %q", quote(*j.Use), keyUse)
	case j.K == "":
		return key{}, errors.New("k is missing or empty")
	}
	secret, err := base64.RawURLEncoding.Strict().DecodeString(j.K)
	if err != nil {
		return key{}, errors.New("k is not unpadded base64url")
	}
	if len(secret) != keySize {
		return key{}, fmt.Errorf("k is %d bytes, want %d (256 bits)", len(secret), keySize)
	}
	return key{kid: j.Kid, secret: secret}, nil
}

// describeJSONError reports where a JSON document is broken without quoting
// it: encoding/json's messages can echo a character of the input, and the
// input here is key material.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("member %q has the wrong JSON type", typ.Field)
		}
		return "not a JSON object"
	default:
		return "not valid JSON"
	}
}

// New returns a Keyring with one fresh random key.
func New() (*Keyring, error) {
	k, err := generate(nil)
	if err != nil {
		return nil, err
	}
	return newKeyring([]key{k}), nil
}

// generate makes a fresh key whose kid is not already in taken. Key IDs look
// like "k-20261130-ab12cd34": the UTC creation date helps an operator see
// which key is old, the random suffix keeps two keys made on one day apart.
func generate(taken map[string][]byte) (key, error) {
	secret := make([]byte, keySize)
	if _, err := rand.Read(secret); err != nil {
		return key{}, fmt.Errorf("keyring: generating key: %w", err)
	}
	date := time.Now().UTC().Format("20060102")
	var suffix [4]byte
	for {
		if _, err := rand.Read(suffix[:]); err != nil {
			return key{}, fmt.Errorf("keyring: generating key ID: %w", err)
		}
		kid := "k-" + date + "-" + hex.EncodeToString(suffix[:])
		if _, dup := taken[kid]; !dup {
			return key{kid: kid, secret: secret}, nil
		}
	}
}

// JSON returns the key set as an indented JWK Set, the format Parse reads
// and any JOSE library understands. The result contains the secret keys:
// write it only to a file with mode 0600 or to a secret store.
func (k *Keyring) JSON() ([]byte, error) {
	use := keyUse
	out := struct {
		Keys []jwkJSON `json:"keys"`
	}{Keys: make([]jwkJSON, len(k.keys))}
	for i, e := range k.keys {
		out.Keys[i] = jwkJSON{
			Kty: keyType,
			Kid: e.kid,
			Use: &use,
			Alg: keyAlg,
			K:   base64.RawURLEncoding.EncodeToString(e.secret),
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keyring: encoding key set: %w", err)
	}
	return append(b, '\n'), nil
}

// Rotate returns a new Keyring whose active key is a fresh one, followed by
// all the keys of k in their order. k itself is unchanged. (cloudkeys'
// commands use Add, then make the key active once every server holds it.)
func (k *Keyring) Rotate() (*Keyring, error) {
	fresh, err := generate(k.byKID)
	if err != nil {
		return nil, err
	}
	keys := make([]key, 0, len(k.keys)+1)
	keys = append(keys, fresh)
	keys = append(keys, k.keys...)
	return newKeyring(keys), nil
}

// Without returns a new Keyring without the key kid. It refuses an unknown
// kid (ErrUnknownKey) and the active key (ErrActiveKey), which covers the
// last remaining key. Whether any stored value still uses kid is for the
// caller to check first. k itself is unchanged.
func (k *Keyring) Without(kid string) (*Keyring, error) {
	if !k.Has(kid) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, quote(kid))
	}
	if len(k.keys) == 1 {
		return nil, fmt.Errorf("%w: %s is the only key", ErrActiveKey, quote(kid))
	}
	if kid == k.ActiveKID() {
		return nil, fmt.Errorf("%w: %s (activate another key first)", ErrActiveKey, quote(kid))
	}
	keys := make([]key, 0, len(k.keys)-1)
	for _, e := range k.keys {
		if e.kid != kid {
			keys = append(keys, e)
		}
	}
	rest := newKeyring(keys)
	return rest.WithActive(k.ActiveKID())
}

// Add returns a new Keyring with a fresh key appended to the keys of k,
// and the same active key: the new key opens what is sealed with it but
// seals nothing until it is made active (the "add" of add → distribute →
// promote). k itself is unchanged.
func (k *Keyring) Add() (*Keyring, error) {
	fresh, err := generate(k.byKID)
	if err != nil {
		return nil, err
	}
	keys := make([]key, 0, len(k.keys)+1)
	keys = append(keys, k.keys...)
	keys = append(keys, fresh)
	added := newKeyring(keys)
	added.active = k.active
	return added, nil
}

// WithActive returns a Keyring with the same keys in the same order whose
// active key is kid (ErrUnknownKey when the set has no such key). It
// shares k's key material; k itself is unchanged.
func (k *Keyring) WithActive(kid string) (*Keyring, error) {
	for i, e := range k.keys {
		if e.kid == kid {
			if i == k.active {
				return k, nil
			}
			c := *k
			c.active = i
			return &c, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKey, quote(kid))
}

// ActiveKID returns the ID of the key Seal uses.
func (k *Keyring) ActiveKID() string { return k.keys[k.active].kid }

// FirstKID returns the ID of the first key of the set: the active one of
// a freshly parsed set, and the one cloudkeys uses while its database
// records no active kid.
func (k *Keyring) FirstKID() string { return k.keys[0].kid }

// checkLabel is the fixed message of key-check values.
const checkLabel = "cloudkeys key-check value v1"

// CheckValue returns the key-check value of the key kid: the hex
// HMAC-SHA256 of a fixed label under the key. Equal values mean the same
// key bytes; the value reveals nothing about the key (HMAC is a
// pseudo-random function), so it may be stored and shown. ok is false when
// the set has no key kid.
func (k *Keyring) CheckValue(kid string) (kcv string, ok bool) {
	secret, ok := k.byKID[kid]
	if !ok {
		return "", false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(checkLabel))
	return hex.EncodeToString(m.Sum(nil)), true
}

// SameKeys reports whether k and o hold the same kids, in the same order,
// with the same key bytes (whichever is active).
func (k *Keyring) SameKeys(o *Keyring) bool {
	if len(k.keys) != len(o.keys) {
		return false
	}
	for i := range k.keys {
		if k.keys[i].kid != o.keys[i].kid || !hmac.Equal(k.keys[i].secret, o.keys[i].secret) {
			return false
		}
	}
	return true
}

// KIDs returns every key ID in set order, the active one first.
func (k *Keyring) KIDs() []string {
	kids := make([]string, len(k.keys))
	for i, e := range k.keys {
		kids[i] = e.kid
	}
	return kids
}

// Has reports whether the set holds a key with ID kid.
func (k *Keyring) Has(kid string) bool {
	_, ok := k.byKID[kid]
	return ok
}

// String describes the keyring by its key IDs only, so that printing one by
// mistake does not leak a key. It and the two methods below have value
// receivers so that they also cover a dereferenced Keyring: fmt would
// otherwise print the unexported fields, key bytes included.
func (k Keyring) String() string {
	return "keyring[" + strings.Join(k.KIDs(), " ") + "]"
}

// GoString is String, for %#v.
func (k Keyring) GoString() string { return k.String() }

// LogValue shows the key IDs, never the keys, in structured logs.
func (k Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("active", k.ActiveKID()),
		slog.Any("kids", k.KIDs()),
	)
}

// quote quotes an untrusted, non-secret string (a kid, an alg name) for an
// error message, cut short so a hostile value cannot flood a log.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
