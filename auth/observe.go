package auth

import (
	"errors"

	"cloudkeys/apperr"
)

// Observer is told what the account service did, for metrics (package
// metrics implements it; app wires it). Its methods must be cheap and safe
// for concurrent use; they are never given an email, an address or a
// password, only the fixed strings below. A nil Observer (Options.Observer
// unset) is told nothing.
type Observer interface {
	// SignIn is called once per Login with its outcome: one of
	// SignInSucceeded … SignInError.
	SignIn(outcome string)
	// ThrottleRefused is called for each attempt a limit refused before
	// any password was hashed: LimitSignIn (the login throttle, for login
	// and changePassword) or LimitRegister (register per address).
	ThrottleRefused(limit string)
}

// The outcomes of a sign-in.
const (
	SignInSucceeded = "succeeded"
	SignInFailed    = "failed" // wrong email or password
	SignInThrottled = "throttled"
	SignInPending   = "pending"
	SignInDisabled  = "disabled"
	SignInError     = "error" // the hashing slots busy, the database down, the client gone
)

// The limits whose refusals are counted.
const (
	LimitSignIn   = "sign_in"
	LimitRegister = "register"
)

// observeSignIn tells the observer how a Login that returned err ended.
func (s *Service) observeSignIn(err error) {
	if s.observer != nil {
		s.observer.SignIn(signInOutcome(err))
	}
}

func signInOutcome(err error) string {
	switch {
	case err == nil:
		return SignInSucceeded
	case errors.Is(err, errCredentials):
		return SignInFailed
	case errors.Is(err, errBusy):
		return SignInError // RATE_LIMITED too, but the hashing slots', not the throttle's
	}
	switch apperr.CodeOf(err) {
	case apperr.RateLimited:
		return SignInThrottled
	case apperr.AccountPending:
		return SignInPending
	case apperr.AccountDisabled:
		return SignInDisabled
	}
	return SignInError
}

// observeRefusal tells the observer that limit refused an attempt, when
// err (the limit's answer) is RATE_LIMITED.
func (s *Service) observeRefusal(limit string, err error) {
	if s.observer != nil && apperr.CodeOf(err) == apperr.RateLimited {
		s.observer.ThrottleRefused(limit)
	}
}
