// Package audit is cloudkeys' tamper-evident audit trail (SPEC §9): every
// security event is one row of the audit_events table, and the rows form one
// chain keyed with the audit key.
//
// # The chain
//
// Rows are numbered by seq, 1, 2, 3, … with no gaps: an append takes the
// chain's lock (a transaction-scoped advisory lock on PostgreSQL; on SQLite
// every transaction is BEGIN IMMEDIATE and so already holds the one write
// lock), reads the head and writes seq = head + 1. A row's mac is
//
//	HMAC-SHA256(key, canonical(row))
//
// in hex, where canonical is an unambiguous, length-prefixed encoding of
// prev_mac, seq, id, at (UTC, microseconds), action, outcome, and the actor,
// target type, target ID, client address, request ID and detail (each marked
// present or NULL). prev_mac is the previous row's mac; that of row 1 is
// Genesis (64 zeros). seq is also the table's primary key, so even a writer
// that skipped the lock could not fork the chain: its insert would fail.
//
// # What the key protects
//
// Someone who can write to the database but does not hold the key cannot:
//   - alter any column of any row (its mac no longer matches: Altered);
//   - insert a row anywhere, forged or copied from elsewhere (no valid mac
//     for its content and place: Altered or Inserted);
//   - remove a row from the middle (a gap in seq, or, renumbered, a
//     prev_mac that no longer links: Removed or Inserted);
//   - remove the oldest rows (no checkpoint vouches for the new oldest row:
//     Removed), or forge a checkpoint that would.
//
// Verify finds all of these and names the first row at fault. What it cannot
// see on its own is the removal of the newest rows (or of every row): what
// remains is a shorter, valid chain. That is caught by comparing with the
// head (seq and mac, see Head) that every server exports in its metrics and
// logs: a head seen earlier whose seq is now missing or carries another mac
// means rows were removed at the end. Whoever holds the key can rewrite the
// chain at will: it must be kept apart from the database (SPEC §9).
//
// # The key
//
// The audit key is at least 32 bytes (MinKeyLen) of secret random data, such
// as 32 bytes from crypto/rand, the same for every replica, and kept for as
// long as rows written with it are kept: rows written under one key do not
// verify under another (this package does not rotate keys).
//
// # Pruning
//
// Prune deletes the oldest rows and appends, at the head like any other row,
// a CHAIN_CHECKPOINT row whose detail records the last pruned seq and its
// mac. The oldest remaining row's prev_mac is that mac, so Verify, which
// starts at the oldest remaining row, accepts its prev_mac when a checkpoint
// further along the (verified) chain records exactly that seq and mac. The
// checkpoint is keyed like every row, so it cannot be forged to cover a
// removal that was not a prune.
//
// # Writing rows
//
// Append writes within the caller's transaction when given one, so that an
// operation and its audit row commit together, and an event whose row cannot
// be written fails its operation. Append takes the chain's lock, held until
// that transaction ends: it should be the transaction's last statement, and
// in any case the last lock the transaction takes (a lock taken after it
// could deadlock with a transaction waiting for the chain). No row may carry
// a password, token or key: callers put identifiers, never secrets, in an
// Event, and every field is bounded (the Max* constants) and cleaned of
// control characters here.
package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Action is what happened. The GraphQL enum AuditAction has the same names.
type Action string

// The actions, one per security event of SPEC §9.
const (
	SignIn             Action = "SIGN_IN" // SUCCEEDED, FAILED, or REFUSED (throttled; recorded once per window, see AppendOnce)
	RefreshTokenReused Action = "REFRESH_TOKEN_REUSED"
	SignedOut          Action = "SIGNED_OUT"
	SessionRevoked     Action = "SESSION_REVOKED"
	PasswordChanged    Action = "PASSWORD_CHANGED"
	PasswordReset      Action = "PASSWORD_RESET"
	UserRegistered     Action = "USER_REGISTERED"
	UserCreated        Action = "USER_CREATED"
	UserApproved       Action = "USER_APPROVED"
	UserDisabled       Action = "USER_DISABLED"
	UserPromoted       Action = "USER_PROMOTED"
	UserDemoted        Action = "USER_DEMOTED"
	UserDeleted        Action = "USER_DELETED"
	CredentialCreated  Action = "CREDENTIAL_CREATED"
	CredentialUpdated  Action = "CREDENTIAL_UPDATED"
	CredentialDeleted  Action = "CREDENTIAL_DELETED"
	CredentialTested   Action = "CREDENTIAL_TESTED"
	RelayKeyCreated    Action = "RELAY_KEY_CREATED"
	RelayKeyRevoked    Action = "RELAY_KEY_REVOKED"
	KeyAdded           Action = "KEY_ADDED"
	KeyActivated       Action = "KEY_ACTIVATED"
	KeyRewrapped       Action = "KEY_REWRAPPED"
	KeyRetired         Action = "KEY_RETIRED"
	ChainCheckpoint    Action = "CHAIN_CHECKPOINT" // written by Prune only
)

var actions = []Action{
	SignIn, RefreshTokenReused, SignedOut, SessionRevoked, PasswordChanged, PasswordReset,
	UserRegistered, UserCreated, UserApproved, UserDisabled, UserPromoted, UserDemoted, UserDeleted,
	CredentialCreated, CredentialUpdated, CredentialDeleted, CredentialTested,
	RelayKeyCreated, RelayKeyRevoked,
	KeyAdded, KeyActivated, KeyRewrapped, KeyRetired,
	ChainCheckpoint,
}

// Actions returns every action, in the order of SPEC §9 (CHAIN_CHECKPOINT
// last): the values of the GraphQL enum AuditAction.
func Actions() []Action { return append([]Action(nil), actions...) }

// Valid reports whether a is one of Actions.
func (a Action) Valid() bool {
	for _, x := range actions {
		if a == x {
			return true
		}
	}
	return false
}

// Outcome is how the event ended.
type Outcome string

// The outcomes (the GraphQL enum AuditOutcome).
const (
	Succeeded Outcome = "SUCCEEDED"
	Failed    Outcome = "FAILED"
	Refused   Outcome = "REFUSED" // refused before it was tried: throttled, rate-limited
)

// Valid reports whether o is one of the outcomes.
func (o Outcome) Valid() bool { return o == Succeeded || o == Failed || o == Refused }

// The bounds of an Event's fields, in bytes. Longer values are cut (at a
// character boundary), so that no caller-supplied value (a request ID, a
// forwarded address) can make an operation fail or a row grow.
const (
	MaxIDLen         = 128 // ActorID, TargetID, RequestID
	MaxTargetTypeLen = 64
	MaxClientAddrLen = 128
	MaxDetailLen     = 1024
)

// MinKeyLen is the shortest audit key accepted.
const MinKeyLen = 32

// ErrShortKey refuses an audit key shorter than MinKeyLen.
var ErrShortKey = fmt.Errorf("audit: the audit key must be at least %d bytes", MinKeyLen)

// Event is one security event to record. Empty strings are stored as NULL.
// No field may hold a password, token or key.
type Event struct {
	Action  Action
	Outcome Outcome
	// ActorID is the user who acted (empty: nobody signed in, or a command
	// run on the server). It stays in the row when the user is deleted.
	ActorID string
	// TargetType and TargetID name what was acted on: "user" and a user ID,
	// "credential", "relay_key", "session", "key" (a keyring kid), …
	TargetType string
	TargetID   string
	ClientAddr string
	RequestID  string
	// Detail is a short, human-readable note (for example the fields an
	// update changed); never a secret.
	Detail string
}

// row validates e and returns its row, without seq, id, at or macs.
func (e Event) row() (*Row, error) {
	if !e.Action.Valid() {
		return nil, fmt.Errorf("audit: unknown action %q", e.Action)
	}
	if e.Action == ChainCheckpoint {
		return nil, errors.New("audit: CHAIN_CHECKPOINT rows are written by Prune only")
	}
	if !e.Outcome.Valid() {
		return nil, fmt.Errorf("audit: unknown outcome %q for %s", e.Outcome, e.Action)
	}
	return &Row{
		Action:     e.Action,
		Outcome:    e.Outcome,
		ActorID:    field(e.ActorID, MaxIDLen),
		TargetType: field(e.TargetType, MaxTargetTypeLen),
		TargetID:   field(e.TargetID, MaxIDLen),
		ClientAddr: field(e.ClientAddr, MaxClientAddrLen),
		RequestID:  field(e.RequestID, MaxIDLen),
		Detail:     field(e.Detail, MaxDetailLen),
	}, nil
}

// field is s as stored: nil when empty; otherwise valid UTF-8 without
// control characters (NUL included, which PostgreSQL refuses), at most max
// bytes.
func field(s string, max int) *string {
	if s == "" {
		return nil
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return &s
}

// Row is one stored event. The nullable columns are nil when NULL.
type Row struct {
	Seq        int64     `gorm:"column:seq;primaryKey;autoIncrement:false"`
	ID         string    `gorm:"column:id"`
	At         time.Time `gorm:"column:at"`
	Action     Action    `gorm:"column:action"`
	Outcome    Outcome   `gorm:"column:outcome"`
	ActorID    *string   `gorm:"column:actor_id"`
	TargetType *string   `gorm:"column:target_type"`
	TargetID   *string   `gorm:"column:target_id"`
	ClientAddr *string   `gorm:"column:client_addr"`
	RequestID  *string   `gorm:"column:request_id"`
	Detail     *string   `gorm:"column:detail"`
	PrevMAC    string    `gorm:"column:prev_mac"`
	MAC        string    `gorm:"column:mac"`
}

// TableName is the table of Row.
func (Row) TableName() string { return "audit_events" }
