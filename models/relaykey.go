package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// RelayKey is an application's key to the relay (SPEC §8): it stands for one
// cloud credential of its owner, so that the application never holds the
// provider key. Only the SHA-256 of its secret is stored; the secret is shown
// once, by CreateRelayKey.
type RelayKey struct {
	ID                string `gorm:"primaryKey"`
	UserID            string
	CredentialID      string
	Name              string
	SecretHash        string
	SecretHint        string
	AllowedModels     ModelList // nil: any model
	RequestsPerMinute *int
	CreatedAt         time.Time
	ExpiresAt         *time.Time
	RevokedAt         *time.Time
}

// ModelList is a list of model IDs stored as a JSON array; nil is NULL.
type ModelList []string

// GormDataType tells GORM the column holds text (a JSON array); without
// it GORM refuses a slice type.
func (ModelList) GormDataType() string { return "text" }

// Value implements driver.Valuer.
func (m ModelList) Value() (driver.Value, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal([]string(m))
	return string(b), err
}

// Scan implements sql.Scanner.
func (m *ModelList) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case nil:
		*m = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("models: cannot scan %T into a model list", v)
	}
	var out []string
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	*m = ModelList(out)
	return nil
}

// Allows reports whether model may be used with a key whose list is m.
func (m ModelList) Allows(model string) bool {
	if m == nil {
		return true
	}
	for _, id := range m {
		if id == model {
			return true
		}
	}
	return false
}

// Live reports whether k still works at now: neither revoked nor expired.
func (k *RelayKey) Live(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// RelayKeyPrefix starts every relay key; 43 base64url characters (256
// random bits) follow it.
const RelayKeyPrefix = "ckr_"

const relayKeyRandom = 32

// NewRelayKey is what a user asks for in createRelayKey.
type NewRelayKey struct {
	CredentialID      string
	Name              string
	ExpiresAt         *time.Time
	AllowedModels     []string
	RequestsPerMinute *int
}

// Input rules of relay keys.
const (
	maxAllowedModels  = 100
	maxModelIDLen     = 200
	maxRequestsPerMin = 1_000_000
)

// CreateRelayKey makes a new relay key for the owner's credential and
// returns it with its secret, which is never shown again. Only the owner of
// the credential may (NOT_FOUND for anyone else, as for a missing one). A
// credential has at most maxPerCredential live keys (FORBIDDEN beyond);
// BAD_USER_INPUT for an invalid name, an expiry not in the future, an empty
// or invalid model list, or a rate outside 1–1,000,000.
func CreateRelayKey(ctx context.Context, db *gorm.DB, ownerID string, maxPerCredential int, in NewRelayKey, now time.Time) (*RelayKey, string, error) {
	name, err := validName("input.name", in.Name)
	if err != nil {
		return nil, "", err
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, "", apperr.Invalidf("input.expiresAt", "expiresAt must be in the future")
	}
	models, err := validModelList("input.allowedModels", in.AllowedModels)
	if err != nil {
		return nil, "", err
	}
	if r := in.RequestsPerMinute; r != nil && (*r < 1 || *r > maxRequestsPerMin) {
		return nil, "", apperr.Invalidf("input.requestsPerMinute", "requestsPerMinute must be between 1 and %d", maxRequestsPerMin)
	}
	raw := make([]byte, relayKeyRandom)
	rand.Read(raw)
	random := base64.RawURLEncoding.EncodeToString(raw)
	secret := RelayKeyPrefix + random
	k := &RelayKey{ID: uuid.NewString(), UserID: ownerID, Name: name, SecretHash: HashRelaySecret(secret),
		SecretHint: RelayKeyPrefix + random[:4] + "…", AllowedModels: models,
		RequestsPerMinute: in.RequestsPerMinute, CreatedAt: now}
	if in.ExpiresAt != nil {
		exp := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		k.ExpiresAt = &exp
	}
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		c, err := credentialRow(tx, ownerID, in.CredentialID)
		if err != nil {
			return err
		}
		k.CredentialID = c
		if err := lock(tx, "relay-keys:"+c); err != nil {
			return err
		}
		var n int64
		if err := liveKeys(tx.Model(&RelayKey{}), now).Where("credential_id = ?", c).Count(&n).Error; err != nil {
			return err
		}
		if n >= int64(maxPerCredential) {
			return apperr.Errorf(apperr.Forbidden, "a credential may have at most %d live relay keys and this one has %d: revoke one first", maxPerCredential, n)
		}
		return tx.Create(k).Error
	})
	if err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// credentialRow returns the canonical ID of the owner's credential id, or
// NOT_FOUND, without opening its key.
func credentialRow(tx *gorm.DB, ownerID, id string) (string, error) {
	id, ok := canonicalID(id)
	if !ok {
		return "", errCredentialNotFound()
	}
	var ids []string
	if err := tx.Model(&CloudCredential{}).Where("id = ? AND user_id = ?", id, ownerID).Limit(1).Pluck("id", &ids).Error; err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", errCredentialNotFound()
	}
	return id, nil
}

func liveKeys(q *gorm.DB, now time.Time) *gorm.DB {
	return q.Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", now)
}

// validModelList checks allowedModels: null (any model) or 1–100 model IDs
// of 1–200 visible characters, duplicates dropped.
func validModelList(field string, in []string) (ModelList, error) {
	if in == nil {
		return nil, nil
	}
	if len(in) == 0 {
		return nil, apperr.Invalidf(field, "allowedModels must name at least one model; leave it out (null) to allow any model")
	}
	if len(in) > maxAllowedModels {
		return nil, apperr.Invalidf(field, "allowedModels may name at most %d models", maxAllowedModels)
	}
	out := make(ModelList, 0, len(in))
	seen := map[string]bool{}
	for _, m := range in {
		m = strings.TrimSpace(m)
		if m == "" || utf8.RuneCountInString(m) > maxModelIDLen || strings.IndexFunc(m, invisible) >= 0 {
			return nil, apperr.Invalidf(field, "each model ID must be 1–%d characters without spaces, control or invisible characters", maxModelIDLen)
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// invisible reports characters that hide or disguise text: controls, format
// characters (zero-width spaces, bidirectional overrides such as U+202E) and
// spaces.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r)
}

// HashRelaySecret is the stored form of a relay key: the hex SHA-256 of
// its value.
func HashRelaySecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// RelayKeys returns the owner's live relay keys, newest first; of one
// credential when credentialID is not empty. Only the owner's keys are ever
// listed; revoked and expired keys are not (their usage stays in their
// credential's totals).
func RelayKeys(ctx context.Context, db *gorm.DB, ownerID, credentialID string, now time.Time) ([]*RelayKey, error) {
	q := liveKeys(db.WithContext(ctx).Where("user_id = ?", ownerID), now)
	if credentialID != "" {
		q = q.Where("credential_id = ?", credentialID)
	}
	var out []*RelayKey
	if err := q.Order("created_at DESC, id").Find(&out).Error; err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeRelayKey ends the owner's relay key id at now and returns it; it
// stops working on the next request, on every replica. Only the owner may
// (NOT_FOUND for anyone else, as for a missing key). Revoking a revoked key
// changes nothing.
func RevokeRelayKey(ctx context.Context, db *gorm.DB, ownerID, id string, now time.Time) (*RelayKey, error) {
	id, ok := canonicalID(id)
	if !ok {
		return nil, errRelayKeyNotFound
	}
	var k RelayKey
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ? AND user_id = ?", id, ownerID).Take(&k).Error; err != nil {
			if notFound(err) {
				return errRelayKeyNotFound
			}
			return err
		}
		if k.RevokedAt != nil {
			return nil
		}
		k.RevokedAt = &now
		return tx.Model(&RelayKey{}).Where("id = ?", id).Update("revoked_at", now).Error
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

var errRelayKeyNotFound = apperr.Errorf(apperr.NotFound, "relay key not found")

// The refusals of a relay key that does not (or no longer) work. They are
// told apart: whoever presents the key already holds it.
var (
	ErrRelayKeyUnknown  = apperr.Errorf(apperr.Unauthenticated, "the relay key is not valid")
	ErrRelayKeyRevoked  = apperr.Errorf(apperr.Unauthenticated, "the relay key was revoked")
	ErrRelayKeyExpired  = apperr.Errorf(apperr.Unauthenticated, "the relay key has expired")
	ErrRelayKeyDisabled = apperr.Errorf(apperr.Unauthenticated, "the account that owns this relay key cannot use it at the moment")
)

// RelayKeyBySecret returns the relay key whose secret is presented and its
// credential, with the provider key opened (or marked NEEDS_REENTRY). The
// key must be live and its owner approved at now: a revoked or expired key
// and a disabled or pending owner are refused on the next request, on every
// replica — with the key and its credential returned beside the error, so
// that the refusal counts against them. An unknown key returns neither.
func RelayKeyBySecret(ctx context.Context, db *gorm.DB, secret string, now time.Time) (*RelayKey, *CloudCredential, error) {
	if !strings.HasPrefix(secret, RelayKeyPrefix) || len(secret) != len(RelayKeyPrefix)+base64.RawURLEncoding.EncodedLen(relayKeyRandom) {
		return nil, nil, ErrRelayKeyUnknown
	}
	var row struct {
		RelayKey
		Status UserStatus
	}
	err := db.WithContext(ctx).Table("relay_keys").
		Select("relay_keys.*, users.status AS status").
		Joins("JOIN users ON users.id = relay_keys.user_id").
		Where("relay_keys.secret_hash = ?", HashRelaySecret(secret)).Take(&row).Error
	if notFound(err) {
		return nil, nil, ErrRelayKeyUnknown
	}
	if err != nil {
		return nil, nil, err
	}
	k := &row.RelayKey
	c, err := credentialFor(db.WithContext(ctx), k.UserID, k.CredentialID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil, ErrRelayKeyUnknown // deleted meanwhile (the key cascades with it)
	}
	if err != nil {
		return nil, nil, err
	}
	// A key that exists but may not be used is refused with the key and
	// its credential known: the refusal counts as an error of that key, in
	// its credential's error shape.
	switch {
	case k.RevokedAt != nil:
		return k, c, ErrRelayKeyRevoked
	case !k.Live(now):
		return k, c, ErrRelayKeyExpired
	case row.Status != StatusApproved:
		return k, c, ErrRelayKeyDisabled
	}
	return k, c, nil
}

// CountRelayRequest counts one request of relay key keyID in the minute of
// now and refuses it with RATE_LIMITED (RetryAfter: until the next minute)
// once the minute holds more than perMinute. The count lives in the
// database, so every replica shares it. The window is the calendar minute:
// a burst straddling two minutes can pass up to twice perMinute.
func CountRelayRequest(ctx context.Context, db *gorm.DB, keyID string, perMinute int, now time.Time) error {
	minute := now.Unix() / 60
	var n int64
	err := db.WithContext(ctx).Raw(
		`INSERT INTO relay_rate (relay_key_id, minute, n) VALUES (?, ?, 1)
		 ON CONFLICT (relay_key_id, minute) DO UPDATE SET n = relay_rate.n + 1 RETURNING n`,
		keyID, minute).Scan(&n).Error
	if err != nil {
		return err
	}
	if n > int64(perMinute) {
		next := time.Unix((minute+1)*60, 0)
		return &apperr.Error{Code: apperr.RateLimited, RetryAfter: next.Sub(now),
			Message: fmt.Sprintf("this relay key allows %d requests per minute", perMinute)}
	}
	return nil
}

// PruneRelayRate deletes the per-minute counts older than before.
func PruneRelayRate(ctx context.Context, db *gorm.DB, before time.Time) error {
	return db.WithContext(ctx).Exec("DELETE FROM relay_rate WHERE minute < ?", before.Unix()/60).Error
}
