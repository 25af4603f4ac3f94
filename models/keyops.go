package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cloudkeys/keyring"
)

// This file holds what the database records about the encryption keys so
// that every replica agrees (SPEC §10): which kid seals new values
// (key_state), the key-check value of every kid used so far (key_checks),
// and the heartbeats of the running servers (server_heartbeats), which the
// keys commands read to know who holds which key. Migration 0006_key_ops.

// ActiveKey is the kid the database records as the one that seals.
type ActiveKey struct {
	KID         string
	ActivatedAt time.Time
}

type keyStateRow struct {
	ID          int       `gorm:"column:id;primaryKey"`
	ActiveKID   string    `gorm:"column:active_kid"`
	ActivatedAt time.Time `gorm:"column:activated_at"`
}

func (keyStateRow) TableName() string { return "key_state" }

// RecordedActiveKey returns the active kid the database records; ok is
// false when it records none yet (then each server's first key is active).
func RecordedActiveKey(ctx context.Context, db *gorm.DB) (ActiveKey, bool, error) {
	var rows []keyStateRow
	if err := db.WithContext(ctx).Where("id = 1").Limit(1).Find(&rows).Error; err != nil {
		return ActiveKey{}, false, fmt.Errorf("read the active key: %w", err)
	}
	if len(rows) == 0 {
		return ActiveKey{}, false, nil
	}
	return ActiveKey{KID: rows[0].ActiveKID, ActivatedAt: rows[0].ActivatedAt}, true, nil
}

// RecordActiveKeyIfNone records kid as the active key when the database
// records none yet, and returns the one it records now (kid, or the one
// another server or command recorded first).
func RecordActiveKeyIfNone(ctx context.Context, db *gorm.DB, kid string) (ActiveKey, error) {
	row := keyStateRow{ID: 1, ActiveKID: kid, ActivatedAt: Now()}
	if err := db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return ActiveKey{}, fmt.Errorf("record the active key: %w", err)
	}
	a, ok, err := RecordedActiveKey(ctx, db)
	if err == nil && !ok {
		err = errors.New("record the active key: the row is not there")
	}
	return a, err
}

// SetActiveKey records kid as the key every server seals with.
func SetActiveKey(ctx context.Context, db *gorm.DB, kid string) error {
	row := keyStateRow{ID: 1, ActiveKID: kid, ActivatedAt: Now()}
	err := db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns([]string{"active_kid", "activated_at"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("record the active key: %w", err)
	}
	return nil
}

type keyCheckRow struct {
	KID        string    `gorm:"column:kid;primaryKey"`
	CheckValue string    `gorm:"column:check_value"`
	RecordedAt time.Time `gorm:"column:recorded_at"`
}

func (keyCheckRow) TableName() string { return "key_checks" }

// KeyCheckValues returns the recorded key-check value of every kid.
func KeyCheckValues(ctx context.Context, db *gorm.DB) (map[string]string, error) {
	var rows []keyCheckRow
	if err := db.WithContext(ctx).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read the key-check values: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.KID] = r.CheckValue
	}
	return out, nil
}

// KeyMismatchError names the kids whose key bytes are not the ones the
// database recorded for them (same kid, other bytes: bit rot, a bad hand
// edit, another deployment's key file).
type KeyMismatchError struct{ KIDs []string }

func (e *KeyMismatchError) Error() string {
	names := make([]string, len(e.KIDs))
	for i, k := range e.KIDs {
		names[i] = fmt.Sprintf("%q", k)
	}
	return "the key under kid " + strings.Join(names, ", ") +
		" is not the key the database recorded for it (its key-check value differs): same kid, other key bytes"
}

// CheckKeyValues compares the key-check value of every key of k with the
// one the database records for its kid. When one differs it returns a
// *KeyMismatchError and records nothing; otherwise it records the values
// of the kids seen for the first time. Two servers recording different
// bytes for a new kid at once: one wins, and the other gets the error.
func CheckKeyValues(ctx context.Context, db *gorm.DB, k *keyring.Keyring) error {
	mismatched := func(recorded map[string]string) []string {
		var out []string
		for _, kid := range k.KIDs() {
			kcv, _ := k.CheckValue(kid)
			if v, ok := recorded[kid]; ok && v != kcv {
				out = append(out, kid)
			}
		}
		return out
	}
	recorded, err := KeyCheckValues(ctx, db)
	if err != nil {
		return err
	}
	if bad := mismatched(recorded); len(bad) > 0 {
		return &KeyMismatchError{KIDs: bad}
	}
	var fresh []keyCheckRow
	for _, kid := range k.KIDs() {
		if _, ok := recorded[kid]; !ok {
			kcv, _ := k.CheckValue(kid)
			fresh = append(fresh, keyCheckRow{KID: kid, CheckValue: kcv, RecordedAt: Now()})
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh).Error; err != nil {
		return fmt.Errorf("record the key-check values: %w", err)
	}
	if recorded, err = KeyCheckValues(ctx, db); err != nil {
		return err
	}
	if bad := mismatched(recorded); len(bad) > 0 {
		return &KeyMismatchError{KIDs: bad}
	}
	return nil
}

// HeldKey is one key a server holds, as its heartbeat reports it.
type HeldKey struct {
	KID string `json:"kid"`
	KCV string `json:"kcv"` // key-check value
}

// HeldKeys lists the keys of k with their key-check values, in set order.
func HeldKeys(k *keyring.Keyring) []HeldKey {
	out := make([]HeldKey, 0, len(k.KIDs()))
	for _, kid := range k.KIDs() {
		kcv, _ := k.CheckValue(kid)
		out = append(out, HeldKey{KID: kid, KCV: kcv})
	}
	return out
}

// Heartbeat is what one running server records about itself.
type Heartbeat struct {
	InstanceID string
	Hostname   string
	PID        int
	Version    string
	// KeySource is where its keys come from (a file, or the environment).
	KeySource string
	Keys      []HeldKey
	// ActiveKID is the kid it seals new values with.
	ActiveKID string
	StartedAt time.Time
	LastSeen  time.Time
	// ExpiresAt is LastSeen plus the server's live window: it is live
	// until then.
	ExpiresAt time.Time
}

// Holds reports whether the server holds a key under kid.
func (h Heartbeat) Holds(kid string) bool {
	return slices.ContainsFunc(h.Keys, func(k HeldKey) bool { return k.KID == kid })
}

// CheckValue returns the key-check value of the server's key under kid.
func (h Heartbeat) CheckValue(kid string) (string, bool) {
	for _, k := range h.Keys {
		if k.KID == kid {
			return k.KCV, true
		}
	}
	return "", false
}

// KIDs lists the kids the server holds, in its set order.
func (h Heartbeat) KIDs() []string {
	out := make([]string, len(h.Keys))
	for i, k := range h.Keys {
		out[i] = k.KID
	}
	return out
}

// Name is how messages name the server: its instance ID, and its host and
// process when the ID does not say them.
func (h Heartbeat) Name() string {
	return fmt.Sprintf("%s (host %s, pid %d)", h.InstanceID, h.Hostname, h.PID)
}

type heartbeatRow struct {
	InstanceID string    `gorm:"column:instance_id;primaryKey"`
	Hostname   string    `gorm:"column:hostname"`
	PID        int       `gorm:"column:pid"`
	Version    string    `gorm:"column:version"`
	KeySource  string    `gorm:"column:key_source"`
	Keys       string    `gorm:"column:keys"`
	ActiveKID  string    `gorm:"column:active_kid"`
	StartedAt  time.Time `gorm:"column:started_at"`
	LastSeen   time.Time `gorm:"column:last_seen"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
}

func (heartbeatRow) TableName() string { return "server_heartbeats" }

// Beat records (or refreshes) the heartbeat of one server.
func Beat(ctx context.Context, db *gorm.DB, h Heartbeat) error {
	keys, err := json.Marshal(h.Keys)
	if err != nil {
		return err
	}
	row := heartbeatRow{InstanceID: h.InstanceID, Hostname: h.Hostname, PID: h.PID, Version: h.Version,
		KeySource: h.KeySource, Keys: string(keys), ActiveKID: h.ActiveKID,
		StartedAt: h.StartedAt.UTC(), LastSeen: h.LastSeen.UTC(), ExpiresAt: h.ExpiresAt.UTC()}
	err = db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "instance_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"hostname", "pid", "version", "key_source", "keys", "active_kid", "started_at", "last_seen", "expires_at"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("record the heartbeat: %w", err)
	}
	return nil
}

// EndHeartbeat removes a server's heartbeat (a clean shutdown).
func EndHeartbeat(ctx context.Context, db *gorm.DB, instanceID string) error {
	return db.WithContext(ctx).Where("instance_id = ?", instanceID).Delete(&heartbeatRow{}).Error
}

// PruneHeartbeats removes the heartbeats of servers that stopped without
// a clean shutdown and have not been seen since before.
func PruneHeartbeats(ctx context.Context, db *gorm.DB, before time.Time) error {
	return db.WithContext(ctx).Where("expires_at < ?", before.UTC()).Delete(&heartbeatRow{}).Error
}

// LiveServers returns the servers whose heartbeat has not expired at now,
// by instance ID.
func LiveServers(ctx context.Context, db *gorm.DB, now time.Time) ([]Heartbeat, error) {
	var rows []heartbeatRow
	if err := db.WithContext(ctx).Where("expires_at > ?", now.UTC()).Order("instance_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read the servers' heartbeats: %w", err)
	}
	out := make([]Heartbeat, 0, len(rows))
	for _, r := range rows {
		h := Heartbeat{InstanceID: r.InstanceID, Hostname: r.Hostname, PID: r.PID, Version: r.Version,
			KeySource: r.KeySource, ActiveKID: r.ActiveKID, StartedAt: r.StartedAt, LastSeen: r.LastSeen, ExpiresAt: r.ExpiresAt}
		if err := json.Unmarshal([]byte(r.Keys), &h.Keys); err != nil {
			return nil, fmt.Errorf("the heartbeat of %s: keys: %w", r.InstanceID, err)
		}
		out = append(out, h)
	}
	return out, nil
}
