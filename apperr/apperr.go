// Package apperr defines the one error type of cloudkeys' domain.
//
// A rule that refuses a request (in models or auth) returns an *Error carrying
// one of the codes below; the GraphQL error presenter translates it, in one
// place, into a GraphQL error with extensions.code. Any other error is an
// internal one: its text is logged, never shown to the caller.
package apperr

import (
	"errors"
	"fmt"
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
	Conflict        Code = "CONFLICT"              // would duplicate something unique
	RateLimited     Code = "RATE_LIMITED"          // try again after RetryAfter
	Internal        Code = "INTERNAL_SERVER_ERROR" // a bug or an outage; details only in the log
)

// Error is a refusal the caller may see. Message is written for the caller and
// must never contain a secret (password, token, API key).
type Error struct {
	Code    Code
	Message string
	// Field is the input field at fault, for Invalid (e.g. "input.name").
	Field string
	// RetryAfter is how long to wait, for RateLimited.
	RetryAfter time.Duration
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
