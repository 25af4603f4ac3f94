package models

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

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
	UserAgent  *string // as the client sent it at sign-in, clipped (MaxUserAgent)
	CreatedAt  time.Time
	LastUsedAt time.Time // moves at sign-in and refresh, not on every request
	ExpiresAt  time.Time
	RevokedAt  *time.Time
}

// RefreshToken is one issued refresh token, known only by its hash.
type RefreshToken struct {
	TokenHash string `gorm:"primaryKey"`
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time // the first use
	// Uses counts the uses: the first, then each within the grace window
	// (at most MaxGraceUses in all).
	Uses int
}

// SessionPolicy holds the lifetimes of refresh tokens.
type SessionPolicy struct {
	// TTL is how long a refresh token (and so its session) lives unused.
	TTL time.Duration
	// Grace is how long after its first use a refresh token may still be
	// used (by other tabs refreshing at the same moment, or a client that
	// lost the response) without being taken for a stolen one. Zero
	// disables the grace: a token is strictly single-use.
	Grace time.Duration
}

// MaxGraceUses is how many uses of one refresh token within the grace
// window get working tokens (SPEC §9: several tabs refreshing at once).
const MaxGraceUses = 10

// MaxLiveSessions is how many live sessions one user may have: signing in
// beyond it ends the least recently used.
const MaxLiveSessions = 50

// MaxUserAgent bounds the user agent kept with a session, in bytes.
const MaxUserAgent = 256

// CreateSession starts a session for the user at now with its first
// refresh token, given by hash, and ends the least recently used of the
// user's live sessions beyond MaxLiveSessions.
func CreateSession(ctx context.Context, db *gorm.DB, userID, clientAddr, userAgent, tokenHash string, p SessionPolicy, now time.Time) (*Session, *RefreshToken, error) {
	s := &Session{ID: uuid.NewString(), UserID: userID, ClientAddr: clientAddr, UserAgent: clipUserAgent(userAgent),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(p.TTL)}
	t := &RefreshToken{TokenHash: tokenHash, SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lock(tx, "sessions:"+userID); err != nil {
			return err
		}
		var oldest []string
		if err := liveSessions(tx, userID, now).Order("last_used_at DESC, id").Offset(MaxLiveSessions-1).
			Pluck("id", &oldest).Error; err != nil {
			return err
		}
		if len(oldest) > 0 {
			if err := tx.Model(&Session{}).Where("id IN ?", oldest).Update("revoked_at", now).Error; err != nil {
				return err
			}
		}
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

func liveSessions(tx *gorm.DB, userID string, now time.Time) *gorm.DB {
	return tx.Model(&Session{}).Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, now)
}

// clipUserAgent keeps at most MaxUserAgent bytes of a user agent, of
// printable characters only (whole runes); "" is nil.
func clipUserAgent(ua string) *string {
	var b strings.Builder
	for _, r := range ua {
		if !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > MaxUserAgent {
			break
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return nil
	}
	out := b.String()
	return &out
}

// The refusals of refreshToken, by reason.
var (
	// ErrRefreshInvalid answers a refresh token that is unknown, or of a
	// session that was revoked.
	ErrRefreshInvalid = apperr.Unauthenticatedf(apperr.ReasonRefreshInvalid, "the refresh token is not valid; sign in again")
	// ErrRefreshExpired answers a refresh token (or session) past its lifetime.
	ErrRefreshExpired = apperr.Unauthenticatedf(apperr.ReasonRefreshExpired, "the refresh token has expired; sign in again")
	// ErrRefreshReused answers a refresh token presented again after its
	// grace window; its session has been revoked. Errors wrapping it name
	// the session.
	ErrRefreshReused = apperr.Unauthenticatedf(apperr.ReasonRefreshReused, "this refresh token was already used; the session was signed out for safety — sign in again")
	// ErrRefreshOverused answers a use beyond MaxGraceUses within the
	// window; the session goes on.
	ErrRefreshOverused = apperr.Unauthenticatedf(apperr.ReasonRefreshReused, "this refresh token was used too many times at once; use the refresh token of one of the earlier answers")
)

// RefreshReusedError is the refusal of a refresh token used after its
// grace window: it names the session it revoked and its user. It is
// ErrRefreshReused to errors.Is and apperr.As.
type RefreshReusedError struct{ SessionID, UserID string }

func (e *RefreshReusedError) Error() string {
	return "refresh token reused in session " + e.SessionID + ": " + ErrRefreshReused.Error()
}

func (e *RefreshReusedError) Unwrap() error { return ErrRefreshReused }

// RotateRefreshToken exchanges the refresh token with hash presented for a
// new one with hash next, in the same session, at now, and returns the
// session's user as it is now. Anyone holding a refresh token may.
//
// A token is meant for one use, but several tabs of one dashboard refresh
// at the same moment with the same token: every use within p.Grace of the
// first, up to MaxGraceUses in all, gets a working refresh token of its
// own (none retires another) and none ends the session; a further use
// within the window is refused (REFRESH_TOKEN_REUSED) and the session goes
// on. A use after the window is taken as theft: the whole session is
// revoked. An expired or revoked session is refused, and so is a user who
// may not sign in (ACCOUNT_PENDING, ACCOUNT_DISABLED), before anything is
// written: the token stays usable should the account be approved again.
// Uses of one token run one at a time (a row lock on PostgreSQL, BEGIN
// IMMEDIATE on SQLite), so the count is exact.
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
		switch {
		case session.RevokedAt != nil:
			refusal = ErrRefreshInvalid
			return nil
		case !now.Before(session.ExpiresAt) || !now.Before(old.ExpiresAt):
			refusal = ErrRefreshExpired
			return nil
		}
		if old.UsedAt != nil && (p.Grace <= 0 || now.Sub(*old.UsedAt) > p.Grace) {
			refusal = &RefreshReusedError{SessionID: session.ID, UserID: session.UserID}
			return tx.Model(&Session{}).Where("id = ?", session.ID).Update("revoked_at", now).Error
		}
		if old.Uses >= MaxGraceUses {
			refusal = ErrRefreshOverused
			return nil
		}
		if err := tx.Where("id = ?", session.UserID).Take(&user).Error; err != nil {
			return err
		}
		if err := CanSignIn(&user); err != nil {
			refusal = err
			return nil
		}
		used := map[string]any{"uses": gorm.Expr("uses + 1")}
		if old.UsedAt == nil {
			used["used_at"] = now
		}
		res := tx.Model(&RefreshToken{}).Where("token_hash = ? AND uses = ?", old.TokenHash, old.Uses).Updates(used)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 { // cannot happen under the lock; refuse rather than overcount
			refusal = ErrRefreshInvalid
			return nil
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

// LiveSessions returns the user's live sessions at now, most recently used
// first. Only the user may see them.
func LiveSessions(ctx context.Context, db *gorm.DB, userID string, now time.Time) ([]Session, error) {
	var out []Session
	err := liveSessions(db.WithContext(ctx), userID, now).Order("last_used_at DESC, id").
		Limit(MaxLiveSessions).Find(&out).Error
	return out, err
}

// EndSession revokes one live session of the user: it ends its access and
// refresh tokens on their next use. Only the user may; a session that is
// not theirs, or not live, is NOT_FOUND.
func EndSession(ctx context.Context, db *gorm.DB, userID, sessionID string, now time.Time) error {
	if _, err := uuid.Parse(sessionID); err != nil {
		return errSessionNotFound
	}
	res := liveSessions(db.WithContext(ctx), userID, now).Where("id = ?", sessionID).Update("revoked_at", now)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return errSessionNotFound
	}
	return nil
}

var errSessionNotFound = apperr.Errorf(apperr.NotFound, "session not found")
