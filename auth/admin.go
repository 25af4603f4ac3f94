package auth

// The administration of accounts. Every operation takes the acting admin
// explicitly; models enforces, inside each change's transaction, that the
// actor is still an approved admin and that the last one is never demoted,
// disabled or deleted.

import (
	"context"

	"gorm.io/gorm"

	"cloudkeys/apperr"
	"cloudkeys/audit"
	"cloudkeys/models"
)

// CreateAdmin stores a new approved admin with the password hashed by h:
// the operator's way to the first admin (cloudkeys users create-admin),
// needing the database but no caller. The email and password follow
// register's rules; an email already taken is CONFLICT (an existing account
// is never changed from here).
func CreateAdmin(ctx context.Context, db *gorm.DB, h *Hasher, email, password string) (*models.User, error) {
	email = models.NormalizeEmail(email)
	if err := models.ValidateEmail("email", email); err != nil {
		return nil, err
	}
	if err := ValidatePassword("password", password); err != nil {
		return nil, err
	}
	hash, err := h.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	return models.InsertUser(ctx, db, models.NewUser{Email: email, PasswordHash: hash, Admin: true})
}

// UpdateUser changes the account id (email, admin right, status) on behalf
// of admin; see models.UpdateUser for the rules. Only approved admins may.
//
// Approving, disabling, promoting and demoting are each recorded in the
// audit trail, in the change's transaction.
func (s *Service) UpdateUser(ctx context.Context, admin *models.User, id string, upd models.UserUpdate) (*models.User, error) {
	var after *models.User
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		before, err := models.UserByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if after, err = models.UpdateUser(ctx, tx, admin.ID, id, upd); err != nil {
			return err
		}
		for _, action := range changes(before, after) {
			if err := s.audit.Append(ctx, tx, userEvent(action, admin.ID, id, "")); err != nil {
				return err
			}
		}
		return nil
	})
	return after, err
}

// changes names the audited changes from before to after.
func changes(before, after *models.User) []audit.Action {
	var out []audit.Action
	if before.Status != after.Status {
		switch after.Status {
		case models.StatusApproved:
			out = append(out, audit.UserApproved)
		case models.StatusDisabled:
			out = append(out, audit.UserDisabled)
		}
	}
	switch {
	case !before.IsAdmin && after.IsAdmin:
		out = append(out, audit.UserPromoted)
	case before.IsAdmin && !after.IsAdmin:
		out = append(out, audit.UserDemoted)
	}
	return out
}

// DeleteUser deletes the account id with its sessions and credentials on
// behalf of admin. Only approved admins may; never the last one.
func (s *Service) DeleteUser(ctx context.Context, admin *models.User, id string) error {
	return s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		return userEvent(audit.UserDeleted, admin.ID, id, ""), models.DeleteUser(ctx, tx, admin.ID, id)
	})
}

// ResetPassword sets a new password for the account id and signs out every
// session of that account. Only an approved admin (the caller) may, for any
// account, their own included. NOT_FOUND if there is no such account.
func (s *Service) ResetPassword(ctx context.Context, admin *models.User, id, password string) error {
	if err := ValidatePassword("newPassword", password); err != nil {
		return err
	}
	if _, err := models.UserByID(ctx, s.db, id); err != nil {
		return err // before the expensive hash
	}
	hash, err := s.hasher.Accounts().Hash(ctx, password)
	if err != nil {
		return err
	}
	return s.audit.Do(ctx, func(tx *gorm.DB) (audit.Event, error) {
		return userEvent(audit.PasswordReset, admin.ID, id, "sessions ended"), models.ResetPassword(ctx, tx, admin.ID, id, hash)
	})
}

// Users lists accounts, newest first, a page at a time. Only admins may.
func (s *Service) Users(ctx context.Context, admin *models.User, status *models.UserStatus, first int, after string) (*models.UserPage, error) {
	if err := requireAdmin(admin); err != nil {
		return nil, err
	}
	return models.ListUsers(ctx, s.db, status, first, after)
}

// PendingUserCount counts the accounts waiting for approval. Only admins may.
func (s *Service) PendingUserCount(ctx context.Context, admin *models.User) (int, error) {
	if err := requireAdmin(admin); err != nil {
		return 0, err
	}
	return models.PendingUserCount(ctx, s.db)
}

// ApprovedBy returns the admin who approved u, as viewer may see it: only
// administrators may see who approved an account (that names another
// account's email, role and status); for every other viewer, and for no
// viewer at all (the user of a login answer), it is nil, not an error. An
// approver deleted since is nil too.
func (s *Service) ApprovedBy(ctx context.Context, viewer, u *models.User) (*models.User, error) {
	if u.ApprovedByID == nil || viewer == nil || !viewer.IsAdmin {
		return nil, nil
	}
	approver, err := models.UserByID(ctx, s.db, *u.ApprovedByID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	return approver, err
}

// requireAdmin refuses anyone but an admin: the @auth(requires: ADMIN)
// directive already did, this keeps the rule true for every caller.
func requireAdmin(u *models.User) error {
	if u == nil || !u.IsAdmin {
		return errNotAdmin
	}
	return nil
}

var errNotAdmin = apperr.Errorf(apperr.Forbidden, "only administrators may do this")
