// Package probe tests a cloud provider credential by listing the provider's
// models: GET {baseURL}/v1/models with the key, and an answer a user can act
// on. The call goes through an SSRF guard that refuses loopback, private,
// link-local and cloud metadata addresses at dial time, after DNS
// resolution, unless the operator allows private targets.
//
// Messages are built only from fixed text, HTTP status codes and the
// configured timeout: nothing the provider sends and nothing from the base
// URL or the key ever reaches them.
//
// Decisions where the specification is silent:
//   - OK means the provider answered 2xx with a body that starts like JSON
//     ('{' or '['). A 2xx web page (a base URL pointing at a website with a
//     catch-all route) is not a working provider and is reported as such.
//   - 429 is OK false: the key was not rejected, but nothing confirmed it
//     either (OpenAI also answers 429 to a valid key whose quota is spent).
//   - 3xx is OK false with the status, and the message says only that the
//     base URL redirects: the Location is neither followed nor shown.
//   - AllowPrivate lifts the guard for loopback, private, link-local,
//     unique-local, CGNAT and other non-global unicast addresses, never for
//     cloud metadata services, multicast or broadcast.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Protocol is the API dialect a provider speaks; it decides how the key is
// sent.
type Protocol int

const (
	// OpenAI sends the key as "Authorization: Bearer <key>".
	OpenAI Protocol = iota + 1
	// Anthropic sends "x-api-key: <key>" and "anthropic-version: 2023-06-01".
	Anthropic
)

func (p Protocol) String() string {
	switch p {
	case OpenAI:
		return "OpenAI"
	case Anthropic:
		return "Anthropic"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// AnthropicVersion is the anthropic-version header sent with the Anthropic
// protocol.
const AnthropicVersion = "2023-06-01"

const (
	// DefaultTimeout bounds a whole call: DNS, connect, TLS, headers, body.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBody is how much of a response body is read at most. A
	// model list longer than that is not listed (Result.Models is nil);
	// OpenAI's and Anthropic's are well under it.
	DefaultMaxBody = 64 << 10
)

// Options configure a Client. The zero value is the production default:
// private targets refused, 10 s timeout, 64 KiB body.
type Options struct {
	// AllowPrivate lets calls reach loopback, private, link-local,
	// unique-local and CGNAT addresses, for local OpenAI-compatible
	// servers (CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS=true). Cloud metadata,
	// multicast and broadcast addresses stay refused.
	AllowPrivate bool
	// Timeout bounds the whole call; zero or less means DefaultTimeout.
	Timeout time.Duration
	// MaxBody is the most of a response body that is read; zero or less
	// means DefaultMaxBody.
	MaxBody int64
}

// Client runs connection tests. It is safe for concurrent use; all calls
// share one http.Client and its connection pool.
type Client struct {
	http         *http.Client
	transport    *http.Transport
	dialer       *net.Dialer
	allowPrivate bool
	timeout      time.Duration
	maxBody      int64

	// beforeConnect, when set, runs after the guard has passed an address
	// that is about to be connected. Production leaves it nil; the tests
	// install a loopback-only safety net here.
	beforeConnect func(netip.AddrPort) error
}

// New returns a Client configured by opts.
func New(opts Options) *Client {
	c := &Client{
		allowPrivate: opts.AllowPrivate,
		timeout:      opts.Timeout,
		maxBody:      opts.MaxBody,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBody
	}
	c.dialer = &net.Dialer{Control: c.control}
	c.transport = &http.Transport{
		// No proxy, whatever HTTP(S)_PROXY says: a proxy would dial the
		// provider itself and the guard would only ever see the proxy.
		Proxy:                  nil,
		DialContext:            c.dialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.http = &http.Client{
		Transport: c.transport,
		// Redirects are not followed: the target of a redirect would be a
		// second, unvetted request, and a provider's model list does not
		// redirect.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c
}

// Result is the outcome of a connection test, bound directly to the GraphQL
// type ConnectionTestResult.
type Result struct {
	// OK is true only when the provider answered 2xx with JSON.
	OK bool
	// HTTPStatus is the status the provider answered, nil when no HTTP
	// response was received (refused, DNS, connect, TLS, timeout).
	HTTPStatus *int
	// Message says what happened and what to check, in one or two
	// sentences. It never contains the key or any text from the provider.
	Message string
	// Models are the model IDs the provider listed, when OK and the answer
	// is a model list ({"data": [{"id": …}, …]}, both protocols); nil
	// otherwise.
	Models []string
}

// errTimedOut is the cause attached to the Client's own deadline, telling
// it apart from a deadline or cancellation of the caller's context.
var errTimedOut = errors.New("probe: connection test timed out")

// Test calls GET {baseURL}/v1/models with apiKey sent as protocol p asks,
// and reports whether the provider accepted the key. It never returns an
// error: every failure is a Result with OK false and a message for the
// user. The call ends at the Client's timeout or when ctx ends, whichever
// comes first.
func (c *Client) Test(ctx context.Context, p Protocol, baseURL, apiKey string) Result {
	endpoint, problem := modelsURL(baseURL)
	if problem != "" {
		return Result{Message: problem}
	}
	if apiKey == "" {
		return Result{Message: msgNoKey}
	}
	if !validHeaderValue(apiKey) {
		return Result{Message: msgBadKeyChars}
	}

	callCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimedOut)
	defer cancel()

	req, err := http.NewRequestWithContext(callCtx, http.MethodGet, endpoint.String(), nil)
	if err != nil {
		return Result{Message: msgInvalidURL}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cloudkeys")
	switch p {
	case OpenAI:
		req.Header.Set("Authorization", "Bearer "+apiKey)
	case Anthropic:
		req.Header.Set("x-api-key", apiKey)
		req.Header.Set("anthropic-version", AnthropicVersion)
	default:
		return Result{Message: msgUnknownProtocol}
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return Result{Message: c.failure(ctx, callCtx, err)}
	}
	body, first, readErr := drain(resp.Body, c.maxBody)
	resp.Body.Close()

	status := resp.StatusCode
	r := Result{HTTPStatus: &status}
	switch {
	case status >= 200 && status <= 299:
		switch {
		case first == '{' || first == '[':
			r.OK, r.Message, r.Models = true, msgConnected, modelIDs(body)
		case first == 0 && readErr != nil:
			// Headers arrived but the body never did.
			r.Message = c.failure(ctx, callCtx, readErr)
		default:
			r.Message = fmt.Sprintf(msgNotJSON, status)
		}
	case status >= 300 && status <= 399:
		r.Message = fmt.Sprintf(msgRedirect, status)
	case status == http.StatusUnauthorized:
		r.Message = msgUnauthorized
	case status == http.StatusForbidden:
		r.Message = msgForbidden
	case status == http.StatusNotFound:
		r.Message = msgNotFound
		if strings.HasSuffix(strings.TrimRight(endpoint.Path, "/"), "/v1/v1/models") {
			r.Message += " " + msgNotFoundV1
		}
	case status == http.StatusTooManyRequests:
		r.Message = msgRateLimited
	case status >= 400 && status <= 499:
		r.Message = fmt.Sprintf(msgClientError, status)
	case status >= 500 && status <= 599:
		r.Message = fmt.Sprintf(msgServerError, status)
	default:
		r.Message = fmt.Sprintf(msgUnexpectedStatus, status)
	}
	return r
}

// Messages. Each is fixed text; the only values formatted in are HTTP
// status codes and the configured timeout.
const (
	msgConnected        = "Connected: the provider accepted the key."
	msgNotJSON          = "The server answered HTTP %d, but not with JSON: the base URL does not look like the provider's API."
	msgRedirect         = "The base URL redirects (HTTP %d); redirects are not followed."
	msgUnauthorized     = "The provider rejected the API key (401 Unauthorized): check that the key is correct and has not been revoked."
	msgForbidden        = "The provider refused access (403 Forbidden): the key may lack permission to list models, or the account or this server's location is blocked."
	msgNotFound         = "The endpoint was not found (404): check the base URL; the test calls {base URL}/v1/models."
	msgNotFoundV1       = "The base URL should not end in /v1."
	msgRateLimited      = "The provider is rate limiting this key (429 Too Many Requests) or its quota is used up: the key was not rejected, but the test could not confirm it. Try again later."
	msgClientError      = "The provider refused the request (HTTP %d): check the base URL and the API type."
	msgServerError      = "The provider had a server error (HTTP %d): try again later."
	msgUnexpectedStatus = "The provider answered with an unexpected HTTP status (%d)."

	msgTimeout        = "The connection test timed out after %s."
	msgCanceled       = "The connection test was canceled."
	msgCallerDeadline = "The connection test was stopped: the request's deadline passed."

	msgNoSuchHost     = "The base URL's host name could not be resolved (no such host): check the base URL."
	msgDNSFailed      = "The base URL's host name could not be resolved (DNS lookup failed): try again later."
	msgRefused        = "The connection was refused: nothing is accepting connections at the base URL's host and port."
	msgReset          = "The connection was reset by the server."
	msgUnreachable    = "The base URL's host is unreachable from this server (no route)."
	msgConnectTimeout = "The connection attempt timed out: the host did not answer."
	msgClosed         = "The server closed the connection without answering."
	msgConnFailed     = "Could not get an HTTP answer from the base URL: the connection failed or the server did not speak HTTP."

	msgTLSUnknownCA   = "TLS error: the server's certificate is not signed by a trusted authority."
	msgTLSHostname    = "TLS error: the server's certificate is not valid for the base URL's host name."
	msgTLSExpired     = "TLS error: the server's certificate has expired or is not yet valid."
	msgTLSInvalidCert = "TLS error: the server's certificate is not valid."
	msgTLSNotTLS      = "TLS error: the server did not answer with TLS; does the base URL need http:// instead of https://?"
	msgTLSFailed      = "TLS error: the secure connection to the server could not be set up."

	msgSSRF = "Refused by the SSRF guard: the base URL's host is (or resolves to) %s. " +
		"Loopback, private and link-local addresses are only called when the server runs with CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS=true (for local OpenAI-compatible servers)."
	msgSSRFAlways = "Refused by the SSRF guard: the base URL's host is (or resolves to) %s, which is never called, not even with CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS=true."

	msgInvalidURL      = "The base URL is not a valid URL."
	msgNotAbsolute     = "The base URL must be an absolute http:// or https:// URL with a host."
	msgUserinfo        = "The base URL must not contain a user name or password; the API key is sent in a header."
	msgFragment        = "The base URL must not contain a fragment (#…)."
	msgNoKey           = "There is no API key to test."
	msgBadKeyChars     = "The API key contains characters that cannot be sent in an HTTP header (such as a line break): re-enter the key."
	msgUnknownProtocol = "Internal error: unknown API type."
)

// failure turns a transport error into a message. ctx is the caller's
// context, callCtx the one carrying the Client's own deadline.
func (c *Client) failure(ctx, callCtx context.Context, err error) string {
	var (
		refused  *refusedError
		dnsErr   *net.DNSError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &refused):
		if refused.class.always {
			return fmt.Sprintf(msgSSRFAlways, refused.class.phrase)
		}
		return fmt.Sprintf(msgSSRF, refused.class.phrase)

	case errors.Is(context.Cause(callCtx), errTimedOut):
		return fmt.Sprintf(msgTimeout, c.timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return msgCanceled
	case ctx.Err() != nil:
		return msgCallerDeadline

	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return msgNoSuchHost
		}
		return msgDNSFailed

	case errors.As(err, &unknown):
		return msgTLSUnknownCA
	case errors.As(err, &hostname):
		return msgTLSHostname
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return msgTLSExpired
		}
		return msgTLSInvalidCert
	case errors.As(err, &verify):
		return msgTLSInvalidCert
	case errors.As(err, &record), strings.Contains(innerText(err), "server gave HTTP response to HTTPS client"):
		// net/http turns the RecordHeaderError into an untyped error when
		// the answer looks like HTTP.
		return msgTLSNotTLS
	case errors.As(err, &alert):
		return msgTLSFailed

	case errors.Is(err, syscall.ECONNREFUSED):
		return msgRefused
	case errors.Is(err, syscall.ECONNRESET):
		return msgReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return msgUnreachable
	case errors.Is(err, syscall.ETIMEDOUT):
		return msgConnectTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
		// A timeout that is not the context's: a transport-level one.
		return fmt.Sprintf(msgTimeout, c.timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return msgClosed
	case strings.Contains(innerText(err), "tls: "):
		// The untyped errors crypto/tls returns during a handshake.
		return msgTLSFailed
	}
	return msgConnFailed
}

// innerText is the text of err without the *url.Error wrapper, whose own
// text includes the URL. It is only matched against, never shown.
func innerText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// modelsURL validates baseURL and appends /v1/models to its path, keeping
// any path it has (https://api.groq.com/openai → …/openai/v1/models) and
// its query. A non-empty problem is the message to show instead.
func modelsURL(baseURL string) (u *url.URL, problem string) {
	s := strings.TrimSpace(baseURL)
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, msgInvalidURL
	case u.Scheme != "http" && u.Scheme != "https", u.Opaque != "", u.Host == "", u.Hostname() == "":
		return nil, msgNotAbsolute
	case u.User != nil:
		return nil, msgUserinfo
	case strings.Contains(s, "#"):
		return nil, msgFragment
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/v1/models"
	if u.RawPath != "" {
		u.RawPath = strings.TrimRight(u.RawPath, "/") + "/v1/models"
	}
	return u, ""
}

// validHeaderValue reports whether v can be sent as an HTTP header value
// (RFC 9110 field-value: no control characters other than tab).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// drain reads at most limit bytes of r and returns them with the first
// byte that is not JSON whitespace (0 if none). Reading stops at limit: the
// rest is discarded when the body is closed, which also drops the
// connection.
func drain(r io.Reader, limit int64) (body []byte, first byte, err error) {
	body, err = io.ReadAll(io.LimitReader(r, limit))
	for _, b := range body {
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			first = b
			break
		}
	}
	return body, first, err
}

// modelIDs returns the IDs of a model list, OpenAI's and Anthropic's
// shape alike ({"data": [{"id": …}, …]}), or nil when body is not one (or
// was cut at the body limit).
func modelIDs(body []byte) []string {
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &list) != nil || list.Data == nil {
		return nil
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}
