package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"gorm.io/gorm"

	"cloudkeys/models"
)

// Meter counts relayed calls in memory and writes the counts to the
// database in one batch every flush interval (models.AddUsage: one upsert
// per credential, key and day touched, never one write per call or per
// streamed event). Counts are added to the rows, so replicas metering the
// same credential add up. What a crash loses is bounded: the calls of at
// most the last interval (CLOUDKEYS_RELAY_USAGE_FLUSH, 10 s by default);
// Close writes what is pending, so a clean stop loses nothing.
type Meter struct {
	db       *gorm.DB
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	pending map[models.UsageKey]models.Usage
	// active counts the calls in progress per key and credential (Start),
	// so that each flush stamps their lastUsedAt: a ten-minute stream is in
	// use all along, and lastUsedAt is at most a flush interval stale.
	active map[activeKey]int

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewMeter starts a meter flushing to db every interval.
func NewMeter(db *gorm.DB, interval time.Duration, log *slog.Logger, now func() time.Time) *Meter {
	if now == nil {
		now = models.Now
	}
	m := &Meter{db: db, log: log, interval: interval, now: now,
		pending: map[models.UsageKey]models.Usage{}, active: map[activeKey]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

type activeKey struct{ credentialID, keyID string }

// Start notes a call of relay key keyID ("" for the browser path) of
// credential credentialID in progress, and returns what counts it when it
// ends (Record). Until then every flush stamps the key's lastUsedAt.
func (m *Meter) Start(credentialID, keyID string) (done func(Outcome)) {
	k := activeKey{credentialID, keyID}
	m.mu.Lock()
	m.active[k]++
	m.mu.Unlock()
	return func(o Outcome) {
		m.mu.Lock()
		if m.active[k]--; m.active[k] <= 0 {
			delete(m.active, k)
		}
		m.mu.Unlock()
		m.Record(credentialID, keyID, o)
	}
}

// Record counts one call against relay key keyID ("" for the owner's
// browser path) of credential credentialID, at the meter's clock.
func (m *Meter) Record(credentialID, keyID string, o Outcome) {
	now := m.now()
	u := models.Usage{Requests: 1, InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, LastUsedAt: &now}
	if o.Refused || o.Status >= 400 {
		u.Errors = 1
	}
	k := models.UsageKey{CredentialID: credentialID, RelayKeyID: keyID, Day: models.DayOf(now)}
	m.mu.Lock()
	acc := m.pending[k]
	acc.Add(u)
	m.pending[k] = acc
	m.mu.Unlock()
}

func (m *Meter) run() {
	defer close(m.done)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Flush(context.Background())
			if now := m.now(); now.Sub(lastPrune) >= time.Minute {
				// The per-minute request counts of finished minutes are
				// done with.
				if err := models.PruneRelayRate(context.Background(), m.db, now.Add(-2*time.Minute)); err != nil {
					m.log.Warn("pruning relay rate counts failed", "error", err)
				}
				lastPrune = now
			}
		}
	}
}

// Flush writes the pending counts now. On failure they stay pending (added
// to whatever comes meanwhile) for the next flush.
func (m *Meter) Flush(ctx context.Context) error {
	now := m.now()
	m.mu.Lock()
	for k := range m.active {
		uk := models.UsageKey{CredentialID: k.credentialID, RelayKeyID: k.keyID, Day: models.DayOf(now)}
		acc := m.pending[uk]
		acc.Add(models.Usage{LastUsedAt: &now})
		m.pending[uk] = acc
	}
	batch := m.pending
	m.pending = map[models.UsageKey]models.Usage{}
	m.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := models.AddUsage(ctx, m.db, batch)
	if err != nil {
		m.log.Warn("writing relay usage failed; it is kept for the next flush", "rows", len(batch), "error", err)
		m.mu.Lock()
		for k, u := range batch {
			acc := m.pending[k]
			acc.Add(u)
			m.pending[k] = acc
		}
		m.mu.Unlock()
	}
	return err
}

// Close stops the meter and writes what is pending.
func (m *Meter) Close() error {
	m.once.Do(func() { close(m.stop) })
	<-m.done
	return m.Flush(context.Background())
}
