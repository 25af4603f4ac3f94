package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// MaxClockSkew is the most clock difference token validation tolerates.
const MaxClockSkew = 30 * time.Second

// accessTokenType is the JOSE typ of access tokens (RFC 9068).
const accessTokenType = "at+jwt"

// Tokens issues and verifies access tokens: JWTs signed with HS256 over the
// UTF-8 bytes of the configured secret, so any JOSE library holding the
// secret can verify them.
type Tokens struct {
	key      []byte
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	// verified remembers tokens that passed Verify, by their exact bytes
	// (signature included), so that a client's later requests with the same
	// token skip the JWT parse, about half the cost of authenticating a
	// request (BENCHMARKS.md). Everything checked is a property of those
	// bytes except expiry, which is checked again on every use. Only
	// tokens that verified are kept, so forged ones cannot fill it.
	verified *lru.Cache[string, Claims]
}

// verifiedTokens bounds the cache of verified tokens (a few MB at most).
const verifiedTokens = 10_000

// Claims are what a verified access token says.
type Claims struct {
	UserID    string // sub
	SessionID string // sid
	ID        string // jti
	ExpiresAt time.Time
}

// NewTokens returns a token issuer/verifier whose clock is now (nil: the
// system clock).
func NewTokens(secret []byte, issuer, audience string, ttl time.Duration, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	verified, _ := lru.New[string, Claims](verifiedTokens) // errors only for a size < 1
	return &Tokens{key: secret, issuer: issuer, audience: audience, ttl: ttl, now: now, verified: verified}
}

// Issue signs an access token for the user's session.
func (t *Tokens) Issue(userID, sessionID string) (string, time.Time, error) {
	now := t.now().Truncate(time.Second)
	exp := now.Add(t.ttl)
	tok, err := jwt.NewBuilder().
		Issuer(t.issuer).
		Audience([]string{t.audience}).
		Subject(userID).
		IssuedAt(now).
		Expiration(exp).
		JwtID(randomID()).
		Claim("sid", sessionID).
		Build()
	if err != nil {
		return "", time.Time{}, err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, accessTokenType); err != nil {
		return "", time.Time{}, err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), t.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", time.Time{}, err
	}
	return string(signed), exp, nil
}

// errToken is the one answer to any token that does not verify: the caller
// learns nothing about why.
var errToken = errors.New("invalid access token")

// errTokenExpired is the answer to a token this server issued (signature,
// type and claims verify) whose expiry has passed: the one case where
// refreshing helps.
var errTokenExpired = errors.New("expired access token")

// Verify checks an access token: HS256 only, a valid signature, typ at+jwt,
// the configured issuer and audience, exp (required) not past and iat/nbf
// not in the future beyond MaxClockSkew, sub and sid present.
func (t *Tokens) Verify(token string) (Claims, error) {
	if c, ok := t.verified.Get(token); ok {
		if t.now().Before(c.ExpiresAt.Add(MaxClockSkew)) {
			return c, nil
		}
		t.verified.Remove(token)
		return Claims{}, errTokenExpired
	}
	c, err := t.parse(token)
	if err != nil {
		return Claims{}, err
	}
	t.verified.Add(token, c)
	return c, nil
}

// parse verifies a token in full.
func (t *Tokens) parse(token string) (Claims, error) {
	if len(token) > 4096 || strings.Count(token, ".") != 2 {
		return Claims{}, errToken
	}
	tok, err := jwt.Parse([]byte(token),
		jwt.WithKey(jwa.HS256(), t.key),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.audience),
		jwt.WithAcceptableSkew(MaxClockSkew),
		jwt.WithClock(jwt.ClockFunc(t.now)),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim("sid"),
	)
	expired := errors.Is(err, jwt.TokenExpiredError())
	if err != nil && !expired {
		return Claims{}, errToken
	}
	if !hasAccessTokenType(token[:strings.IndexByte(token, '.')]) {
		return Claims{}, errToken
	}
	if expired {
		return Claims{}, errTokenExpired
	}
	var c Claims
	c.UserID, _ = tok.Subject()
	c.ID, _ = tok.JwtID()
	c.ExpiresAt, _ = tok.Expiration()
	if err := tok.Get("sid", &c.SessionID); err != nil || c.SessionID == "" || c.UserID == "" {
		return Claims{}, errToken
	}
	return c, nil
}

// hasAccessTokenType reports whether the (signed) protected header says
// typ at+jwt, or its media-type form application/at+jwt (RFC 9068 §4).
func hasAccessTokenType(encodedHeader string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(encodedHeader)
	if err != nil {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	typ := strings.ToLower(h.Typ)
	return typ == accessTokenType || typ == "application/"+accessTokenType
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
