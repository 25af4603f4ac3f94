package models

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// ErrRefreshInvalid answers a refresh token that is unknown, expired or of
// a revoked session.
var ErrRefreshInvalid = apperr.Errorf(apperr.Unauthenticated, "the refresh token is invalid or expired; sign in again")

// ErrRefreshReused answers a refresh token presented again after it was
// used (outside the grace); its session has been revoked. Errors wrapping
// it name the session.
var ErrRefreshReused = apperr.Errorf(apperr.Unauthenticated, "this refresh token was already used; the session was signed out for safety — sign in again")

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
				refusal = ErrRefreshInvalid
				return nil
			}
			return err
		}
		if err := tx.Where("id = ?", old.SessionID).Take(&session).Error; err != nil {
			return err
		}
		if session.RevokedAt != nil || !now.Before(session.ExpiresAt) || !now.Before(old.ExpiresAt) {
			refusal = ErrRefreshInvalid
			return nil
		}
		retry := false
		if old.UsedAt != nil {
			ok, err := withinGrace(tx, &old, now, p.Grace)
			if err != nil {
				return err
			}
			if !ok {
				refusal = fmt.Errorf("refresh token reused in session %s: %w", session.ID, ErrRefreshReused)
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
				refusal = ErrRefreshInvalid
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

// SessionCheck loads, in one query, the user an access token names and
// checks that the token's session is still live: the query behind every
// authenticated request. It runs as a database/sql prepared statement
// rather than through GORM, whose statement building and reflective
// scanning would double its cost (BENCHMARKS.md); it is safe for
// concurrent use.
type SessionCheck struct {
	db    *gorm.DB
	query string
	mu    sync.Mutex // held while preparing
	stmt  atomic.Pointer[sql.Stmt]
}

// sessionCheckQuery names every column of User, in the order scanned.
const sessionCheckQuery = `SELECT users.id, users.email, users.password_hash, users.is_admin, users.status,
  users.created_at, users.updated_at, users.approved_at, users.approved_by
FROM users JOIN sessions ON sessions.user_id = users.id
WHERE users.id = ? AND sessions.id = ? AND sessions.revoked_at IS NULL AND sessions.expires_at > ?`

// NewSessionCheck returns the session check of db.
func NewSessionCheck(db *gorm.DB) *SessionCheck {
	q := sessionCheckQuery
	if isPostgres(db) {
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	return &SessionCheck{db: db, query: q}
}

// UserForSession returns the user userID if the session sessionID is
// theirs and live (not revoked, not expired) at now. It returns
// ErrNoSession when the user or the session is gone, revoked or expired.
func (c *SessionCheck) UserForSession(ctx context.Context, userID, sessionID string, now time.Time) (*User, error) {
	if _, err := uuid.Parse(userID); err != nil {
		return nil, ErrNoSession
	}
	if _, err := uuid.Parse(sessionID); err != nil {
		return nil, ErrNoSession
	}
	stmt, err := c.statement(ctx)
	if err != nil {
		return nil, err
	}
	var u User
	err = stmt.QueryRowContext(ctx, userID, sessionID, now).Scan(&u.ID, &u.Email, &u.PasswordHash,
		&u.IsAdmin, &u.Status, &u.CreatedAt, &u.UpdatedAt, &u.ApprovedAt, &u.ApprovedByID)
	if notFound(err) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// statement returns the prepared statement, preparing it on first use (and
// again after a failure: a database briefly down is not remembered).
func (c *SessionCheck) statement(ctx context.Context) (*sql.Stmt, error) {
	if stmt := c.stmt.Load(); stmt != nil {
		return stmt, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if stmt := c.stmt.Load(); stmt != nil {
		return stmt, nil
	}
	sqlDB, err := c.db.DB()
	if err != nil {
		return nil, err
	}
	stmt, err := sqlDB.PrepareContext(ctx, c.query)
	if err != nil {
		return nil, fmt.Errorf("prepare the session check: %w", err)
	}
	c.stmt.Store(stmt)
	return stmt, nil
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

// PruneSessions deletes the sessions (and, by cascade, their refresh
// tokens) that expired or were revoked before the given time.
func PruneSessions(ctx context.Context, db *gorm.DB, before time.Time) (int64, error) {
	res := db.WithContext(ctx).Where("expires_at < ? OR revoked_at < ?", before, before).Delete(&Session{})
	return res.RowsAffected, res.Error
}
