package audit

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cloudkeys/apperr"
)

// MaxPage is the largest page of events, the bound of `first`.
const MaxPage = 100

// Filter selects events for List. Zero fields select everything.
type Filter struct {
	Action   Action
	ActorID  string
	TargetID string
	// User selects the events that name the user as actor or as target:
	// a user's own security events (me.securityEvents).
	User string
	// Since keeps the events at or after it.
	Since time.Time
	// After is the cursor of an edge of a previous page: the page goes on
	// after it.
	After string
	// First is the page size, 1–MaxPage.
	First int
}

// List returns up to f.First events that f selects, newest first (by seq),
// and whether more follow. Only admins may list every event (auditEvents);
// a user may see only those naming them (f.User set to their own ID): the
// resolver decides, List does not. A First out of range is BAD_USER_INPUT on
// "first", an unknown action on "action", and a cursor this server did not
// make on "after".
func List(ctx context.Context, db *gorm.DB, f Filter) ([]Row, bool, error) {
	if f.First < 1 || f.First > MaxPage {
		return nil, false, apperr.Invalidf("first", "first must be between 1 and %d", MaxPage)
	}
	q := db.WithContext(ctx).Model(&Row{})
	if f.Action != "" {
		if !f.Action.Valid() {
			return nil, false, apperr.Invalidf("action", "%q is not an audit action", f.Action)
		}
		q = q.Where("action = ?", string(f.Action))
	}
	if f.ActorID != "" {
		q = q.Where("actor_id = ?", f.ActorID)
	}
	if f.TargetID != "" {
		q = q.Where("target_id = ?", f.TargetID)
	}
	if f.User != "" {
		q = q.Where("(actor_id = ? OR target_id = ?)", f.User, f.User)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if f.After != "" {
		seq, ok := decodeCursor(f.After)
		if !ok {
			return nil, false, apperr.Invalidf("after", "after must be the cursor of an edge of a previous page")
		}
		q = q.Where("seq < ?", seq)
	}
	var rows []Row
	if err := q.Order("seq DESC").Limit(f.First + 1).Find(&rows).Error; err != nil {
		return nil, false, err
	}
	for i := range rows {
		rows[i].At = rows[i].At.UTC()
	}
	if len(rows) > f.First {
		return rows[:f.First], true, nil
	}
	return rows, false, nil
}

// cursorPrefix makes cursors opaque and tells them from other lists'.
const cursorPrefix = "audit:"

// Cursor is the opaque position of r in List's order.
func (r *Row) Cursor() string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(r.Seq, 10)))
}

func decodeCursor(c string) (int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seq < 1 {
		return 0, false
	}
	return seq, true
}
