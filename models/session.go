package models

import (
	"context"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cloudkeys/apperr"
)

// Session is one sign-in of a user: a family of refresh tokens, each
// replacing the one before. Its ID is the sid claim of the access tokens
// issued with it, so revoking the session ends them too.
type Session struct {
	ID         string `gorm:"primaryKey"`
	UserID     string
	ClientAddr string
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
}

// RefreshToken is one issued refresh token, known only by its hash.
type RefreshToken struct {
	TokenHash  string `gorm:"primaryKey"`
	SessionID  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     *time.Time
	ReplacedBy *string
	Retried    bool
}

// SessionPolicy holds the lifetimes of refresh tokens.
type SessionPolicy struct {
	// TTL is how long a refresh token (and so its session) lives unused.
	TTL time.Duration
	// Grace is how long after a rotation the token just replaced may be
	// presented once more (a client that lost the response) without being
	// taken for a stolen one. Zero disables the grace.
	Grace time.Duration
}

// CreateSession starts a session for the user at now with its first
// refresh token, given by hash.
func CreateSession(ctx context.Context, db *gorm.DB, userID, clientAddr, tokenHash string, p SessionPolicy, now time.Time) (*Session, *RefreshToken, error) {
	s := &Session{ID: uuid.NewString(), UserID: userID, ClientAddr: clientAddr,
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(p.TTL)}
	t := &RefreshToken{TokenHash: tokenHash, SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(s).Error; err != nil {
			return err
		}
		return tx.Create(t).Error
	})
	if err != nil {
		return nil, nil, err
	}
	return s, t, nil
}

var errRefreshInvalid = apperr.Errorf(apperr.Unauthenticated, "the refresh token is invalid or expired; sign in again")

// RotateRefreshToken exchanges the refresh token with hash presented for a
// new one with hash next, in the same session, at now, and returns the
// session's user as it is now. Anyone holding a refresh token may.
//
// A token that was already used is taken as stolen: its whole session is
// revoked and the answer is UNAUTHENTICATED — except the token replaced
// last, which may be presented once more within p.Grace. An expired or
// revoked session is refused (UNAUTHENTICATED), and so is a user who may
// not sign in (ACCOUNT_PENDING, ACCOUNT_DISABLED), before anything is
// written: the token stays usable should the account be approved again.
// Rotations of one token run one at a time (a row lock on PostgreSQL,
// BEGIN IMMEDIATE on SQLite), so two concurrent ones never both win.
func RotateRefreshToken(ctx context.Context, db *gorm.DB, presented, next string, clientAddr string, p SessionPolicy, now time.Time) (*User, *Session, *RefreshToken, error) {
	var (
		user    User
		session Session
		issued  *RefreshToken
		refusal error
	)
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var old RefreshToken
		q := tx
		if isPostgres(tx) {
			q = tx.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Where("token_hash = ?", presented).Take(&old).Error; err != nil {
			if notFound(err) {
				refusal = errRefreshInvalid
				return nil
			}
			return err
		}
		if err := tx.Where("id = ?", old.SessionID).Take(&session).Error; err != nil {
			return err
		}
		if session.RevokedAt != nil || !now.Before(session.ExpiresAt) || !now.Before(old.ExpiresAt) {
			refusal = errRefreshInvalid
			return nil
		}
		retry := false
		if old.UsedAt != nil {
			ok, err := withinGrace(tx, &old, now, p.Grace)
			if err != nil {
				return err
			}
			if !ok {
				refusal = apperr.Errorf(apperr.Unauthenticated, "this refresh token was already used; the session was signed out for safety — sign in again")
				return tx.Model(&Session{}).Where("id = ?", session.ID).Update("revoked_at", now).Error
			}
			retry = true
		}
		if err := tx.Where("id = ?", session.UserID).Take(&user).Error; err != nil {
			return err
		}
		if err := CanSignIn(&user); err != nil {
			refusal = err
			return nil
		}
		if retry {
			// The lost response's token is retired unused; the retry gets
			// a fresh one instead.
			if err := tx.Model(&RefreshToken{}).Where("token_hash = ?", *old.ReplacedBy).
				Update("used_at", now).Error; err != nil {
				return err
			}
			if err := tx.Model(&RefreshToken{}).Where("token_hash = ?", old.TokenHash).
				Updates(map[string]any{"retried": true, "replaced_by": next}).Error; err != nil {
				return err
			}
		} else {
			res := tx.Model(&RefreshToken{}).Where("token_hash = ? AND used_at IS NULL", old.TokenHash).
				Updates(map[string]any{"used_at": now, "replaced_by": next})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 { // a concurrent rotation won the race
				refusal = errRefreshInvalid
				return nil
			}
		}
		session.LastUsedAt, session.ExpiresAt = now, now.Add(p.TTL)
		if clientAddr != "" {
			session.ClientAddr = clientAddr
		}
		if err := tx.Model(&Session{}).Where("id = ?", session.ID).Updates(map[string]any{
			"last_used_at": session.LastUsedAt, "expires_at": session.ExpiresAt, "client_addr": session.ClientAddr,
		}).Error; err != nil {
			return err
		}
		issued = &RefreshToken{TokenHash: next, SessionID: session.ID, CreatedAt: now, ExpiresAt: session.ExpiresAt}
		return tx.Create(issued).Error
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if refusal != nil {
		return nil, nil, nil, refusal
	}
	return &user, &session, issued, nil
}

// withinGrace reports whether a used token may be presented once more: it
// was used at most grace ago, not retried before, and the token that
// replaced it has not been used yet (it is the newest of its session).
func withinGrace(tx *gorm.DB, old *RefreshToken, now time.Time, grace time.Duration) (bool, error) {
	if grace <= 0 || old.Retried || old.ReplacedBy == nil || now.Sub(*old.UsedAt) > grace {
		return false, nil
	}
	var successor RefreshToken
	err := tx.Where("token_hash = ?", *old.ReplacedBy).Take(&successor).Error
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return successor.UsedAt == nil, nil
}

// CanSignIn refuses an account that may not sign in.
func CanSignIn(u *User) error {
	switch u.Status {
	case StatusApproved:
		return nil
	case StatusPending:
		return apperr.Errorf(apperr.AccountPending, "this account is waiting for an administrator's approval")
	default:
		return apperr.Errorf(apperr.AccountDisabled, "this account has been disabled")
	}
}

// UserForSession loads, in one query, the user an access token names and
// checks that the token's session is still live at now. It returns
// ErrNoSession when the user or the session is gone, revoked or expired.
func UserForSession(ctx context.Context, db *gorm.DB, userID, sessionID string, now time.Time) (*User, error) {
	if _, err := uuid.Parse(userID); err != nil {
		return nil, ErrNoSession
	}
	if _, err := uuid.Parse(sessionID); err != nil {
		return nil, ErrNoSession
	}
	var u User
	err := db.WithContext(ctx).Table("users").Select("users.*").
		Joins("JOIN sessions ON sessions.user_id = users.id").
		Where("users.id = ? AND sessions.id = ? AND sessions.revoked_at IS NULL AND sessions.expires_at > ?",
			userID, sessionID, now).
		Take(&u).Error
	if notFound(err) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// SessionOfToken returns the session of a refresh token given by hash.
func SessionOfToken(ctx context.Context, db *gorm.DB, tokenHash string) (*Session, error) {
	var s Session
	err := db.WithContext(ctx).Table("sessions").Select("sessions.*").
		Joins("JOIN refresh_tokens ON refresh_tokens.session_id = sessions.id").
		Where("refresh_tokens.token_hash = ?", tokenHash).Take(&s).Error
	if notFound(err) {
		return nil, apperr.Errorf(apperr.NotFound, "session not found")
	}
	return &s, err
}

// RevokeSession ends one session of the user; a session of another user is
// left alone.
func RevokeSession(ctx context.Context, db *gorm.DB, userID, sessionID string) error {
	return db.WithContext(ctx).Model(&Session{}).
		Where("id = ? AND user_id = ? AND revoked_at IS NULL", sessionID, userID).
		Update("revoked_at", Now()).Error
}

// RevokeSessions ends every session of the user except the one named by
// keep (empty: all of them).
func RevokeSessions(ctx context.Context, db *gorm.DB, userID, keep string) error {
	q := db.WithContext(ctx).Model(&Session{}).Where("user_id = ? AND revoked_at IS NULL", userID)
	if keep != "" {
		q = q.Where("id <> ?", keep)
	}
	return q.Update("revoked_at", Now()).Error
}
