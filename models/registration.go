package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// RegistrationLimit bounds register calls per client address within a
// sliding window (CLOUDKEYS_REGISTER_MAX_PER_ADDR per hour). Zero PerAddr
// turns it off. The count lives in the database, so every replica counts
// the same attempts.
type RegistrationLimit struct {
	PerAddr int
	Window  time.Duration
}

type registration struct {
	Addr      string
	CreatedAt time.Time
}

func (registration) TableName() string { return "registrations" }

// AdmitRegistration counts one register attempt from addr at now, or
// refuses it with RATE_LIMITED (RetryAfter: until the oldest attempt in the
// window leaves it) when addr has used up the limit. Attempts are counted
// when admitted, before any password is hashed, whatever becomes of them:
// a flood of invalid registrations costs its sender as much as valid ones.
// Attempts of one address are admitted one at a time, so concurrent ones
// cannot all slip under the limit.
func AdmitRegistration(ctx context.Context, db *gorm.DB, addr string, l RegistrationLimit, now time.Time) error {
	if l.PerAddr <= 0 {
		return nil
	}
	addr = failureKey(addr)
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lock(tx, "register:"+addr); err != nil {
			return err
		}
		since := now.Add(-l.Window)
		var recent []time.Time
		if err := tx.Model(&registration{}).Where("addr = ? AND created_at > ?", addr, since).
			Order("created_at").Limit(l.PerAddr).Pluck("created_at", &recent).Error; err != nil {
			return err
		}
		if len(recent) >= l.PerAddr {
			return &apperr.Error{Code: apperr.RateLimited, RetryAfter: recent[0].Add(l.Window).Sub(now),
				Message: fmt.Sprintf("too many accounts registered from this address; at most %d per %s", l.PerAddr, l.Window)}
		}
		return tx.Create(&registration{Addr: addr, CreatedAt: now}).Error
	})
}

// PruneRegistrations deletes the attempts that left the window before.
func PruneRegistrations(ctx context.Context, db *gorm.DB, before time.Time) error {
	return db.WithContext(ctx).Where("created_at < ?", before).Delete(&registration{}).Error
}
