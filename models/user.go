package models

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// UserStatus says whether an account may sign in.
type UserStatus string

// The account states.
const (
	StatusPending  UserStatus = "PENDING"
	StatusApproved UserStatus = "APPROVED"
	StatusDisabled UserStatus = "DISABLED"
)

// Valid reports whether s is one of the account states.
func (s UserStatus) Valid() bool {
	return s == StatusPending || s == StatusApproved || s == StatusDisabled
}

// Role is what the @auth directive asks of a caller.
type Role string

// The roles.
const (
	RoleUser  Role = "USER"
	RoleAdmin Role = "ADMIN"
)

// User is an account. PasswordHash is an Argon2id PHC string and never leaves
// the server.
type User struct {
	ID           string `gorm:"primaryKey"`
	Email        string
	PasswordHash string
	IsAdmin      bool
	Status       UserStatus
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ApprovedAt   *time.Time
	ApprovedByID *string `gorm:"column:approved_by"`
}

// BeforeCreate gives a new user a random ID.
func (u *User) BeforeCreate(*gorm.DB) error {
	if u.ID == "" {
		u.ID = uuid.NewString()
	}
	return nil
}

// IsActiveAdmin reports whether u counts towards the last-admin invariant.
func (u *User) IsActiveAdmin() bool { return u.IsAdmin && u.Status == StatusApproved }

// NormalizeEmail trims surrounding space, lowercases and puts the address
// in Unicode NFC, as register, login, updateUser and the login throttle
// all do: "É" typed precomposed or as E + combining accent is one address.
func NormalizeEmail(email string) string {
	return norm.NFC.String(strings.ToLower(strings.TrimSpace(email)))
}

// ValidateEmail checks a normalised email address; field names the input.
func ValidateEmail(field, email string) error {
	if email == "" {
		return apperr.Invalidf(field, "email is required")
	}
	if len(email) > 254 {
		return apperr.Invalidf(field, "email must be at most 254 characters")
	}
	for _, r := range email {
		// Invisible and look-alike tricks: zero-width and bidi-control
		// characters (format, Cf), controls, and any space.
		if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) || unicode.IsSpace(r) {
			return apperr.Invalidf(field, "email must not contain spaces, control or invisible characters")
		}
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || strings.Count(email, "@") != 1 {
		return apperr.Invalidf(field, "email must be a plain address such as name@example.com")
	}
	return nil
}

// CreateUser stores a new account with an already hashed password. The
// first account ever created is an approved admin; every later one is
// pending. An email already taken is CONFLICT.
func CreateUser(ctx context.Context, db *gorm.DB, email, passwordHash string) (*User, error) {
	return InsertUser(ctx, db, NewUser{Email: email, PasswordHash: passwordHash, FirstUserAdmin: true})
}

// NewUser is an account to store.
type NewUser struct {
	Email        string
	PasswordHash string // already hashed
	// FirstUserAdmin makes the first account ever created an approved
	// admin (development, or CLOUDKEYS_FIRST_USER_ADMIN=true); otherwise it
	// is pending like every other.
	FirstUserAdmin bool
	// Admin stores an approved admin whatever exists already (cloudkeys
	// users create-admin).
	Admin bool
	// Approved stores an approved (non-admin) account, approved by the
	// admin ApprovedBy (createUser).
	Approved   bool
	ApprovedBy string
}

// InsertUser stores a new account: an approved admin if n.Admin, or if
// n.FirstUserAdmin and there is no account yet; pending otherwise. An email
// already taken is CONFLICT.
func InsertUser(ctx context.Context, db *gorm.DB, n NewUser) (*User, error) {
	email := NormalizeEmail(n.Email)
	if err := ValidateEmail("input.email", email); err != nil {
		return nil, err
	}
	u := &User{Email: email, PasswordHash: n.PasswordHash, Status: StatusPending}
	if n.Admin || n.Approved {
		now := Now()
		u.IsAdmin, u.Status, u.ApprovedAt = n.Admin, StatusApproved, &now
		if n.ApprovedBy != "" {
			u.ApprovedByID = &n.ApprovedBy
		}
	}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lock(tx, "users"); err != nil {
			return err
		}
		if n.FirstUserAdmin && !n.Admin {
			var count int64
			if err := tx.Model(&User{}).Limit(1).Count(&count).Error; err != nil {
				return err
			}
			if count == 0 {
				u.IsAdmin, u.Status = true, StatusApproved
			}
		}
		return tx.Create(u).Error
	})
	if isUniqueViolation(err) {
		return nil, apperr.Errorf(apperr.Conflict, "an account with this email already exists")
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// UserByEmail finds an account by its (normalised) email; NOT_FOUND if none.
func UserByEmail(ctx context.Context, db *gorm.DB, email string) (*User, error) {
	var u User
	err := db.WithContext(ctx).Where("email = ?", NormalizeEmail(email)).Take(&u).Error
	if notFound(err) {
		return nil, apperr.Errorf(apperr.NotFound, "user not found")
	}
	return &u, err
}

// UserByID finds an account by ID; NOT_FOUND if none.
func UserByID(ctx context.Context, db *gorm.DB, id string) (*User, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, apperr.Errorf(apperr.NotFound, "user not found")
	}
	var u User
	err := db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	if notFound(err) {
		return nil, apperr.Errorf(apperr.NotFound, "user not found")
	}
	return &u, err
}

// SetPasswordHash replaces an account's password hash.
func SetPasswordHash(ctx context.Context, db *gorm.DB, userID, hash string) error {
	res := db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).
		Updates(map[string]any{"password_hash": hash, "updated_at": Now()})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return apperr.Errorf(apperr.NotFound, "user not found")
	}
	return nil
}

// ReplacePasswordHash swaps the hash only if it is still old, so that a
// transparent re-hash never overwrites a password changed meanwhile.
func ReplacePasswordHash(ctx context.Context, db *gorm.DB, userID, old, hash string) error {
	return db.WithContext(ctx).Model(&User{}).Where("id = ? AND password_hash = ?", userID, old).
		Update("password_hash", hash).Error
}

// ErrNoSession is returned by UserForSession when the session is gone,
// revoked or expired, or the user no longer exists.
var ErrNoSession = errors.New("session not found")
