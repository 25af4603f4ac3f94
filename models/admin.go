package models

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// Account administration. Only approved admins may list and change
// accounts; the @auth(requires: ADMIN) directive checks the caller at the
// start of the request, and every change below checks the acting admin again
// inside its own transaction, so an admin demoted a moment ago cannot act.
//
// Invariant: there is always at least one approved admin. administer is the
// one place that enforces it, for every change of every account, whoever
// asks — an admin about themselves included.

// MaxUsersPage is the largest page of users, the bound of `first`.
const MaxUsersPage = 100

// UserPage is one page of the admin's user list, newest first.
type UserPage struct {
	Users   []User
	HasNext bool
}

// ListUsers returns up to first accounts (1–MaxUsersPage), newest first
// (created_at, then id, descending), only those with status when it is
// given, continuing after the cursor after when it is not empty. Only
// admins may list accounts. A first out of range is BAD_USER_INPUT on
// "first"; a cursor this server did not make is BAD_USER_INPUT on "after".
func ListUsers(ctx context.Context, db *gorm.DB, status *UserStatus, first int, after string) (*UserPage, error) {
	if first < 1 || first > MaxUsersPage {
		return nil, apperr.Invalidf("first", "first must be between 1 and %d", MaxUsersPage)
	}
	q := db.WithContext(ctx).Model(&User{})
	if status != nil {
		q = q.Where("status = ?", *status)
	}
	if after != "" {
		createdAt, id, ok := decodeUserCursor(after)
		if !ok {
			return nil, apperr.Invalidf("after", "after must be the cursor of an edge of a previous page")
		}
		q = q.Where("created_at < ? OR (created_at = ? AND id < ?)", createdAt, createdAt, id)
	}
	var users []User
	if err := q.Order("created_at DESC, id DESC").Limit(first + 1).Find(&users).Error; err != nil {
		return nil, err
	}
	page := &UserPage{Users: users}
	if len(users) > first {
		page.Users, page.HasNext = users[:first], true
	}
	return page, nil
}

// UserCursor is the opaque position of u in ListUsers' order.
func UserCursor(u *User) string {
	return base64.RawURLEncoding.EncodeToString([]byte(u.CreatedAt.UTC().Format(time.RFC3339Nano) + " " + u.ID))
}

func decodeUserCursor(cursor string) (time.Time, string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", false
	}
	at, id, ok := strings.Cut(string(raw), " ")
	if !ok {
		return time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, "", false
	}
	if _, err := uuid.Parse(id); err != nil {
		return time.Time{}, "", false
	}
	return t.UTC(), id, true
}

// PendingUserCount returns how many accounts wait for approval. Only
// admins may ask.
func PendingUserCount(ctx context.Context, db *gorm.DB) (int, error) {
	var n int64
	err := db.WithContext(ctx).Model(&User{}).Where("status = ?", StatusPending).Count(&n).Error
	return int(n), err
}

// UserUpdate is what an admin changes on an account; nil fields stay.
type UserUpdate struct {
	Email   *string
	IsAdmin *bool
	Status  *UserStatus
}

// UpdateUser changes the account id on behalf of the admin actorID and
// returns it as it is now. Any approved admin may change any account,
// their own included: its email (normalised; CONFLICT if another account
// has it), its admin right, its status. Approving (a change to APPROVED)
// records when and by whom; returning it to PENDING clears that. A demoted
// admin loses admin rights on their next request, because every request
// reloads the user; so does a disabled or pending one (ACCOUNT_DISABLED,
// ACCOUNT_PENDING). Approving an account again ends every session it had
// before: disabling is the answer to a compromised account, and
// re-approval must not revive the sessions (and refresh tokens) issued
// before it — the user signs in afresh. NOT_FOUND if there is no such
// account; FORBIDDEN if the change would leave no approved admin.
func UpdateUser(ctx context.Context, db *gorm.DB, actorID, id string, upd UserUpdate) (*User, error) {
	var email string
	if upd.Email != nil {
		email = NormalizeEmail(*upd.Email)
		if err := ValidateEmail("input.email", email); err != nil {
			return nil, err
		}
	}
	u, err := administer(ctx, db, actorID, id, func(tx *gorm.DB, u *User) error {
		now := Now()
		changes := map[string]any{"updated_at": now}
		if upd.Email != nil && email != u.Email {
			u.Email, changes["email"] = email, email
		}
		if upd.IsAdmin != nil {
			u.IsAdmin, changes["is_admin"] = *upd.IsAdmin, *upd.IsAdmin
		}
		if upd.Status != nil && *upd.Status != u.Status {
			switch *upd.Status {
			case StatusApproved:
				u.ApprovedAt, u.ApprovedByID = &now, &actorID
			case StatusPending:
				u.ApprovedAt, u.ApprovedByID = nil, nil
			}
			u.Status = *upd.Status
			changes["status"], changes["approved_at"], changes["approved_by"] = u.Status, u.ApprovedAt, u.ApprovedByID
			if u.Status == StatusApproved {
				if err := tx.Model(&Session{}).Where("user_id = ? AND revoked_at IS NULL", u.ID).
					Update("revoked_at", now).Error; err != nil {
					return err
				}
			}
		}
		u.UpdatedAt = now
		return tx.Model(&User{}).Where("id = ?", u.ID).Updates(changes).Error
	})
	if isUniqueViolation(err) {
		return nil, apperr.Errorf(apperr.Conflict, "another account already has this email")
	}
	return u, err
}

// DeleteUser deletes the account id, on behalf of the admin actorID, with
// its sessions and cloud credentials (the database cascades). Any approved
// admin may delete any account, their own included. NOT_FOUND if there is
// no such account; FORBIDDEN for the last approved admin.
func DeleteUser(ctx context.Context, db *gorm.DB, actorID, id string) error {
	_, err := administer(ctx, db, actorID, id, func(tx *gorm.DB, u *User) error {
		u.IsAdmin, u.Status = false, StatusDisabled // gone: it counts as no admin
		return tx.Delete(&User{}, "id = ?", u.ID).Error
	})
	return err
}

// ResetPassword replaces the password hash of the account id, on behalf of
// the admin actorID, and revokes every session of that account. Any
// approved admin may, for any account. NOT_FOUND if there is no such
// account.
func ResetPassword(ctx context.Context, db *gorm.DB, actorID, id, hash string) error {
	_, err := administer(ctx, db, actorID, id, func(tx *gorm.DB, u *User) error {
		if err := SetPasswordHash(ctx, tx, u.ID, hash); err != nil {
			return err
		}
		return RevokeSessions(ctx, tx, u.ID, "")
	})
	return err
}

// administer runs change on the account id inside one transaction holding
// the "admins" lock, so that changes of accounts happen one at a time, and
// enforces the rules of account administration in this one place: the
// actor must still be an approved admin when the change runs, the account
// must exist, and if the change (which writes through tx and updates u to
// match) takes away the last approved admin, it is rolled back with
// FORBIDDEN. The admin count is read inside the lock, after the change, so
// two admins demoting each other at the same moment cannot both succeed.
func administer(ctx context.Context, db *gorm.DB, actorID, id string, change func(tx *gorm.DB, u *User) error) (*User, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errUserNotFound
	}
	var u User
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lock(tx, "admins"); err != nil {
			return err
		}
		var actor User
		err := tx.Where("id = ?", actorID).Take(&actor).Error
		if notFound(err) || err == nil && !actor.IsActiveAdmin() {
			return apperr.Errorf(apperr.Forbidden, "only approved administrators may manage accounts")
		}
		if err != nil {
			return err
		}
		if err := tx.Where("id = ?", id).Take(&u).Error; err != nil {
			if notFound(err) {
				return errUserNotFound
			}
			return err
		}
		wasActiveAdmin := u.IsActiveAdmin()
		if err := change(tx, &u); err != nil {
			return err
		}
		if !wasActiveAdmin || u.IsActiveAdmin() {
			return nil
		}
		var admins int64
		if err := tx.Model(&User{}).Where("is_admin AND status = ?", StatusApproved).Count(&admins).Error; err != nil {
			return err
		}
		if admins == 0 {
			return apperr.Errorf(apperr.Forbidden,
				"%s is the last approved administrator: approve another administrator first, so that someone can still manage accounts", u.Email)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

var errUserNotFound = apperr.Errorf(apperr.NotFound, "user not found")
