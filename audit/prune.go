package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Prune deletes the oldest rows, those written before before
// (CLOUDKEYS_AUDIT_RETENTION), and appends a CHAIN_CHECKPOINT row whose
// detail records the last deleted row's seq and mac, so that the rest still
// verifies (see the package comment). It deletes the longest run of oldest
// rows that are all older than before: a row newer than before is never
// deleted, even when a replica's clock put an older time on a later row.
// It returns how many rows it deleted; with none to delete it writes
// nothing. It also forgets the AppendOnce windows that have ended.
//
// The rows to delete are verified first, under the chain's lock: if they do
// not verify, nothing is deleted and the error is a *BrokenError naming the
// first row at fault, so that pruning never destroys the evidence of
// tampering. Appends wait while Prune runs: prune often (daily), so each
// run deletes a day's rows. Only the server's retention task prunes.
func (l *Log) Prune(ctx context.Context, before time.Time) (int64, error) {
	before = before.UTC()
	var n int64
	err := l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockChain(tx); err != nil {
			return fmt.Errorf("audit: lock the chain: %w", err)
		}
		var oldest, newest, keep sql.NullInt64
		if err := tx.Raw("SELECT MIN(seq), MAX(seq) FROM audit_events").Row().Scan(&oldest, &newest); err != nil {
			return err
		}
		if err := tx.Raw("SELECT MIN(seq) FROM audit_events WHERE at >= ?", before).Row().Scan(&keep); err != nil {
			return err
		}
		last := newest.Int64
		if keep.Valid {
			last = keep.Int64 - 1
		}
		if !oldest.Valid || last < oldest.Int64 {
			return nil
		}
		w := &walker{key: l.key, mark: last}
		if err := scanRows(tx, "seq <= ?", w.step, last+1); err != nil {
			return fmt.Errorf("audit: read the rows to prune: %w", err)
		}
		bad := w.bad
		if bad == nil && !w.fromOK {
			// The checkpoint that vouches for the oldest row lies beyond
			// the rows read.
			ok, err := vouched(tx, l.key, &w.from, last+1)
			if err != nil {
				return err
			}
			if !ok {
				bad = w.finish()
			}
		}
		if bad != nil {
			return &BrokenError{Problem: *bad}
		}
		// The checkpoint goes at the head before the rows go, so that it
		// links to the head even when every row is pruned.
		n = last - w.from.Seq + 1 // the rows read are contiguous
		detail, err := json.Marshal(checkpoint{Seq: last, MAC: w.markMAC, Rows: n,
			Before: before.Format(time.RFC3339Nano)})
		if err != nil {
			return err
		}
		d := string(detail)
		if err := l.append(tx, &Row{Action: ChainCheckpoint, Outcome: Succeeded, Detail: &d}); err != nil {
			return err
		}
		res := tx.Exec("DELETE FROM audit_events WHERE seq <= ?", last)
		if res.Error != nil {
			return fmt.Errorf("audit: prune: %w", res.Error)
		}
		if res.RowsAffected != n {
			return fmt.Errorf("audit: prune: deleted %d rows, not the %d verified", res.RowsAffected, n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, l.forgetWindows(ctx)
}

// forgetWindows deletes the AppendOnce windows that have ended, in a
// statement of its own: it waits for no lock while holding the chain's (an
// AppendOnce claims its windows before the chain), and on PostgreSQL it
// skips windows being claimed right now.
func (l *Log) forgetWindows(ctx context.Context) error {
	q := "DELETE FROM audit_dedup WHERE expires_at <= ?"
	if l.db.Dialector.Name() == "postgres" {
		q = `DELETE FROM audit_dedup WHERE key IN
			(SELECT key FROM audit_dedup WHERE expires_at <= ? FOR UPDATE SKIP LOCKED)`
	}
	if err := l.db.WithContext(ctx).Exec(q, l.clock()).Error; err != nil {
		return fmt.Errorf("audit: forget ended windows: %w", err)
	}
	return nil
}

// vouched reports whether a checkpoint after seq records the row before
// from as pruned with from's prev_mac, and carries a valid mac: it was
// written by Prune under the key.
func vouched(tx *gorm.DB, key []byte, from *Row, after int64) (bool, error) {
	found := false
	err := scanRows(tx, "seq > ? AND action = ?", func(r *Row) {
		c, ok := parseCheckpoint(r.Detail)
		if ok && c.Seq == from.Seq-1 && c.MAC == from.PrevMAC && rowMAC(key, r) == r.MAC {
			found = true
		}
	}, after, string(ChainCheckpoint))
	if err != nil {
		return false, fmt.Errorf("audit: read the checkpoints: %w", err)
	}
	return found, nil
}
