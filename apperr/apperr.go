// Package apperr defines the one error vocabulary of cloudkeys.
//
// A rule that refuses a request (in models, auth or relay) returns an *Error
// carrying one of the codes below; the GraphQL error presenter translates it,
// in one place, into a GraphQL error with extensions.code, and the relay into
// the provider's error shape. The GraphQL-over-HTTP layer (gqlhttp) spells its
// own refusals with the same codes. Any other error is an internal one: its
// text is logged, never shown to the caller.
//
// No other package spells a code as a string: every code, and the HTTP status
// that goes with it (HTTPStatus), is declared here.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code is the value of a GraphQL error's extensions.code.
type Code string

// The codes a caller can act on (SPEC §5).
const (
	Unauthenticated Code = "UNAUTHENTICATED"       // no valid token, or wrong credentials
	Forbidden       Code = "FORBIDDEN"             // authenticated, but not allowed
	AccountPending  Code = "ACCOUNT_PENDING"       // the account waits for approval
	AccountDisabled Code = "ACCOUNT_DISABLED"      // an admin switched the account off
	Invalid         Code = "BAD_USER_INPUT"        // an argument breaks a rule; Field names it
	NotFound        Code = "NOT_FOUND"             // missing, or not the caller's
	Conflict        Code = "CONFLICT"              // would duplicate something unique, or the state forbids it now
	RateLimited     Code = "RATE_LIMITED"          // try again after RetryAfter
	Internal        Code = "INTERNAL_SERVER_ERROR" // a bug or an outage; details only in the log
)

// The codes of the GraphQL-over-HTTP layer (README, "GraphQL over HTTP"):
// requests refused before or instead of execution. Each limit has its own,
// so a client can tell which one it hit. The GRAPHQL_* codes and
// COMPLEXITY_LIMIT_EXCEEDED and PERSISTED_QUERY_NOT_FOUND are gqlgen's own;
// they are named here so that no other package spells them.
const (
	BadRequest             Code = "BAD_REQUEST"               // not a well-formed GraphQL-over-HTTP request
	MethodNotAllowed       Code = "METHOD_NOT_ALLOWED"        // with an Allow header
	NotAcceptable          Code = "NOT_ACCEPTABLE"            // Accept names no type the server writes
	UnsupportedMediaType   Code = "UNSUPPORTED_MEDIA_TYPE"    // the body is not application/json
	BodyLimit              Code = "BODY_LIMIT_EXCEEDED"       // CLOUDKEYS_MAX_BODY_BYTES (the relay's: CLOUDKEYS_RELAY_MAX_BODY_BYTES)
	TokenLimit             Code = "TOKEN_LIMIT_EXCEEDED"      // CLOUDKEYS_MAX_TOKENS
	DepthLimit             Code = "DEPTH_LIMIT_EXCEEDED"      // CLOUDKEYS_MAX_DEPTH
	AliasLimit             Code = "ALIAS_LIMIT_EXCEEDED"      // CLOUDKEYS_MAX_ALIASES
	ComplexityLimit        Code = "COMPLEXITY_LIMIT_EXCEEDED" // CLOUDKEYS_MAX_COMPLEXITY
	Timeout                Code = "TIMEOUT"                   // CLOUDKEYS_REQUEST_TIMEOUT
	ParseFailed            Code = "GRAPHQL_PARSE_FAILED"
	ValidationFailed       Code = "GRAPHQL_VALIDATION_FAILED"
	PersistedQueryNotFound Code = "PERSISTED_QUERY_NOT_FOUND"
)

// The codes of the relay's refusals about the provider (SPEC §8).
const (
	BadGateway     Code = "BAD_GATEWAY"     // the provider is unreachable, redirected, or refused by the SSRF guard
	GatewayTimeout Code = "GATEWAY_TIMEOUT" // the provider did not answer in time
)

// statuses is the one table of HTTP statuses: the status of a response
// refused with the code. The GraphQL-over-HTTP layer uses it for requests
// refused before execution and, under application/graphql-response+json, for
// request errors (gqlhttp.Status); field errors are always 200. The relay
// answers its refusals with it. A code missing here is 400.
var statuses = map[Code]int{
	Unauthenticated:      http.StatusUnauthorized,
	Forbidden:            http.StatusForbidden,
	AccountPending:       http.StatusForbidden,
	AccountDisabled:      http.StatusForbidden,
	Invalid:              http.StatusBadRequest,
	NotFound:             http.StatusNotFound,
	Conflict:             http.StatusConflict,
	RateLimited:          http.StatusTooManyRequests,
	Internal:             http.StatusInternalServerError,
	BadRequest:           http.StatusBadRequest,
	MethodNotAllowed:     http.StatusMethodNotAllowed,
	NotAcceptable:        http.StatusNotAcceptable,
	UnsupportedMediaType: http.StatusUnsupportedMediaType,
	BodyLimit:            http.StatusRequestEntityTooLarge,
	Timeout:              http.StatusServiceUnavailable,
	BadGateway:           http.StatusBadGateway,
	GatewayTimeout:       http.StatusGatewayTimeout,
}

// HTTPStatus returns the HTTP status of a response refused with code.
func HTTPStatus(code Code) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusBadRequest
}

// Error is a refusal the caller may see. Message is written for the caller and
// must never contain a secret (password, token, API key).
type Error struct {
	Code    Code
	Message string
	// Field is the input field at fault, for Invalid (e.g. "input.name").
	Field string
	// RetryAfter is how long to wait, for RateLimited.
	RetryAfter time.Duration
	// Reason says why, for Unauthenticated (extensions.reason), so that a
	// client knows whether refreshing helps: one of the Reason* values.
	Reason Reason
}

// Reason is the value of extensions.reason of an UNAUTHENTICATED error
// (SPEC §9). A client refreshes on ReasonTokenExpired only and signs in
// again on every other.
type Reason string

// The reasons of UNAUTHENTICATED.
const (
	ReasonTokenMissing   Reason = "TOKEN_MISSING"         // no access token where one is needed
	ReasonTokenExpired   Reason = "TOKEN_EXPIRED"         // a genuine access token past its expiry: refresh
	ReasonTokenInvalid   Reason = "TOKEN_INVALID"         // not an access token of this server
	ReasonSessionEnded   Reason = "SESSION_ENDED"         // the token's session was signed out, revoked or expired, or its user deleted
	ReasonRefreshInvalid Reason = "REFRESH_TOKEN_INVALID" // unknown refresh token, or of an ended session
	ReasonRefreshExpired Reason = "REFRESH_TOKEN_EXPIRED" // a refresh token past its lifetime
	ReasonRefreshReused  Reason = "REFRESH_TOKEN_REUSED"  // a used refresh token presented again
	ReasonBadCredentials Reason = "BAD_CREDENTIALS"       // login: wrong email or password (never which)
)

// Unauthenticatedf returns an UNAUTHENTICATED error with its reason.
func Unauthenticatedf(reason Reason, format string, args ...any) *Error {
	return &Error{Code: Unauthenticated, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalidf returns a BAD_USER_INPUT error about one input field.
func Invalidf(field, format string, args ...any) *Error {
	return &Error{Code: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// CodeOf returns the code of err: Internal for any error that is not an *Error.
func CodeOf(err error) Code {
	if e := As(err); e != nil {
		return e.Code
	}
	return Internal
}

// RetryAfterSeconds is e.RetryAfter in whole seconds, rounded up, at least 1:
// the value of extensions.retryAfter and of a Retry-After header.
func (e *Error) RetryAfterSeconds() int {
	return max(int((e.RetryAfter+time.Second-1)/time.Second), 1)
}
