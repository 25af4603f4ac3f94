package auth

import (
	"context"
	"net/netip"
	"time"

	"cloudkeys/apperr"
	"cloudkeys/audit"
	"cloudkeys/models"
)

// throttled runs verify, a password check for email from addr, as one
// attempt counted by the login throttle (models.BeginLogin): past the
// limits it answers RATE_LIMITED without running verify, so no password is
// hashed. verify reports whether the password was right; a wrong one
// (false, nil) stays counted as a failure, a right one forgives the email's
// failures, and an error (the hasher busy, the database down) leaves no
// trace.
//
// A refusal is recorded in the audit trail as action (SIGN_IN, or
// PASSWORD_CHANGED for changePassword's check) REFUSED, once per window.
func (s *Service) throttled(ctx context.Context, action audit.Action, email, addr string, verify func() (bool, error)) (bool, error) {
	now := s.now()
	s.prune(ctx, now)
	attempt, err := models.BeginLogin(ctx, s.db, email, throttleAddr(addr), s.limits, now)
	if err != nil {
		if e := apperr.As(err); e != nil && e.Code == apperr.RateLimited {
			s.log.WarnContext(ctx, "sign-in attempt refused: too many failures", "client_addr", addr, "retry_after", e.RetryAfter)
			s.observeRefusal(LimitSignIn, err)
			return false, refused(err, s.signInRefused(ctx, action, email, nil, audit.Refused, err))
		}
		return false, err
	}
	ok, err := verify()
	// The verdict is recorded even if the client has gone meanwhile.
	done := context.WithoutCancel(ctx)
	var settle error
	switch {
	case err != nil:
		settle = attempt.Abandon(done)
	case ok:
		settle = attempt.Passed(done)
	default:
		settle = attempt.Failed(done)
		s.log.InfoContext(ctx, "sign-in attempt failed", "client_addr", addr)
	}
	if settle != nil {
		s.log.WarnContext(ctx, "recording a sign-in attempt failed", "error", settle)
	}
	return ok, err
}

// pruneInterval is how often, at most, a process deletes rows that no
// longer matter, so that the tables do not grow forever.
const pruneInterval = time.Minute

// sessionRetention is how long an ended (expired or revoked) session is
// kept, with its refresh tokens and client address, for an investigation.
const sessionRetention = 24 * time.Hour

// prune deletes the sign-in failures that left the window and the sessions
// that ended more than sessionRetention ago, at most once per pruneInterval
// (or per window, if shorter) in this process.
func (s *Service) prune(ctx context.Context, now time.Time) {
	every := min(pruneInterval, s.limits.Window)
	last := s.lastPrune.Load()
	if now.UnixNano()-last < int64(every) || !s.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	n, err := models.PruneLoginFailures(ctx, s.db, now.Add(-s.limits.Window))
	if err != nil {
		s.log.WarnContext(ctx, "pruning old sign-in failures failed", "error", err)
	} else if n > 0 {
		s.log.DebugContext(ctx, "pruned old sign-in failures", "rows", n)
	}
	if s.registration.PerAddr > 0 {
		if err := models.PruneRegistrations(ctx, s.db, now.Add(-s.registration.Window)); err != nil {
			s.log.WarnContext(ctx, "pruning old registrations failed", "error", err)
		}
	}
	n, err = models.PruneSessions(ctx, s.db, now.Add(-sessionRetention))
	if err != nil {
		s.log.WarnContext(ctx, "pruning ended sessions failed", "error", err)
	} else if n > 0 {
		s.log.DebugContext(ctx, "pruned ended sessions", "rows", n)
	}
}

// throttleAddr is the client address the login throttle counts under: the
// address itself for IPv4, its /64 for IPv6 — one host commonly holds a
// whole /64, and counting each of its 2^64 addresses apart would let it
// guess without limit.
func throttleAddr(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() || a.Is4In6() {
		return addr
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
