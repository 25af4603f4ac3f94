package app

import (
	"context"
	"fmt"

	"cloudkeys/apperr"
	"cloudkeys/auth"
	"cloudkeys/config"
	"cloudkeys/models"
)

// CreateAdmin stores a new approved admin in the configured database, with
// the password hashed under the configured Argon2id parameters. It needs
// neither the JWT secret nor the encryption keys, and never migrates: a
// database with pending migrations (or none yet) is refused, naming
// 'cloudkeys migrate'. An email already taken is refused, saying what that
// account is; it is never changed from here.
func CreateAdmin(ctx context.Context, cfg *config.Config, email, password string) (*models.User, error) {
	hasher, err := auth.NewHasher(cfg.Argon2, cfg.HashConcurrency, cfg.HashWait)
	if err != nil {
		return nil, err
	}
	opts := dbOptions(cfg)
	opts.NoMigrate = true
	db, err := models.Open(ctx, opts)
	if err != nil {
		return nil, migrateFirst(cfg, err, "users create-admin")
	}
	defer models.Close(db)
	u, err := auth.CreateAdmin(ctx, db, hasher, email, password)
	if apperr.CodeOf(err) == apperr.Conflict {
		existing, lookupErr := models.UserByEmail(ctx, db, email)
		if lookupErr != nil {
			return nil, err
		}
		if existing.IsActiveAdmin() {
			return nil, fmt.Errorf("%s is an approved admin already; nothing was changed (its password neither: an admin resets passwords with resetUserPassword)", existing.Email)
		}
		return nil, fmt.Errorf("an account with email %s already exists (%s, not an approved admin); this command only creates accounts and never changes one: "+
			"create an admin with another email, sign in, and approve or promote %s with updateUser",
			existing.Email, existing.Status, existing.Email)
	}
	if e := apperr.As(err); e != nil && e.Code == apperr.Invalid {
		if e.Field == "password" {
			return nil, fmt.Errorf("the password on standard input: %s", e.Message)
		}
		return nil, fmt.Errorf("--%s: %s", e.Field, e.Message)
	}
	return u, err
}
