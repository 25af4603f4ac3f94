package auth

import (
	"context"
	"errors"
	"sync"

	"cloudkeys/apperr"
	"cloudkeys/models"
)

// caller is the request's identity, worked out at most once per request
// however many @auth fields the request has.
type caller struct {
	token    string
	addr     string
	ua       string
	once     sync.Once
	user     *models.User
	session  string
	err      error
	resolved bool
}

type callerKey struct{}

func callerFrom(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

// ClientAddr returns the request's client address ("" outside a request).
func ClientAddr(ctx context.Context) string {
	if c := callerFrom(ctx); c != nil {
		return c.addr
	}
	return ""
}

// UserAgent returns the request's User-Agent ("" outside a request).
func UserAgent(ctx context.Context) string {
	if c := callerFrom(ctx); c != nil {
		return c.ua
	}
	return ""
}

// Caller is who acts in a request: the signed-in user and the session of
// their access token. Domain operations take it (or its User) explicitly.
type Caller struct {
	User      *models.User
	SessionID string
}

// CallerFrom returns the caller of a request whose @auth check passed. It
// fails closed: where there is none — a field that lost its @auth in the
// schema — it answers UNAUTHENTICATED, so no operation ever runs for a nil
// user.
func CallerFrom(ctx context.Context) (Caller, error) {
	if c := callerFrom(ctx); c != nil && c.resolved && c.err == nil && c.user != nil {
		return Caller{User: c.user, SessionID: c.session}, nil
	}
	return Caller{}, errUnauthenticated
}

// Viewer returns the signed-in user of a request, whether or not the field
// at hand requires one: nil for an anonymous request or a token that does
// not authenticate. It is for public fields whose answer depends on who
// asks; an outage is an error.
func (s *Service) Viewer(ctx context.Context) (*models.User, error) {
	u, err := s.Authenticate(ctx)
	if err != nil && apperr.As(err) == nil {
		return nil, err
	}
	return u, nil
}

// Self returns the caller of the request when u is their own account. The
// fields a user sees only of themselves (sessions, securityEvents) are null
// on every other user, admins included: ok is false then, and for a
// request with no caller, without an error.
func (s *Service) Self(ctx context.Context, u *models.User) (c Caller, ok bool, err error) {
	viewer, err := s.Viewer(ctx)
	if err != nil || viewer == nil || viewer.ID != u.ID {
		return Caller{}, false, err
	}
	c, err = CallerFrom(ctx)
	return c, err == nil, err
}

// The refusals of an access token, by reason. Only an expired one is worth
// a refresh.
var (
	errExpiredToken = apperr.Unauthenticatedf(apperr.ReasonTokenExpired, "the access token has expired; refresh it")
	errInvalidToken = apperr.Unauthenticatedf(apperr.ReasonTokenInvalid, "the access token is not valid; sign in again")
	errSessionEnded = apperr.Unauthenticatedf(apperr.ReasonSessionEnded, "this session has ended (signed out, revoked or expired); sign in again")
)

// Authenticate works out the request's user from its access token, once
// per request: the token must verify, its session must be live, and the
// user must still exist and be approved — so a user disabled, deleted or
// signed out after the token was issued is refused at once.
func (s *Service) Authenticate(ctx context.Context) (*models.User, error) {
	c := callerFrom(ctx)
	if c == nil || c.token == "" {
		return nil, errUnauthenticated
	}
	c.once.Do(func() {
		defer func() { c.resolved = true }()
		claims, err := s.tokens.Verify(c.token)
		if errors.Is(err, errTokenExpired) {
			c.err = errExpiredToken
			return
		}
		if err != nil {
			c.err = errInvalidToken
			return
		}
		user, err := s.sessionCheck.UserForSession(ctx, claims.UserID, claims.SessionID, s.now())
		switch {
		case isNoSession(err):
			c.err = errSessionEnded
		case err != nil:
			c.err = err
		default:
			c.err = models.CanSignIn(user)
			c.user, c.session = user, claims.SessionID
		}
	})
	if c.err != nil {
		return nil, c.err
	}
	return c.user, nil
}
