package server_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// claimsOf decodes a token's payload without verifying it.
func claimsOf(t *testing.T, token string) map[string]any { return segmentJSON(t, token, 1) }

// headerOf decodes a token's protected header.
func headerOf(t *testing.T, token string) map[string]any { return segmentJSON(t, token, 0) }

func segmentJSON(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// forge signs claims with key, alg and typ, as an attacker (or another
// JOSE library) would.
func forge(t *testing.T, claims map[string]any, alg jwa.SignatureAlgorithm, key []byte, typ string) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	hdr := jws.NewHeaders()
	if typ != "" {
		hdr.Set(jws.TypeKey, typ)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func TestAccessTokenFormat(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	_, u := app.adminClient(t)
	p := app.client(t).login(u.Email, "password-"+u.Email)
	h := headerOf(t, p.AccessToken)
	if h["alg"] != "HS256" || h["typ"] != "at+jwt" {
		t.Fatalf("header: %v", h)
	}
	c := claimsOf(t, p.AccessToken)
	for _, k := range []string{"iss", "aud", "sub", "iat", "exp", "jti", "sid"} {
		if _, ok := c[k]; !ok {
			t.Fatalf("claim %s missing: %v", k, c)
		}
	}
	if c["sub"] != u.ID || c["iss"] != "cloudkeys" {
		t.Fatalf("claims: %v", c)
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 15*60 {
		t.Fatalf("lifetime %v s, want 900", exp-iat)
	}
	// Any JOSE library holding the secret verifies it: here plain jwx.
	if _, err := jwt.Parse([]byte(p.AccessToken), jwt.WithKey(jwa.HS256(), app.Config.JWTSecret),
		jwt.WithAudience("cloudkeys"), jwt.WithIssuer("cloudkeys")); err != nil {
		t.Fatalf("plain jwx does not verify the token: %v", err)
	}
}

func TestBadAccessTokens(t *testing.T) {
	t.Parallel()
	app := startApp(t, nil)
	admin, u := app.adminClient(t)
	good := admin.token
	secret := app.Config.JWTSecret
	valid := claimsOf(t, good)
	now := time.Now()
	with := func(changes map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		m["iat"] = now.Unix()
		m["exp"] = now.Add(10 * time.Minute).Unix()
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	// A token the test forges with the real secret and valid claims works:
	// the cases below fail for the reason they name, not for the forging.
	admin.withToken(forge(t, with(nil), jwa.HS256(), secret, "at+jwt")).must(`{ me { id } }`, nil, "me", new(userJSON))
	admin.withToken(forge(t, with(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), jwa.HS256(), secret, "at+jwt")).
		must(`{ me { id } }`, nil, "me", new(userJSON)) // within the 30 s skew

	parts := strings.Split(good, ".")
	otherPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"00000000-0000-0000-0000-000000000000"}`))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
	cases := map[string]string{
		"garbage":               "not-a-token",
		"empty bearer":          "",
		"tampered payload":      parts[0] + "." + otherPayload + "." + parts[2],
		"tampered signature":    parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"alg none":              noneHeader + "." + parts[1] + ".",
		"alg none, signature":   noneHeader + "." + parts[1] + "." + parts[2],
		"HS512 same secret":     forge(t, with(nil), jwa.HS512(), secret, "at+jwt"),
		"wrong key":             forge(t, with(nil), jwa.HS256(), []byte("another secret that is 32 bytes long!"), "at+jwt"),
		"expired beyond skew":   forge(t, with(map[string]any{"exp": now.Add(-time.Minute).Unix()}), jwa.HS256(), secret, "at+jwt"),
		"issued in the future":  forge(t, with(map[string]any{"iat": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(5 * time.Minute).Unix()}), jwa.HS256(), secret, "at+jwt"),
		"no exp":                forge(t, with(map[string]any{"exp": nil}), jwa.HS256(), secret, "at+jwt"),
		"no sub":                forge(t, with(map[string]any{"sub": nil}), jwa.HS256(), secret, "at+jwt"),
		"no sid":                forge(t, with(map[string]any{"sid": nil}), jwa.HS256(), secret, "at+jwt"),
		"unknown sid":           forge(t, with(map[string]any{"sid": "00000000-0000-0000-0000-000000000000"}), jwa.HS256(), secret, "at+jwt"),
		"wrong audience":        forge(t, with(map[string]any{"aud": []string{"someone-else"}}), jwa.HS256(), secret, "at+jwt"),
		"wrong issuer":          forge(t, with(map[string]any{"iss": "someone-else"}), jwa.HS256(), secret, "at+jwt"),
		"typ JWT":               forge(t, with(nil), jwa.HS256(), secret, "JWT"),
		"no typ":                forge(t, with(nil), jwa.HS256(), secret, ""),
		"sub is the email":      forge(t, with(map[string]any{"sub": u.Email}), jwa.HS256(), secret, "at+jwt"),
		"oversized":             good + strings.Repeat("A", 5000),
		"refresh token instead": app.client(t).login(u.Email, "password-"+u.Email).RefreshToken,
	}
	// extensions.reason tells a client whether refreshing helps: only a
	// genuine token past its expiry is TOKEN_EXPIRED; a genuine token whose
	// session is gone is SESSION_ENDED; everything else is TOKEN_INVALID.
	reasons := map[string]string{"expired beyond skew": "TOKEN_EXPIRED", "unknown sid": "SESSION_ENDED",
		"sub is the email": "SESSION_ENDED"}
	var invalid []string
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			c := app.client(t)
			c.header.Set("Authorization", "Bearer "+token)
			r := c.do(`{ me { id } }`, nil)
			e := r.wantCode(t, "me", "UNAUTHENTICATED")
			want := reasons[name]
			if want == "" {
				want = "TOKEN_INVALID"
				invalid = append(invalid, e.Message)
			}
			if e.Extensions["reason"] != want || len(e.Extensions) != 2 {
				t.Fatalf("extensions %v, want code and reason %s only", e.Extensions, want)
			}
		})
	}
	for _, scheme := range []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), good, "Bearer", "Token " + good} {
		c := app.client(t)
		c.header.Set("Authorization", scheme)
		if e := c.do(`{ me { id } }`, nil).wantCode(t, "me", "UNAUTHENTICATED"); e.Extensions["reason"] != "TOKEN_INVALID" {
			t.Errorf("Authorization %.6s…: reason %v", scheme, e.Extensions["reason"])
		}
	}
	if e := app.client(t).do(`{ me { id } }`, nil).wantCode(t, "me", "UNAUTHENTICATED"); e.Extensions["reason"] != "TOKEN_MISSING" {
		t.Errorf("no token: reason %v, want TOKEN_MISSING", e.Extensions["reason"])
	}
	// Nothing tells one invalid token from another.
	for _, m := range invalid[1:] {
		if m != invalid[0] {
			t.Fatalf("messages differ: %q vs %q", m, invalid[0])
		}
	}
	if strings.Contains(app.Logs(), good) {
		t.Fatal("a token reached the log")
	}
}
