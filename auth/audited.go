package auth

import (
	"context"

	"gorm.io/gorm"

	"cloudkeys/apperr"
	"cloudkeys/audit"
	"cloudkeys/models"
)

// The account service records every security event of SPEC §9 in the audit
// trail. An operation that changes something records its event in the
// same transaction (audit.Log.Do): it succeeds only if its event is
// written. A refusal (a wrong password, a throttled or refused sign-in, a
// reused refresh token) is recorded on its own; if that row cannot be
// written, the caller gets the write's error instead of the refusal, so no
// refusal goes unrecorded either.

// userEvent is an event about the account targetID done by actorID.
func userEvent(action audit.Action, actorID, targetID, detail string) audit.Event {
	return audit.Event{Action: action, Outcome: audit.Succeeded, ActorID: actorID,
		TargetType: "user", TargetID: targetID, Detail: detail}
}

// sessionEvent is an event about the session sessionID of userID.
func sessionEvent(action audit.Action, userID, sessionID, detail string) audit.Event {
	return audit.Event{Action: action, Outcome: audit.Succeeded, ActorID: userID,
		TargetType: "session", TargetID: sessionID, Detail: detail}
}

// signInRefused records a password check that was refused or failed (a
// sign-in, or changePassword's check of the current password: action):
// for the account user (nil when the email has none) of email, with why as
// the detail. Throttled refusals are recorded once per email and per
// address in each window of the login throttle, so a flood is not a flood
// of rows.
func (s *Service) signInRefused(ctx context.Context, action audit.Action, email string, user *models.User, outcome audit.Outcome, why error) error {
	e := audit.Event{Action: action, Outcome: outcome, TargetType: "email", TargetID: email}
	if user != nil {
		e.TargetType, e.TargetID = "user", user.ID // the actor is unknown: whoever tried
	}
	e.Detail = string(apperr.CodeOf(why))
	if ae := apperr.As(why); ae != nil && ae.Reason != "" {
		e.Detail = string(ae.Reason)
	}
	if e.Detail == string(apperr.RateLimited) {
		_, err := s.audit.AppendOnce(ctx, nil, e, s.limits.Window, "email:"+email, "addr:"+throttleAddr(ClientAddr(ctx)))
		return err
	}
	return s.audit.Append(ctx, nil, e)
}

// refused returns why, or the error of recording it.
func refused(why, recordErr error) error {
	if recordErr != nil {
		return recordErr
	}
	return why
}

// inTx runs op in a transaction of the service's database.
func (s *Service) inTx(ctx context.Context, op func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(op)
}

// AuditEvents lists the audit trail, newest first, as f selects. Only
// approved admins may.
func (s *Service) AuditEvents(ctx context.Context, admin *models.User, f audit.Filter) ([]audit.Row, bool, error) {
	if err := requireAdmin(admin); err != nil {
		return nil, false, err
	}
	return audit.List(ctx, s.db, f)
}

// SecurityEvents lists the events of the caller's own account, newest
// first: those they did and those done to them. Only the caller sees
// their own.
func (s *Service) SecurityEvents(ctx context.Context, c Caller, first int, after string) ([]audit.Row, bool, error) {
	return audit.List(ctx, s.db, audit.Filter{User: c.User.ID, First: first, After: after})
}

// ActorOf returns the account that did r as viewer may see it: admins see
// every actor, anyone else only themselves (an event done to them by an
// admin shows its action, not the admin's account). Nil when the account
// no longer exists.
func (s *Service) ActorOf(ctx context.Context, viewer *models.User, r *audit.Row) (*models.User, error) {
	if viewer == nil || r.ActorID == nil {
		return nil, nil
	}
	if *r.ActorID == viewer.ID {
		return viewer, nil
	}
	if !viewer.IsActiveAdmin() {
		return nil, nil
	}
	u, err := models.UserByID(ctx, s.db, *r.ActorID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return u, err
}
