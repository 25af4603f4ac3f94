package audit

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"encoding/json"
	"fmt"

	"gorm.io/gorm"
)

// Fault is what is wrong with a row of the chain.
type Fault string

// The faults Verify names.
const (
	// Altered: the row's mac does not match its content. It was changed, or
	// forged (inserted with a made-up mac) by someone without the key.
	Altered Fault = "ALTERED"
	// Inserted: the row does not link to the row before it (its prev_mac is
	// not that row's mac): a row was inserted or replaced here, or rows
	// before it were removed and the rest renumbered.
	Inserted Fault = "INSERTED"
	// Removed: rows before this one are missing: a gap in seq, or oldest
	// rows gone without a checkpoint recording them as pruned.
	Removed Fault = "REMOVED"
)

// Link is a position in the chain: a row's seq and mac.
type Link struct {
	Seq int64
	MAC string
}

// Problem names the first row at fault.
type Problem struct {
	Seq    int64
	ID     string
	Fault  Fault
	Reason string
}

func (p *Problem) String() string {
	return fmt.Sprintf("row %d (%s): %s: %s", p.Seq, p.ID, p.Fault, p.Reason)
}

// Report is the outcome of Verify.
type Report struct {
	// OK is set when every row verifies (an empty table too: compare Head
	// with an exported head to see whether rows were removed at the end).
	OK bool
	// Rows is how many rows the table holds; From is the oldest one's seq.
	Rows int64
	From int64
	// Head is the newest row, as stored (verified only when OK).
	Head Link
	// FirstBad is the first row at fault, nil when OK.
	FirstBad *Problem
}

// BrokenError is Prune's refusal when the rows it would delete do not
// verify: deleting them would destroy the evidence.
type BrokenError struct{ Problem Problem }

func (e *BrokenError) Error() string {
	return "audit: the chain does not verify, so nothing was pruned: " + e.Problem.String()
}

// Verify recomputes the chain under key from its oldest row to its head and
// names the first row altered, inserted or removed (see the package
// comment for what it can and cannot see). It reads the table in one
// statement, so it sees one consistent state while appends and prunes go
// on. Only operators run it (cloudkeys audit verify): it needs the key.
// An error means the chain could not be read, not that it is broken.
func Verify(ctx context.Context, db *gorm.DB, key []byte) (Report, error) {
	if len(key) < MinKeyLen {
		return Report{}, ErrShortKey
	}
	w := &walker{key: key}
	if err := scanRows(db.WithContext(ctx), "", w.step); err != nil {
		return Report{}, fmt.Errorf("audit: read the chain: %w", err)
	}
	rep := Report{Rows: w.rows, From: w.from.Seq, Head: w.head, FirstBad: w.finish()}
	rep.OK = rep.FirstBad == nil
	return rep, nil
}

// walker checks rows one by one, in seq order.
type walker struct {
	key  []byte
	rows int64
	head Link
	// from is the oldest row: seq 1 (linked to Genesis), or the first row
	// after a prune, whose prev_mac a checkpoint must vouch for.
	from   Row
	fromOK bool // from is seq 1, or a verified checkpoint vouches for it
	next   int64
	prev   string
	bad    *Problem
	// mark is a row whose verified mac to keep in markMAC (Prune's last
	// pruned row).
	mark    int64
	markMAC string
}

func (w *walker) step(r *Row) {
	w.rows++
	w.head = Link{r.Seq, r.MAC}
	if w.rows == 1 {
		w.from = *r
		w.next, w.prev = r.Seq, r.PrevMAC
		if r.Seq == 1 {
			w.prev, w.fromOK = Genesis, true
		}
	}
	if w.bad == nil {
		switch {
		case r.Seq != w.next:
			w.fail(r, Removed, fmt.Sprintf("rows %d to %d are missing", w.next, r.Seq-1))
		case r.PrevMAC != w.prev:
			if r.Seq == 1 {
				w.fail(r, Inserted, "the first row does not start the chain (its prev_mac is not the genesis value)")
			} else {
				w.fail(r, Inserted, fmt.Sprintf("its prev_mac is not the mac of row %d", r.Seq-1))
			}
		case !hmac.Equal([]byte(rowMAC(w.key, r)), []byte(r.MAC)):
			w.fail(r, Altered, "its mac does not match its content: the row was changed, or forged without the key")
		default:
			w.next, w.prev = r.Seq+1, r.MAC
			if r.Seq == w.mark {
				w.markMAC = r.MAC
			}
		}
	}
	if r.Action == ChainCheckpoint && w.bad == nil && !w.fromOK {
		if c, ok := parseCheckpoint(r.Detail); ok && c.Seq == w.from.Seq-1 && c.MAC == w.from.PrevMAC {
			w.fromOK = true
		}
	}
}

func (w *walker) fail(r *Row, f Fault, reason string) {
	w.bad = &Problem{Seq: r.Seq, ID: r.ID, Fault: f, Reason: reason}
}

// finish returns the fault found. A break in the chain comes first: the
// checkpoint that would have vouched for the oldest row lies after it, and
// may be what was removed. Otherwise the oldest row is at fault when it is
// not row 1 and no checkpoint of the verified chain vouches for it.
func (w *walker) finish() *Problem {
	if w.rows == 0 || w.fromOK || w.bad != nil {
		return w.bad
	}
	return &Problem{Seq: w.from.Seq, ID: w.from.ID, Fault: Removed,
		Reason: fmt.Sprintf("rows up to %d are missing and no checkpoint records them as pruned", w.from.Seq-1)}
}

// checkpoint is the detail of a CHAIN_CHECKPOINT row.
type checkpoint struct {
	// Seq and MAC are the last pruned row: the prev_mac of the row after.
	Seq  int64  `json:"pruned_through_seq"`
	MAC  string `json:"pruned_through_mac"`
	Rows int64  `json:"pruned_rows"`
	// Before is the retention bound of the prune (RFC 3339).
	Before string `json:"before"`
}

func parseCheckpoint(detail *string) (checkpoint, bool) {
	var c checkpoint
	if detail == nil || json.Unmarshal([]byte(*detail), &c) != nil || c.Seq < 1 {
		return checkpoint{}, false
	}
	return c, true
}

const rowColumns = `seq, id, at, action, outcome, actor_id, target_type, target_id,
	client_addr, request_id, detail, prev_mac, mac`

// scanRows calls f with each row, in seq order, of one SELECT (where, if
// not empty, filters it: "seq <= ?" and its args).
func scanRows(db *gorm.DB, where string, f func(*Row), args ...any) error {
	q := "SELECT " + rowColumns + " FROM audit_events"
	if where != "" {
		q += " WHERE " + where
	}
	rows, err := db.Raw(q+" ORDER BY seq", args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		r    Row
		null [6]sql.NullString
	)
	for rows.Next() {
		if err := rows.Scan(&r.Seq, &r.ID, &r.At, &r.Action, &r.Outcome, &null[0], &null[1], &null[2],
			&null[3], &null[4], &null[5], &r.PrevMAC, &r.MAC); err != nil {
			return err
		}
		r.At = r.At.UTC()
		for i, p := range []**string{&r.ActorID, &r.TargetType, &r.TargetID, &r.ClientAddr, &r.RequestID, &r.Detail} {
			*p = nil
			if null[i].Valid {
				s := null[i].String
				*p = &s
			}
		}
		f(&r)
	}
	return rows.Err()
}
