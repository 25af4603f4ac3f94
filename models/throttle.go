package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// LoginLimits bound failed sign-ins within a sliding window: at most
// PerEmail per normalised email and PerAddr per client address. Zero turns
// a limit off. They live in the database, so every replica counts the same
// failures.
type LoginLimits struct {
	PerEmail int
	PerAddr  int
	Window   time.Duration
}

// The scopes of login_failures.
const (
	scopeEmail = "email"
	scopeAddr  = "addr"
)

// loginFailure is one counted sign-in attempt: a failed one, or one whose
// password is still being checked (InFlight).
type loginFailure struct {
	ID        int64 `gorm:"primaryKey"`
	Scope     string
	Key       string
	CreatedAt time.Time
	InFlight  bool
}

// inFlightRetry is the RetryAfter of a refusal caused by attempts still in
// flight: they settle within seconds (a verify, or the hasher's bounded
// wait), and only those that fail go on counting. One in flight for longer
// (a process that died mid-check) is taken for a failure.
const (
	inFlightRetry = time.Second
	inFlightMax   = time.Minute
)

func (loginFailure) TableName() string { return "login_failures" }

// LoginAttempt is a sign-in attempt admitted by BeginLogin. It counts
// against the limits from the moment it is admitted, so that concurrent
// attempts cannot all slip under them, until Failed, Passed or Abandon
// says what became of it.
type LoginAttempt struct {
	db    *gorm.DB
	email string
	ids   []int64
}

// BeginLogin admits a sign-in attempt for the (normalised) email from the
// client address addr at now — before any password is hashed — or refuses it
// with RATE_LIMITED when the email or the address already has its limit of
// attempts within the window. A refused attempt is not counted. RetryAfter
// is the time until enough counted failures leave the window for one more
// attempt (with exactly the limit counted: until the oldest leaves), or a
// second when attempts still in flight fill the limit. addr may be empty (no
// address is known); it is then not counted.
func BeginLogin(ctx context.Context, db *gorm.DB, email, addr string, l LoginLimits, now time.Time) (*LoginAttempt, error) {
	a := &LoginAttempt{db: db, email: failureKey(email)}
	scopes := []struct {
		scope, key string
		max        int
	}{{scopeEmail, a.email, l.PerEmail}, {scopeAddr, failureKey(addr), l.PerAddr}}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var wait time.Duration
		for _, s := range scopes {
			if s.max <= 0 || s.scope == scopeAddr && s.key == "" {
				continue
			}
			// Attempts on one key are admitted one at a time (the email's
			// lock always before the address's: no deadlock).
			if err := lock(tx, "login-"+s.scope+":"+s.key); err != nil {
				return err
			}
			counted := tx.Model(&loginFailure{}).Where("scope = ? AND key = ? AND created_at > ?", s.scope, s.key, now.Add(-l.Window))
			var nth []time.Time
			err := counted.Session(&gorm.Session{}).Order("created_at DESC").Offset(s.max-1).Limit(1).Pluck("created_at", &nth).Error
			if err != nil {
				return err
			}
			if len(nth) == 0 {
				continue // under the limit
			}
			// nth[0] is the limit-th newest attempt: once it leaves the
			// window, fewer than the limit remain — or sooner, when some
			// are still in flight and pass.
			var inFlight int64
			err = counted.Session(&gorm.Session{}).Where("in_flight AND created_at > ?", now.Add(-inFlightMax)).Count(&inFlight).Error
			if err != nil {
				return err
			}
			if inFlight > 0 {
				wait = max(wait, inFlightRetry)
			} else {
				wait = max(wait, nth[0].Add(l.Window).Sub(now))
			}
		}
		if wait > 0 {
			return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait,
				Message: "too many sign-in attempts; try again later"}
		}
		rows := make([]loginFailure, 0, 2)
		for _, s := range scopes {
			if s.scope == scopeEmail || s.key != "" {
				rows = append(rows, loginFailure{Scope: s.scope, Key: s.key, CreatedAt: now, InFlight: true})
			}
		}
		if err := tx.Create(&rows).Error; err != nil {
			return err
		}
		for _, r := range rows {
			a.ids = append(a.ids, r.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Failed records that the attempt's password was wrong: it goes on
// counting until it leaves the window.
func (a *LoginAttempt) Failed(ctx context.Context) error {
	return a.db.WithContext(ctx).Model(&loginFailure{}).Where("id IN ?", a.ids).Update("in_flight", false).Error
}

// Passed records that the attempt's password was right: the email's
// failures are forgiven, and the attempt no longer counts against the
// address either.
func (a *LoginAttempt) Passed(ctx context.Context) error {
	return a.db.WithContext(ctx).
		Where("id IN ? OR (scope = ? AND key = ?)", a.ids, scopeEmail, a.email).
		Delete(&loginFailure{}).Error
}

// Abandon records that the attempt reached no verdict (the server was busy,
// or failed): it no longer counts.
func (a *LoginAttempt) Abandon(ctx context.Context) error {
	return a.db.WithContext(ctx).Where("id IN ?", a.ids).Delete(&loginFailure{}).Error
}

// PruneLoginFailures deletes the failures older than before, which no
// window counts any more, and returns how many it deleted.
func PruneLoginFailures(ctx context.Context, db *gorm.DB, before time.Time) (int64, error) {
	res := db.WithContext(ctx).Where("created_at < ?", before).Delete(&loginFailure{})
	return res.RowsAffected, res.Error
}

// maxFailureKey is the longest key stored as it is: the longest email.
const maxFailureKey = 254

// failureKey is how an email or address is stored in login_failures: as it
// is, or, when no account could have it (too long, not UTF-8, a NUL byte
// that PostgreSQL refuses), as a hash of it.
func failureKey(s string) string {
	if len(s) <= maxFailureKey && utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}
