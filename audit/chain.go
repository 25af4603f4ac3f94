package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"cloudkeys/models"
)

// Genesis is the prev_mac of row 1: as many zeros as a mac has hex digits.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Log appends to the audit trail of one database with one key. It is safe
// for concurrent use, and any number of Logs (replicas) may append to the
// same database.
type Log struct {
	db  *gorm.DB
	key []byte
	now func() time.Time
	// addrOf and requestIDOf fill in the client address and request ID of an event
	// that has none, from the request's context (SetRequestInfo).
	addrOf, requestIDOf func(context.Context) string
}

// SetRequestInfo tells the Log how to read a request's client address and
// request ID from its context, so that events recorded during a request
// carry them without every caller passing them. Call it before use.
func (l *Log) SetRequestInfo(addr, requestID func(context.Context) string) {
	l.addrOf, l.requestIDOf = addr, requestID
}

// fill completes e from the request in ctx.
func (l *Log) fill(ctx context.Context, e Event) Event {
	if e.ClientAddr == "" && l.addrOf != nil {
		e.ClientAddr = l.addrOf(ctx)
	}
	if e.RequestID == "" && l.requestIDOf != nil {
		e.RequestID = l.requestIDOf(ctx)
	}
	return e
}

// Do runs op and records the event it returns in one transaction: the
// event is written if and only if op succeeds, and op fails if its event
// cannot be written (SPEC §9: no audited operation succeeds unrecorded).
// op's database calls must use the tx it is given.
func (l *Log) Do(ctx context.Context, op func(tx *gorm.DB) (Event, error)) error {
	return l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		e, err := op(tx)
		if err != nil {
			return err
		}
		return l.Append(ctx, tx, e)
	})
}

// New returns the Log of db, keyed with key (at least MinKeyLen bytes:
// ErrShortKey), timing rows with now (nil: models.Now).
func New(db *gorm.DB, key []byte, now func() time.Time) (*Log, error) {
	if len(key) < MinKeyLen {
		return nil, ErrShortKey
	}
	if now == nil {
		now = models.Now
	}
	return &Log{db: db, key: slices.Clone(key), now: now}, nil
}

func (l *Log) clock() time.Time { return l.now().UTC().Truncate(time.Microsecond) }

// Append records e at the head of the chain, within tx when it is a
// transaction (so that the row commits, or not, with the caller's
// operation), in a transaction of its own when tx is nil or not a
// transaction. An error means no row was written: the caller's operation
// must fail with it (SPEC §9). An unknown action or outcome is an error,
// and so is CHAIN_CHECKPOINT, which only Prune writes.
//
// Append holds the chain's lock until tx ends: call it last in tx. On
// PostgreSQL, tx must be READ COMMITTED (the default): under REPEATABLE READ
// or SERIALIZABLE its snapshot may predate the head, and the append then
// fails on seq's uniqueness (the operation fails; the chain never forks).
func (l *Log) Append(ctx context.Context, tx *gorm.DB, e Event) error {
	r, err := l.fill(ctx, e).row()
	if err != nil {
		return err
	}
	return l.inTx(ctx, tx, func(tx *gorm.DB) error { return l.append(tx, r) })
}

// AppendOnce records e like Append, unless each of the keys already
// recorded an event of e's action less than window ago: the first throttled
// sign-in per email or per address is recorded, and a flood does not become
// a flood of writes. keys are the caller's deduplication keys, e.g.
// "email:"+normalisedEmail and "addr:"+clientAddr; e is recorded when at
// least one of them is fresh (none recorded for e.Action within window),
// and every fresh key then starts a new window. It reports whether e was
// recorded.
//
// The windows live in the audit_dedup table (a key's SHA-256, scoped by
// action, and when its window ends), claimed by an atomic upsert, so
// replicas share them; Prune deletes the ended ones.
func (l *Log) AppendOnce(ctx context.Context, tx *gorm.DB, e Event, window time.Duration, keys ...string) (bool, error) {
	r, err := l.fill(ctx, e).row()
	if err != nil {
		return false, err
	}
	if len(keys) == 0 {
		return false, errors.New("audit: AppendOnce needs at least one deduplication key")
	}
	hashed := make([]string, len(keys))
	for i, k := range keys {
		sum := sha256.Sum256([]byte(string(e.Action) + "\x00" + k))
		hashed[i] = hex.EncodeToString(sum[:])
	}
	// One order for every caller: two floods sharing a key cannot deadlock
	// on PostgreSQL's row locks.
	slices.Sort(hashed)
	hashed = slices.Compact(hashed)
	recorded := false
	err = l.inTx(ctx, tx, func(tx *gorm.DB) error {
		now := l.clock()
		fresh := false
		for _, k := range hashed {
			res := tx.Exec(`INSERT INTO audit_dedup (key, expires_at) VALUES (?, ?)
				ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
				WHERE audit_dedup.expires_at <= ?`, k, now.Add(window), now)
			if res.Error != nil {
				return fmt.Errorf("audit: claim the window of %s: %w", e.Action, res.Error)
			}
			fresh = fresh || res.RowsAffected > 0
		}
		if !fresh {
			return nil
		}
		recorded = true
		return l.append(tx, r)
	})
	if err != nil {
		return false, err
	}
	return recorded, nil
}

// inTx runs f in tx when tx is a transaction, otherwise in a new
// transaction (of tx's handle, or of l's when tx is nil).
func (l *Log) inTx(ctx context.Context, tx *gorm.DB, f func(*gorm.DB) error) error {
	if tx == nil {
		return l.db.WithContext(ctx).Transaction(f)
	}
	tx = tx.WithContext(ctx)
	if c, ok := tx.Statement.ConnPool.(gorm.TxCommitter); ok && c != nil {
		return f(tx)
	}
	return tx.Transaction(f)
}

// append writes r at the head of the chain, in the transaction tx.
func (l *Log) append(tx *gorm.DB, r *Row) error {
	if err := lockChain(tx); err != nil {
		return fmt.Errorf("audit: lock the chain: %w", err)
	}
	seq, mac, err := head(tx)
	if err != nil {
		return fmt.Errorf("audit: read the head: %w", err)
	}
	r.Seq, r.PrevMAC = seq+1, mac
	if seq == 0 {
		r.PrevMAC = Genesis
	}
	r.ID = uuid.NewString()
	r.At = l.clock() // after the lock: at follows seq on each clock
	r.MAC = rowMAC(l.key, r)
	err = tx.Exec(`INSERT INTO audit_events (seq, id, at, action, outcome, actor_id, target_type,
		target_id, client_addr, request_id, detail, prev_mac, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Seq, r.ID, r.At, string(r.Action), string(r.Outcome), null(r.ActorID), null(r.TargetType),
		null(r.TargetID), null(r.ClientAddr), null(r.RequestID), null(r.Detail), r.PrevMAC, r.MAC).Error
	if err != nil {
		return fmt.Errorf("audit: append %s: %w", r.Action, err)
	}
	return nil
}

func null(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// chainLock is the PostgreSQL advisory lock that serialises appends (the
// same derivation as models' named locks, under its own name).
var chainLock = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("cloudkeys:audit-chain"))
	return int64(h.Sum64())
}()

// lockChain takes the chain's lock for the rest of the transaction tx. An
// SQLite transaction already holds the database's write lock (BEGIN
// IMMEDIATE, models.Open).
func lockChain(tx *gorm.DB) error {
	if tx.Dialector.Name() != "postgres" {
		return nil
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", chainLock).Error
}

// Head returns the seq and mac of the newest row (0 and "" when there is
// none): the chain head every server exports, so that removing the newest
// rows can be seen (see the package comment). Anyone with access to the
// server's metrics or logs may see it; it reveals no event.
func Head(ctx context.Context, db *gorm.DB) (seq int64, mac string, err error) {
	return head(db.WithContext(ctx))
}

func head(db *gorm.DB) (int64, string, error) {
	var seq int64
	var mac string
	err := db.Raw("SELECT seq, mac FROM audit_events ORDER BY seq DESC LIMIT 1").Row().Scan(&seq, &mac)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, mac, err
}

// timeLayout is at in the canonical encoding: UTC, microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// canonical is the unambiguous encoding of r that its mac covers: a version
// tag, then each field in a fixed order, strings as a 4-byte big-endian
// length and the bytes, nullable strings preceded by 0 (NULL) or 1.
func canonical(r *Row) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "cloudkeys audit v1\n"...)
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	opt := func(p *string) {
		if p == nil {
			b = append(b, 0)
			return
		}
		b = append(b, 1)
		str(*p)
	}
	str(r.PrevMAC)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Seq))
	str(r.ID)
	str(r.At.UTC().Format(timeLayout))
	str(string(r.Action))
	str(string(r.Outcome))
	opt(r.ActorID)
	opt(r.TargetType)
	opt(r.TargetID)
	opt(r.ClientAddr)
	opt(r.RequestID)
	opt(r.Detail)
	return b
}

// rowMAC is the mac r must carry: HMAC-SHA256(key, canonical(r)), in hex.
func rowMAC(key []byte, r *Row) string {
	m := hmac.New(sha256.New, key)
	m.Write(canonical(r))
	return hex.EncodeToString(m.Sum(nil))
}
