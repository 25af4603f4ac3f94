// Package auth decides who the caller is and what they may do: password
// hashing (Argon2id), access tokens (JWT) and refresh tokens (sessions), the
// @auth directive with its HTTP middleware, and login throttling.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"cloudkeys/apperr"
	"cloudkeys/audit"
	"cloudkeys/models"
)

// Payload is what login and refreshToken return (GraphQL AuthPayload).
type Payload struct {
	AccessToken      string
	TokenType        string
	ExpiresAt        time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	User             *models.User
}

// Service holds the account operations that involve secrets: registering,
// signing in and out, refreshing, changing and resetting passwords, and
// the login throttle.
type Service struct {
	db           *gorm.DB
	sessionCheck *models.SessionCheck
	hasher       *Hasher
	tokens       *Tokens
	sessions     models.SessionPolicy
	limits       models.LoginLimits
	clock        func() time.Time
	firstAdmin   bool
	registration models.RegistrationLimit
	closed       bool // CLOUDKEYS_REGISTRATION=closed
	audit        *audit.Log
	observer     Observer // nil: none
	log          *slog.Logger
	lastPrune    atomic.Int64 // when failures were last pruned (UnixNano)
}

// Options are the account service's policies.
type Options struct {
	Sessions models.SessionPolicy
	Login    models.LoginLimits
	// Now is the clock of sessions and the login throttle (nil: the system
	// clock). The access tokens' clock is the Tokens'.
	Now func() time.Time
	// FirstUserAdmin makes the first account registered an approved admin
	// (SPEC §3: in development; in production only when configured).
	FirstUserAdmin bool
	// Registration limits register per client address; RegistrationClosed
	// refuses it altogether (only admins create accounts, with CreateUser).
	Registration       models.RegistrationLimit
	RegistrationClosed bool
	// Audit records the security events (audited.go); required.
	Audit *audit.Log
	// Observer is told of sign-ins and throttle refusals, for metrics
	// (observe.go); nil: nobody.
	Observer Observer
}

// NewService returns the account service.
func NewService(db *gorm.DB, hasher *Hasher, tokens *Tokens, o Options, log *slog.Logger) *Service {
	clock := o.Now
	if clock == nil {
		clock = time.Now
	}
	return &Service{db: db, sessionCheck: models.NewSessionCheck(db), hasher: hasher, tokens: tokens,
		sessions: o.Sessions, limits: o.Login, clock: clock, firstAdmin: o.FirstUserAdmin,
		registration: o.Registration, closed: o.RegistrationClosed, audit: o.Audit, observer: o.Observer, log: log}
}

// now is the service's clock at the precision the database keeps.
func (s *Service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// Hasher returns the password hasher.
func (s *Service) Hasher() *Hasher { return s.hasher }

// Register creates an account (anyone may, unless registration is closed:
// FORBIDDEN). With Options.FirstUserAdmin the first account is an approved
// admin; every other waits for approval. Each attempt counts against its
// client address (RATE_LIMITED past Options.Registration) before any
// password is hashed, and hashes in the account pool of the Hasher, never
// in the slots of signing in.
func (s *Service) Register(ctx context.Context, email, password string) (*models.User, error) {
	if s.closed {
		return nil, errRegistrationClosed
	}
	if err := models.AdmitRegistration(ctx, s.db, throttleAddr(ClientAddr(ctx)), s.registration, s.now()); err != nil {
		s.observeRefusal(LimitRegister, err)
		return nil, err
	}
	hash, err := s.newAccountHash(ctx, email, password)
	if err != nil {
		return nil, err
	}
	return s.insertUser(ctx, models.NewUser{Email: email, PasswordHash: hash, FirstUserAdmin: s.firstAdmin},
		func(u *models.User) audit.Event {
			return userEvent(audit.UserRegistered, u.ID, u.ID, "status="+string(u.Status)+adminDetail(u))
		})
}

// insertUser stores a new account and records its event in one transaction.
func (s *Service) insertUser(ctx context.Context, n models.NewUser, event func(*models.User) audit.Event) (*models.User, error) {
	var u *models.User
	err := s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		var err error
		if u, err = models.InsertUser(ctx, tx, n); err != nil {
			return audit.Event{}, err
		}
		return event(u), nil
	})
	return u, err
}

func adminDetail(u *models.User) string {
	if u.IsAdmin {
		return " admin"
	}
	return ""
}

var errRegistrationClosed = apperr.Errorf(apperr.Forbidden, "registration is closed on this server: ask an administrator for an account")

// CreateUser creates an approved account on behalf of admin (createUser),
// whether or not registration is open. Only approved admins may.
func (s *Service) CreateUser(ctx context.Context, admin *models.User, email, password string) (*models.User, error) {
	if err := requireAdmin(admin); err != nil {
		return nil, err
	}
	hash, err := s.newAccountHash(ctx, email, password)
	if err != nil {
		return nil, err
	}
	return s.insertUser(ctx, models.NewUser{Email: email, PasswordHash: hash, Approved: true, ApprovedBy: admin.ID},
		func(u *models.User) audit.Event {
			return userEvent(audit.UserCreated, admin.ID, u.ID, "status="+string(u.Status))
		})
}

// newAccountHash validates a new account's email and password and hashes
// the password in the account pool.
func (s *Service) newAccountHash(ctx context.Context, email, password string) (string, error) {
	if err := models.ValidateEmail("input.email", models.NormalizeEmail(email)); err != nil {
		return "", err
	}
	if err := ValidatePassword("input.password", password); err != nil {
		return "", err
	}
	return s.hasher.Accounts().Hash(ctx, password)
}

// errCredentials is the one answer to a wrong email or a wrong password.
var errCredentials = apperr.Unauthenticatedf(apperr.ReasonBadCredentials, "wrong email or password")

// Login signs a user in from clientAddr and starts a session; anyone may
// try. The attempt goes through the login throttle first (RATE_LIMITED,
// before any password is hashed, past the limits). A wrong email and a
// wrong password get the same answer after the same work (one Argon2id
// verify) and both count as failures; a pending or disabled account is told
// so only once the password is right.
func (s *Service) Login(ctx context.Context, email, password, clientAddr string) (_ *Payload, err error) {
	defer func() { s.observeSignIn(err) }()
	email = models.NormalizeEmail(email)
	var (
		user   *models.User
		rehash bool
	)
	ok, err := s.throttled(ctx, audit.SignIn, email, clientAddr, func() (bool, error) {
		var err error
		if user, err = s.userByEmail(ctx, email); err != nil {
			return false, err
		}
		if user == nil {
			return false, s.hasher.VerifyDummy(ctx, password)
		}
		ok, weak, err := s.hasher.Verify(ctx, password, user.PasswordHash)
		rehash = weak
		return ok, err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, refused(errCredentials, s.signInRefused(ctx, audit.SignIn, email, user, audit.Failed, errCredentials))
	}
	if err := models.CanSignIn(user); err != nil {
		return nil, refused(err, s.signInRefused(ctx, audit.SignIn, email, user, audit.Refused, err))
	}
	if rehash {
		s.rehash(ctx, user, password)
	}
	refresh, hash := newRefreshToken()
	var (
		session *models.Session
		token   *models.RefreshToken
	)
	err = s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		session, token, err = models.CreateSession(ctx, tx, user.ID, clientAddr, UserAgent(ctx), hash, s.sessions, s.now())
		if err != nil {
			return audit.Event{}, err
		}
		return sessionEvent(audit.SignIn, user.ID, session.ID, ""), nil
	})
	if err != nil {
		return nil, err
	}
	return s.payload(user, session.ID, refresh, token.ExpiresAt)
}

// userByEmail returns the account of a normalised email, or nil if there is
// none — without asking the database about a value no account can have.
func (s *Service) userByEmail(ctx context.Context, email string) (*models.User, error) {
	if models.ValidateEmail("email", email) != nil {
		return nil, nil
	}
	user, err := models.UserByEmail(ctx, s.db, email)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return user, err
}

// rehash upgrades a hash made with weaker parameters. A failure is logged,
// not returned: the sign-in itself succeeded.
func (s *Service) rehash(ctx context.Context, user *models.User, password string) {
	hash, err := s.hasher.Hash(ctx, password)
	if err == nil {
		err = models.ReplacePasswordHash(ctx, s.db, user.ID, user.PasswordHash, hash)
	}
	if err != nil {
		s.log.WarnContext(ctx, "password re-hash failed", "user_id", user.ID, "error", err)
		return
	}
	user.PasswordHash = hash
	s.log.InfoContext(ctx, "password re-hashed with stronger parameters", "user_id", user.ID)
}

// Refresh rotates a refresh token (anyone holding one may) and returns new
// tokens for the same session.
func (s *Service) Refresh(ctx context.Context, refreshToken, clientAddr string) (*Payload, error) {
	presented, ok := hashRefreshToken(refreshToken)
	if !ok {
		return nil, models.ErrRefreshInvalid
	}
	next, nextHash := newRefreshToken()
	user, session, token, err := models.RotateRefreshToken(ctx, s.db, presented, nextHash, clientAddr, s.sessions, s.now())
	if reused, ok := errors.AsType[*models.RefreshReusedError](err); ok {
		s.log.WarnContext(ctx, "refresh token reused: session revoked", "detail", err.Error())
		// The actor is whoever presented the token (the owner or a thief):
		// unknown. The target is the account, whose session was revoked.
		e := userEvent(audit.RefreshTokenReused, "", reused.UserID, "session "+reused.SessionID+" revoked")
		e.Outcome = audit.Refused
		return nil, refused(err, s.audit.Append(ctx, nil, e))
	}
	if err != nil {
		return nil, err
	}
	return s.payload(user, session.ID, next, token.ExpiresAt)
}

func (s *Service) payload(user *models.User, sessionID, refresh string, refreshExp time.Time) (*Payload, error) {
	access, exp, err := s.tokens.Issue(user.ID, sessionID)
	if err != nil {
		return nil, err
	}
	return &Payload{AccessToken: access, TokenType: "Bearer", ExpiresAt: exp,
		RefreshToken: refresh, RefreshExpiresAt: refreshExp, User: user}, nil
}

// Logout ends the caller's current session and, when refreshToken is given
// and belongs to the caller, that token's session; everywhere ends all of the
// caller's sessions. Only the signed-in caller may, for their own sessions.
func (s *Service) Logout(ctx context.Context, c Caller, refreshToken *string, everywhere bool) error {
	user, sessionID := c.User, c.SessionID
	return s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		if everywhere {
			return sessionEvent(audit.SignedOut, user.ID, sessionID, "everywhere"), models.RevokeSessions(ctx, tx, user.ID, "")
		}
		if err := models.RevokeSession(ctx, tx, user.ID, sessionID); err != nil {
			return audit.Event{}, err
		}
		e := sessionEvent(audit.SignedOut, user.ID, sessionID, "")
		if refreshToken != nil && *refreshToken != "" {
			if hash, ok := hashRefreshToken(*refreshToken); ok {
				session, err := models.SessionOfToken(ctx, tx, hash)
				if err == nil && session.UserID == user.ID && session.ID != sessionID {
					e.Detail = "and session " + session.ID
					return e, models.RevokeSession(ctx, tx, user.ID, session.ID)
				}
				if err != nil && apperr.CodeOf(err) != apperr.NotFound {
					return audit.Event{}, err
				}
			}
		}
		return e, nil
	})
}

// ChangePassword replaces the caller's password after checking the current
// one, and ends every other session of the caller. Only the signed-in
// caller may, for their own account. The check of the current password goes
// through the login throttle, as a sign-in would: a stolen access token
// does not buy unlimited guesses.
func (s *Service) ChangePassword(ctx context.Context, c Caller, current, next string) error {
	user := c.User
	if err := ValidatePassword("newPassword", next); err != nil {
		return err
	}
	ok, err := s.throttled(ctx, audit.PasswordChanged, user.Email, ClientAddr(ctx), func() (bool, error) {
		ok, _, err := s.hasher.Verify(ctx, current, user.PasswordHash)
		return ok, err
	})
	if err != nil {
		return err
	}
	if !ok {
		// Not UNAUTHENTICATED: a typo must not sign the client out.
		wrong := apperr.Invalidf("currentPassword", "the current password is wrong")
		e := userEvent(audit.PasswordChanged, user.ID, user.ID, "wrong current password")
		e.Outcome = audit.Failed
		return refused(wrong, s.audit.Append(ctx, nil, e))
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	return s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		if err := models.SetPasswordHash(ctx, tx, user.ID, hash); err != nil {
			return audit.Event{}, err
		}
		return userEvent(audit.PasswordChanged, user.ID, user.ID, "other sessions ended"), models.RevokeSessions(ctx, tx, user.ID, c.SessionID)
	})
}

// refreshTokenBytes is the randomness of a refresh token: 256 bits.
const refreshTokenBytes = 32

// newRefreshToken returns a new opaque refresh token and the hash stored for it.
func newRefreshToken() (token, hash string) {
	b := make([]byte, refreshTokenBytes)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	h, _ := hashRefreshToken(token)
	return token, h
}

// hashRefreshToken returns the stored form of a refresh token: the hex
// SHA-256 of its value. ok is false for a value that no refresh token has.
func hashRefreshToken(token string) (string, bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(refreshTokenBytes) {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:]), true
}

var errUnauthenticated = apperr.Unauthenticatedf(apperr.ReasonTokenMissing, "sign in first: send a valid access token as 'Authorization: Bearer <token>'")

// isNoSession reports whether err says the token's session or user is gone.
func isNoSession(err error) bool { return errors.Is(err, models.ErrNoSession) }
