package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"cloudkeys/apperr"
	"cloudkeys/models"
)

// caller is the request's identity, worked out at most once per request
// however many @auth fields the request has.
type caller struct {
	token    string
	addr     string
	once     sync.Once
	user     *models.User
	session  string
	err      error
	resolved bool
}

type callerKey struct{}

// Middleware records the request's bearer token and client address for the
// @auth directive and the resolvers. It refuses nothing itself: public
// fields stay public whatever the Authorization header says. The client
// address is the peer's, or, when the peer is one of trustedProxies, the
// first address in X-Forwarded-For (from the right) that is not a trusted
// proxy.
func Middleware(trustedProxies []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := &caller{token: bearerToken(r.Header.Get("Authorization")), addr: clientAddr(r, trustedProxies)}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
		})
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header; a malformed header yields a value no token verifies.
func bearerToken(h string) string {
	if h == "" {
		return ""
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "invalid"
	}
	if token = strings.TrimSpace(token); token == "" {
		return "invalid"
	}
	return token
}

func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(strings.TrimSpace(hops[i]))
		if !ok {
			break // a garbled hop: trust nothing further left
		}
		hop = hop.Unmap()
		if !isTrusted(hop, trusted) {
			return hop.String()
		}
		peer = hop
	}
	return peer.String()
}

// parseHop reads one X-Forwarded-For entry: an address, or an address
// with a port ("203.0.113.1:51234", "[2001:db8::1]:443"), as some proxies
// write them.
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

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

// UserFrom returns the signed-in user of a request whose @auth check
// passed, or nil.
func UserFrom(ctx context.Context) *models.User {
	if c := callerFrom(ctx); c != nil && c.resolved && c.err == nil {
		return c.user
	}
	return nil
}

// SessionFrom returns the session ID of the request's access token, once
// the @auth check passed.
func SessionFrom(ctx context.Context) string {
	if c := callerFrom(ctx); c != nil && c.resolved && c.err == nil {
		return c.session
	}
	return ""
}

var errInvalidToken = apperr.Errorf(apperr.Unauthenticated, "the access token is invalid or expired; sign in or refresh it")

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
		if err != nil {
			c.err = errInvalidToken
			return
		}
		user, err := s.sessionCheck.UserForSession(ctx, claims.UserID, claims.SessionID, s.now())
		switch {
		case isNoSession(err):
			c.err = errInvalidToken
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

// Directive implements @auth(requires: Role): the field resolves only for
// an authenticated caller holding the role; otherwise it is null with
// UNAUTHENTICATED, ACCOUNT_DISABLED/ACCOUNT_PENDING or FORBIDDEN.
func (s *Service) Directive(ctx context.Context, _ any, next graphql.Resolver, requires *models.Role) (any, error) {
	user, err := s.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if requires != nil && *requires == models.RoleAdmin && !user.IsAdmin {
		return nil, apperr.Errorf(apperr.Forbidden, "only administrators may do this")
	}
	return next(ctx)
}
