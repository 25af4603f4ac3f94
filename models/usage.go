package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// UsageKey is what usage is counted against: a credential, through one of
// its relay keys or (RelayKeyID "") its owner's browser path, on one UTC day
// ("2006-01-02").
type UsageKey struct {
	CredentialID string
	RelayKeyID   string
	Day          string
}

// Usage is counted use: relayed requests, those that failed (refused by the
// relay or answered ≥ 400 by the provider), and the provider's token counts.
type Usage struct {
	Requests     int64
	Errors       int64
	InputTokens  int64
	OutputTokens int64
	// LastUsedAt is the last call counted; nil if none.
	LastUsedAt *time.Time
}

// Add adds u's counts to s and keeps the later LastUsedAt.
func (s *Usage) Add(u Usage) {
	s.Requests += u.Requests
	s.Errors += u.Errors
	s.InputTokens += u.InputTokens
	s.OutputTokens += u.OutputTokens
	if u.LastUsedAt != nil && (s.LastUsedAt == nil || u.LastUsedAt.After(*s.LastUsedAt)) {
		t := *u.LastUsedAt
		s.LastUsedAt = &t
	}
}

// UsageDay is the usage of one UTC day.
type UsageDay struct {
	Day string
	Usage
}

// DayOf is the UTC day of t as usage counts it.
func DayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// AddUsage adds each delta to its row in one transaction (rows created as
// needed): the relay's batched write, one per flush however many calls and
// streamed events it covers. A credential deleted meanwhile loses its
// deltas (its usage is gone with it).
func AddUsage(ctx context.Context, db *gorm.DB, deltas map[UsageKey]Usage) error {
	if len(deltas) == 0 {
		return nil
	}
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for k, u := range deltas {
			if u.LastUsedAt == nil {
				continue
			}
			// INSERT … SELECT … WHERE EXISTS skips a credential deleted
			// since the call, which a foreign key would refuse.
			err := tx.Exec(`INSERT INTO relay_usage
				(credential_id, relay_key_id, day, requests, errors, input_tokens, output_tokens, last_used_at)
				SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM cloud_credentials WHERE id = ?)
				ON CONFLICT (credential_id, relay_key_id, day) DO UPDATE SET
				requests = relay_usage.requests + excluded.requests,
				errors = relay_usage.errors + excluded.errors,
				input_tokens = relay_usage.input_tokens + excluded.input_tokens,
				output_tokens = relay_usage.output_tokens + excluded.output_tokens,
				last_used_at = CASE WHEN excluded.last_used_at > relay_usage.last_used_at
					THEN excluded.last_used_at ELSE relay_usage.last_used_at END`,
				k.CredentialID, k.RelayKeyID, k.Day, u.Requests, u.Errors, u.InputTokens, u.OutputTokens,
				*u.LastUsedAt, k.CredentialID).Error
			if err != nil {
				return fmt.Errorf("add relay usage: %w", err)
			}
		}
		return nil
	})
}

// UsageFilter selects usage rows: a credential's (all its relay keys and
// its browser path), or one relay key's.
type UsageFilter struct {
	CredentialID string
	RelayKeyID   string
}

func (f UsageFilter) apply(q *gorm.DB) *gorm.DB {
	q = q.Table("relay_usage")
	if f.RelayKeyID != "" {
		return q.Where("relay_key_id = ?", f.RelayKeyID)
	}
	return q.Where("credential_id = ?", f.CredentialID)
}

// TotalUsage returns the usage f selects, summed over every day. The
// caller has established that the credential or key is the viewer's.
func TotalUsage(ctx context.Context, db *gorm.DB, f UsageFilter) (*Usage, error) {
	var row struct {
		Requests, Errors, InputTokens, OutputTokens int64
		LastUsedAt                                  *string
	}
	err := f.apply(db.WithContext(ctx)).Select(`COALESCE(SUM(requests), 0) AS requests, COALESCE(SUM(errors), 0) AS errors,
		COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens`).Scan(&row).Error
	if err != nil {
		return nil, err
	}
	u := &Usage{Requests: row.Requests, Errors: row.Errors, InputTokens: row.InputTokens, OutputTokens: row.OutputTokens}
	var last []time.Time
	if err := f.apply(db.WithContext(ctx)).Order("last_used_at DESC").Limit(1).Pluck("last_used_at", &last).Error; err != nil {
		return nil, err
	}
	if len(last) == 1 {
		t := last[0].UTC()
		u.LastUsedAt = &t
	}
	return u, nil
}

// MaxUsageDays is the most days usageByDay answers.
const MaxUsageDays = 366

// UsageByDay returns the usage f selects on each of the days UTC days up to
// today (the day of now), newest first, days without use included with
// zeros. days must be 1–366 (BAD_USER_INPUT).
func UsageByDay(ctx context.Context, db *gorm.DB, f UsageFilter, days int, now time.Time) ([]*UsageDay, error) {
	if days < 1 || days > MaxUsageDays {
		return nil, apperr.Invalidf("days", "days must be between 1 and %d", MaxUsageDays)
	}
	today := now.UTC()
	first := DayOf(today.AddDate(0, 0, -(days - 1)))
	var rows []struct {
		Day                                         string
		Requests, Errors, InputTokens, OutputTokens int64
	}
	err := f.apply(db.WithContext(ctx)).Select(`day, SUM(requests) AS requests, SUM(errors) AS errors,
		SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens`).
		Where("day >= ?", first).Group("day").Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	byDay := make(map[string]Usage, len(rows))
	for _, r := range rows {
		byDay[r.Day] = Usage{Requests: r.Requests, Errors: r.Errors, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens}
	}
	out := make([]*UsageDay, days)
	for i := range days {
		d := DayOf(today.AddDate(0, 0, -i))
		out[i] = &UsageDay{Day: d, Usage: byDay[d]}
	}
	return out, nil
}
