package relay

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"

	"cloudkeys/apperr"
	"cloudkeys/auth"
	"cloudkeys/models"
)

// Gateway is the relay's front door: it works out who calls and with which
// credential — a relay key, or the owner's own access token on the browser
// path — applies the key's rate limit, hands the call to the Forwarder,
// counts it (Meter) and logs one line about it. The rules of relay keys
// (live, owner approved, requests per minute) are in models.
type Gateway struct {
	DB        *gorm.DB
	Auth      *auth.Service
	Forwarder *Forwarder
	Meter     *Meter
	Log       *slog.Logger
	// Now is the clock of key expiry and rate limits; nil: the system clock.
	Now func() time.Time
	// BodyReadTimeout bounds reading a request body; the relay's calls are
	// not under the server's request timeout, so a slow upload is cut here.
	BodyReadTimeout time.Duration
	// Observer is told of every call the Gateway answers, for metrics;
	// nil: nobody.
	Observer Observer
}

// Observer is told of each relayed call once it is over (package metrics
// implements it; app wires it). It gets no key, ID, model or path: apiType
// is the credential's API type (before a credential was known, the error
// shape of the refusal, APITypeOf), provider its backend type ("" when no
// credential was known), endpoint Outcome.Endpoint ("" when none matched),
// status the client's. It must be cheap and safe for concurrent use.
type Observer interface {
	RelayCall(apiType, provider, endpoint string, status int, upstream time.Duration, inputTokens, outputTokens int64)
}

func (g *Gateway) observe(api models.APIType, provider models.BackendType, o Outcome) {
	if g.Observer != nil {
		g.Observer.RelayCall(string(api), string(provider), o.Endpoint, o.Status, o.Upstream, o.InputTokens, o.OutputTokens)
	}
}

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now().UTC().Truncate(time.Microsecond)
	}
	return models.Now()
}

// Handler serves every path under /relay/ (the server hands them over
// before its ServeMux, which would redirect a path with dot segments
// instead of refusing it):
//
//   - /relay/v1/{rest}: the caller is the relay key in Authorization:
//     Bearer or x-api-key. Only a live key of an approved owner gets
//     through (401 otherwise, in the provider's error shape); a key with
//     requestsPerMinute is counted in the database (429 with Retry-After
//     past it).
//   - /relay/credentials/{id}/v1/{rest}: the owner's own browser path; the
//     caller is the access token in Authorization: Bearer, and the
//     credential must be theirs (404 otherwise, as for a missing one).
//
// Anything else under /relay/ is 404.
func (g *Gateway) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 1 || len(r.Header.Values("X-Api-Key")) > 1 {
			WriteError(w, APITypeOf(r), errTwoKeys)
			return
		}
		path := r.URL.EscapedPath()
		if rest, ok := strings.CutPrefix(path, "/relay/v1/"); ok {
			g.serveKey(w, r, rest)
			return
		}
		if tail, ok := strings.CutPrefix(path, "/relay/credentials/"); ok {
			if id, rest, ok := strings.Cut(tail, "/v1/"); ok && id != "" && !strings.Contains(id, "/") {
				g.serveOwner(w, r, id, rest)
				return
			}
		}
		WriteError(w, APITypeOf(r), errNoRoute)
	})
}

var errTwoKeys = apperr.Errorf(apperr.BadRequest, "send one Authorization header and at most one x-api-key header")

var errNoRoute = apperr.Errorf(apperr.NotFound, "no such relay endpoint: use /relay/v1/… with a relay key, or /relay/credentials/{id}/v1/… with your access token")

func (g *Gateway) serveKey(w http.ResponseWriter, r *http.Request, rest string) {
	start := time.Now()
	ctx := r.Context()
	api := APITypeOf(r)
	secret := relaySecret(r)
	if secret == "" {
		g.refuse(w, r, api, errNoKey, nil, "", start)
		return
	}
	now := g.now()
	key, cred, err := models.RelayKeyBySecret(ctx, g.DB, secret, now)
	if err != nil && key != nil {
		// revoked, expired, or its owner may not use it: known, so counted
		g.refuse(w, r, cred.APIType, err, cred, key.ID, start)
		return
	}
	if err != nil {
		g.refuse(w, r, api, err, nil, "", start)
		return
	}
	api = cred.APIType
	if key.RequestsPerMinute != nil {
		if err := models.CountRelayRequest(ctx, g.DB, key.ID, *key.RequestsPerMinute, now); err != nil {
			g.refuse(w, r, api, err, cred, key.ID, start)
			return
		}
	}
	g.forward(w, r, rest, cred, key.ID, key.AllowedModels, start)
}

func (g *Gateway) serveOwner(w http.ResponseWriter, r *http.Request, id, rest string) {
	start := time.Now()
	ctx := r.Context()
	api := APITypeOf(r)
	user, err := g.Auth.Authenticate(ctx)
	if err != nil {
		g.refuse(w, r, api, err, nil, "", start)
		return
	}
	cred, err := models.CredentialByID(ctx, g.DB, user.ID, id)
	if err != nil {
		g.refuse(w, r, api, err, nil, "", start)
		return
	}
	g.forward(w, r, rest, cred, "", nil, start)
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, rest string, cred *models.CloudCredential, keyID string, allowed []string, start time.Time) {
	if g.BodyReadTimeout > 0 && r.ContentLength != 0 {
		r.Body = readDeadline(w, r.Body, g.BodyReadTimeout)
	}
	t := Target{APIType: cred.APIType, BaseURL: cred.EffectiveBaseURL(), APIKey: cred.APIKey,
		NeedsReentry: cred.KeyStatus() == models.KeyNeedsReentry, AllowedModels: allowed}
	counted := g.Meter.Start(cred.ID, keyID)
	g.Forwarder.Forward(w, r, rest, t, func(out Outcome) {
		counted(out)
		g.observe(cred.APIType, cred.BackendType, out)
		g.Log.LogAttrs(r.Context(), slog.LevelInfo, "relayed call",
			slog.String("relay_key_id", keyID), slog.String("credential_id", cred.ID),
			slog.String("endpoint", out.Endpoint), slog.String("model", out.Model),
			slog.Int("status", out.Status), slog.Bool("refused", out.Refused), slog.Bool("aborted", out.Aborted),
			slog.Duration("duration", time.Since(start)),
			slog.Int64("input_tokens", out.InputTokens), slog.Int64("output_tokens", out.OutputTokens))
	})
}

var errNoKey = apperr.Errorf(apperr.Unauthenticated,
	"send your relay key (ckr_…) as 'Authorization: Bearer <key>' or 'x-api-key: <key>'")

// refuse answers a call refused before it reached the Forwarder, in the
// provider's error shape. One refused after its key or credential was
// established (cred not nil: the rate limit) counts as an error of that
// key; one refused before counts against nobody.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, api models.APIType, err error, cred *models.CloudCredential, keyID string, start time.Time) {
	e := apperr.As(err)
	if e == nil {
		g.Log.ErrorContext(r.Context(), "relay: internal error", "error", err.Error())
		e = apperr.Errorf(apperr.Internal, "internal error of the relay")
	}
	WriteError(w, api, e)
	status := apperr.HTTPStatus(e.Code)
	out := Outcome{Status: status, Refused: true}
	credID, provider := "", models.BackendType("")
	if cred != nil {
		credID, provider = cred.ID, cred.BackendType
		g.Meter.Record(credID, keyID, out)
	}
	g.observe(api, provider, out)
	g.Log.LogAttrs(r.Context(), slog.LevelInfo, "relayed call refused",
		slog.String("relay_key_id", keyID), slog.String("credential_id", credID),
		slog.String("code", string(e.Code)), slog.Int("status", status),
		slog.Duration("duration", time.Since(start)))
}

// relaySecret returns the relay key a request presents: the first of the
// Authorization bearer token and x-api-key that looks like one, else
// whichever is there (it will not verify).
func relaySecret(r *http.Request) string {
	bearer := ""
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		bearer = strings.TrimSpace(token)
	}
	apiKey := strings.TrimSpace(r.Header.Get("x-api-key"))
	for _, s := range []string{bearer, apiKey} {
		if strings.HasPrefix(s, models.RelayKeyPrefix) {
			return s
		}
	}
	if bearer != "" {
		return bearer
	}
	return apiKey
}

// readDeadline bounds reading body to d and lifts the bound once the body
// is read: the server has no connection-wide read timeout (streams outlive
// any), and a deadline left in place would end the call when it passed.
func readDeadline(w http.ResponseWriter, body io.ReadCloser, d time.Duration) io.ReadCloser {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(d)) != nil {
		return body
	}
	return &deadlineBody{ReadCloser: body, rc: rc}
}

type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if errors.Is(err, io.EOF) {
			b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}
