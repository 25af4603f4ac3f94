package auth

import (
	"context"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/models"
)

// Sessions returns the caller's live sessions, most recently used first.
// Only the caller sees their own sessions (an admin ends someone else's by
// disabling the account or resetting its password).
func (s *Service) Sessions(ctx context.Context, c Caller) ([]models.Session, error) {
	return models.LiveSessions(ctx, s.db, c.User.ID, s.now())
}

// RevokeSession ends one of the caller's live sessions: its access and
// refresh tokens stop working on their next use. Someone else's session,
// or one already ended, is NOT_FOUND.
func (s *Service) RevokeSession(ctx context.Context, c Caller, sessionID string) error {
	return s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		return sessionEvent(audit.SessionRevoked, c.User.ID, sessionID, ""), models.EndSession(ctx, tx, c.User.ID, sessionID, s.now())
	})
}
