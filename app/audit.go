package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/config"
	"cloudkeys/models"
)

// auditHeadEvery is how often a server logs the audit chain's head, so
// that removing the newest rows (which leaves a chain that verifies) shows
// against the logs (SPEC §9). Pruning runs at most once per
// auditPruneEvery, on every replica (it is idempotent and serialised).
const (
	auditHeadEvery  = time.Minute
	auditPruneEvery = time.Hour
)

// startAuditUpkeep logs the chain's head once a minute and prunes events
// older than CLOUDKEYS_AUDIT_RETENTION once an hour, until Close.
//
// The head is also exported in the metrics (cloudkeys_audit_chain_head_seq
// and cloudkeys_audit_chain_head{mac}),
// as last read: a scrape never queries the database.
func (a *App) startAuditUpkeep() {
	a.auditStop, a.auditDone = make(chan struct{}), make(chan struct{})
	a.Metrics.AuditChainHead(func() (int64, string) {
		if h := a.auditHead.Load(); h != nil {
			return h.Seq, h.MAC
		}
		return 0, ""
	})
	go func() {
		defer close(a.auditDone)
		head := time.NewTicker(auditHeadEvery)
		defer head.Stop()
		var lastPrune time.Time
		for {
			ctx := context.Background()
			if time.Since(lastPrune) >= auditPruneEvery {
				lastPrune = time.Now()
				a.pruneAudit(ctx)
			}
			if seq, mac, err := audit.Head(ctx, a.DB); err != nil {
				a.Log.Warn("reading the audit chain's head failed", "error", err)
			} else {
				a.auditHead.Store(&audit.Link{Seq: seq, MAC: mac})
				a.Log.Info("audit chain head", "seq", seq, "mac", mac)
			}
			select {
			case <-a.auditStop:
				return
			case <-head.C:
			}
		}
	}()
}

func (a *App) pruneAudit(ctx context.Context) {
	now := time.Now()
	if a.Config.Now != nil {
		now = a.Config.Now()
	}
	n, err := a.Audit.Prune(ctx, now.Add(-a.Config.AuditRetention))
	if _, broken := errors.AsType[*audit.BrokenError](err); broken {
		a.Log.Error("the audit chain does not verify: pruning stopped; run 'cloudkeys audit verify'", "error", err)
		return
	}
	if err != nil {
		a.Log.Warn("pruning old audit events failed", "error", err)
	} else if n > 0 {
		a.Log.Info("pruned old audit events", "rows", n, "retention", a.Config.AuditRetention)
	}
}

func (a *App) stopAuditUpkeep() {
	if a.auditStop != nil {
		close(a.auditStop)
		<-a.auditDone
		a.auditStop = nil
	}
}

// VerifyAudit recomputes the audit chain of the configured database with
// the configured audit key (cloudkeys audit verify). It needs no JWT
// secret or encryption key, never migrates, and writes nothing. A head
// seen earlier (seq, and its MAC when known: a server's log or metrics)
// must still be in the chain: a chain cut at its end, or rewritten from a
// row on by someone holding the key, verifies on its own but not against
// the head.
func VerifyAudit(ctx context.Context, cfg *config.Config, seen audit.Link) (audit.Report, error) {
	key, err := cfg.LoadAuditKey()
	if err != nil {
		return audit.Report{}, err
	}
	if key == nil {
		return audit.Report{}, errors.New("no audit key: set CLOUDKEYS_AUDIT_KEY or CLOUDKEYS_AUDIT_KEY_FILE to the key the servers use (development servers generate <data dir>/audit-key)")
	}
	opts := dbOptions(cfg)
	opts.NoMigrate = true
	db, err := models.Open(ctx, opts)
	if err != nil {
		return audit.Report{}, migrateFirst(cfg, err, "audit verify")
	}
	defer models.Close(db)
	rep, err := audit.Verify(ctx, db, key)
	if err != nil || !rep.OK || seen.Seq == 0 {
		return rep, err
	}
	if seen.Seq > rep.Head.Seq {
		return rep, fmt.Errorf("the audit trail of %s ends at row %d, before the head %d seen earlier: its newest rows were removed",
			cfg.DatabaseName(), rep.Head.Seq, seen.Seq)
	}
	if seen.MAC != "" && seen.Seq >= rep.From {
		var macs []string
		if err := db.WithContext(ctx).Raw("SELECT mac FROM audit_events WHERE seq = ?", seen.Seq).Scan(&macs).Error; err != nil {
			return rep, err
		}
		if len(macs) != 1 || macs[0] != seen.MAC {
			return rep, fmt.Errorf("the audit trail of %s does not hold the head seen earlier: row %d has another MAC than %s — the chain was rewritten from there",
				cfg.DatabaseName(), seen.Seq, seen.MAC)
		}
	}
	return rep, nil
}

// OpenAudit returns the audit trail of db for a command that records
// events without serving (the keys commands): the configured audit key,
// or in development the data directory's (generated if there is none, as
// serve would). Commands call it before they change anything, so that a
// missing key refuses the command rather than leave its change unrecorded.
// Events carry the machine's name as their client address.
func OpenAudit(cfg *config.Config, db *gorm.DB) (*audit.Log, error) {
	key, err := cfg.LoadAuditKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		if key, _, err = loadOrCreateSecret(cfg.AuditKeyPath(), "audit key"); err != nil {
			return nil, err
		}
	}
	trail, err := audit.New(db, key, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("audit key from %s: %w", cfg.AuditKeySource, err)
	}
	host := "cli@" + hostname()
	trail.SetRequestInfo(func(context.Context) string { return host }, nil)
	return trail, nil
}
