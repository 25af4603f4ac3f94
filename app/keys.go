package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"cloudkeys/buildinfo"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

// A running server keeps its encryption keys current (SPEC §10, docs/keys.md):
//
//   - the key material comes from the key file (or the environment) and is
//     reloaded on SIGHUP and whenever the file's content changes (checked
//     every CLOUDKEYS_KEY_CHECK_INTERVAL); a reload that fails keeps the
//     keys held and logs why;
//   - which kid seals is the one the database records (key_state), read at
//     the same interval; a database that records none gets this server's
//     first key;
//   - every kid's key-check value is compared with the one the database
//     records (and recorded the first time): other bytes under a known kid
//     refuse the start or the reload;
//   - a heartbeat row says which keys the server holds and which one it
//     seals with, every CLOUDKEYS_HEARTBEAT_INTERVAL and at once after a
//     change, and is removed on Close.
//
// The keyring the GORM plugin uses is swapped atomically
// (models.Encryption.SetKeyring): a statement uses one keyring throughout.

// heartbeatPruneAfter is how long the heartbeat of a server that stopped
// without a clean shutdown stays in the table (not live) before a running
// server removes it.
const heartbeatPruneAfter = 24 * time.Hour

// keyManager is the server's side of the keys.
type keyManager struct {
	cfg *config.Config
	log *slog.Logger
	db  *gorm.DB
	enc *models.Encryption
	src KeySource

	self models.Heartbeat // the fields that do not change

	mu        sync.Mutex       // one reload or poll at a time; guards the fields below
	material  *keyring.Keyring // the keys as loaded: the file's or the environment's
	fileSum   [32]byte         // SHA-256 of the file content material came from
	failedSum [32]byte         // of the last content whose reload failed (logged once)
	failedRd  string           // the last error reading the file (logged once)
	dbActive  string           // the active kid the database records
	lacking   string           // the recorded active kid this server lacks (logged once)
	pollErr   bool             // the last poll failed (logged once until it recovers)

	kick chan struct{} // a heartbeat now, please
	stop chan struct{}
	wg   sync.WaitGroup
}

// Keys returns the encryption keys the database handle seals and opens
// with now: the key material as last (re)loaded, with the active kid the
// database records.
func (a *App) Keys() *keyring.Keyring {
	if a.keys == nil {
		return nil
	}
	return a.keys.enc.Keyring()
}

// ReloadKeys reloads the key file now (the SIGHUP of 'cloudkeys serve'),
// even if it did not change, and logs the kids the server holds. A reload
// that fails keeps the keys held; the error says why (it is logged too).
// Keys from CLOUDKEYS_ENCRYPTION_KEYS cannot be reloaded: that is logged,
// and the error says so.
func (a *App) ReloadKeys(reason string) error {
	if a.keys == nil {
		return errors.New("the keys are not loaded")
	}
	return a.keys.reloadFile(context.Background(), reason, true)
}

// startKeys takes over the keys Open loaded: it checks their key-check
// values against the database, settles the active kid, checks that the
// stored rows' kids are all held (checkStoredKeys), records the first
// heartbeat and starts the reload and heartbeat loops.
func (a *App) startKeys(ctx context.Context, loaded *keyring.Keyring, enc *models.Encryption) error {
	m := &keyManager{cfg: a.Config, log: a.Log, db: a.DB, enc: enc, src: a.KeySource, material: loaded,
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if !m.src.Env {
		// Read the file again, so that the content the loop compares with
		// is exactly the content loaded.
		k, sum, err := readKeyFile(m.src.File)
		if err != nil {
			return err
		}
		m.material, m.fileSum = k, sum
	}
	if err := models.CheckKeyValues(ctx, a.DB, m.material); err != nil {
		if bad, ok := errors.AsType[*models.KeyMismatchError](err); ok {
			return fmt.Errorf("refusing to start: %s in %s. Stored API keys sealed under that kid would not open, and keys entered now would be sealed "+
				"with a key the other servers do not have. Restore the key set the servers use (your backup of the key file): %w",
				mismatchKIDs(bad), m.src, err)
		}
		return err
	}
	active, err := models.RecordActiveKeyIfNone(ctx, a.DB, m.material.FirstKID())
	if err != nil {
		return err
	}
	m.dbActive = active.KID
	m.enc.SetKeyring(m.effective(m.material))
	a.keys = m
	if err := a.checkStoredKeys(ctx); err != nil {
		return err
	}
	m.self = models.Heartbeat{InstanceID: instanceID(a.Config), Hostname: hostname(), PID: os.Getpid(),
		Version: heartbeatVersion(), KeySource: m.src.String(), StartedAt: time.Now()}
	k := m.enc.Keyring()
	a.Log.Info("encryption keys in use", "instance", m.self.InstanceID, "active", k.ActiveKID(), "kids", k.KIDs())
	if err := m.beat(ctx); err != nil {
		return err
	}
	if err := models.PruneHeartbeats(ctx, a.DB, time.Now().Add(-heartbeatPruneAfter)); err != nil {
		a.Log.Warn("removing old heartbeats failed", "error", err)
	}
	m.wg.Add(2)
	go m.checkLoop()
	go m.heartbeatLoop()
	return nil
}

// stopKeys ends the loops and removes the server's heartbeat.
func (a *App) stopKeys() {
	m := a.keys
	if m == nil || m.stop == nil {
		return
	}
	close(m.stop)
	m.wg.Wait()
	m.stop = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := models.EndHeartbeat(ctx, m.db, m.self.InstanceID); err != nil {
		m.log.Warn("removing the heartbeat failed", "instance", m.self.InstanceID, "error", err)
	}
}

func mismatchKIDs(e *models.KeyMismatchError) string {
	names := make([]string, len(e.KIDs))
	for i, k := range e.KIDs {
		names[i] = fmt.Sprintf("%q", k)
	}
	return "the key under kid " + strings.Join(names, ", ") + " is not the one the database recorded for it"
}

// effective returns material with the active key the database records,
// or, when material lacks it (a server not given the key yet, or an
// activation forced past it), the key this server sealed with so far, or
// its first: sealing under a kid the other servers hold is safe, and
// 'keys rewrap' moves those rows later. That case is logged once per
// recorded kid. Called with mu held (or before the loops start).
func (m *keyManager) effective(material *keyring.Keyring) *keyring.Keyring {
	if k, err := material.WithActive(m.dbActive); err == nil {
		m.lacking = ""
		return k
	}
	fallback := material.FirstKID()
	if cur := m.enc.Keyring(); cur != nil && material.Has(cur.ActiveKID()) {
		fallback = cur.ActiveKID()
	}
	if m.lacking != m.dbActive {
		m.lacking = m.dbActive
		m.log.Error("the database's active encryption key is not in this server's key set: new API keys are sealed with another key until it is, "+
			"and values sealed with it read NEEDS_REENTRY here. Give this server the key (the key file, then SIGHUP or wait), or activate a key it holds",
			"active", m.dbActive, "sealing_with", fallback, "keys", m.src.String(), "kids", material.KIDs())
	}
	k, _ := material.WithActive(fallback)
	return k
}

// checkLoop reloads the key file when its content changes and picks up
// the active kid the database records, every KeyCheckInterval.
func (m *keyManager) checkLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.KeyCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.KeyCheckInterval+5*time.Second)
		if !m.src.Env {
			_ = m.reloadFile(ctx, "the key file changed", false) // logged
		}
		m.pollActive(ctx)
		cancel()
	}
}

// pollActive picks up a change of the active kid the database records.
func (m *keyManager) pollActive(ctx context.Context) {
	active, ok, err := models.RecordedActiveKey(ctx, m.db)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if !m.pollErr {
			m.log.Warn("reading the active encryption key from the database failed; keeping the one in use", "error", err)
		}
		m.pollErr = true
		return
	}
	if m.pollErr {
		m.log.Info("reading the active encryption key from the database works again")
		m.pollErr = false
	}
	if !ok || active.KID == m.dbActive {
		return
	}
	before := m.enc.Keyring().ActiveKID()
	m.dbActive = active.KID
	k := m.effective(m.material)
	m.enc.SetKeyring(k)
	if k.ActiveKID() != before {
		m.log.Info("the active encryption key changed: new API keys are sealed with it", "active", k.ActiveKID(), "was", before)
	}
	m.beatSoon()
}

// reloadFile loads the key file again when its content changed (or always,
// with force) and, if the new key set is acceptable, swaps it in. It
// refuses, keeping the keys held, a file that does not parse, a key whose
// bytes differ from the ones the database recorded for its kid, a set
// without the active key the database records (when this server held it),
// and one missing kids that stored rows use (unless --allow-missing-keys).
func (m *keyManager) reloadFile(ctx context.Context, reason string, force bool) error {
	if m.src.Env {
		err := errors.New("the keys come from CLOUDKEYS_ENCRYPTION_KEYS, which a running server cannot reload: restart the server to change them")
		m.log.Warn("encryption keys not reloaded: the keys come from CLOUDKEYS_ENCRYPTION_KEYS; restart the server to change them", "reason", reason)
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, sum, err := readFileSum(m.src.File)
	switch {
	case force:
	case err == nil && (sum == m.fileSum || sum == m.failedSum):
		return nil
	case err != nil && err.Error() == m.failedRd:
		return err // logged already
	}
	if err == nil {
		m.failedRd = ""
	}
	refuse := func(err error) error {
		m.failedSum = sum
		m.log.Error("reloading the encryption key file failed: keeping the keys held", "reason", reason, "file", m.src.File,
			"error", err.Error(), "kids", m.material.KIDs())
		return fmt.Errorf("reloading %s failed, the keys held are kept: %w", m.src.File, err)
	}
	if err != nil {
		m.failedRd = err.Error()
		return refuse(err)
	}
	defer clear(raw)
	if err := checkSecretFile(m.cfg, m.log, "encryption key file", m.src.File); err != nil {
		return refuse(err)
	}
	next, err := keyring.Parse(raw)
	if err != nil {
		return refuse(fmt.Errorf("%s: %w", m.src.File, err))
	}
	if next.SameKeys(m.material) {
		m.fileSum, m.failedSum = sum, [32]byte{}
		if force {
			m.log.Info("encryption key file reloaded: the keys are unchanged", "reason", reason, "file", m.src.File,
				"active", m.enc.Keyring().ActiveKID(), "kids", next.KIDs())
		}
		return nil
	}
	if err := models.CheckKeyValues(ctx, m.db, next); err != nil {
		if bad, ok := errors.AsType[*models.KeyMismatchError](err); ok {
			return refuse(fmt.Errorf("%s in the new file", mismatchKIDs(bad)))
		}
		return refuse(err)
	}
	if m.material.Has(m.dbActive) && !next.Has(m.dbActive) {
		return refuse(fmt.Errorf("the new key set lacks the active key %q (activate another key first)", m.dbActive))
	}
	if !m.cfg.AllowMissingKeys {
		before, err := models.MissingKeysOf(ctx, m.db, m.material)
		if err != nil {
			return refuse(err)
		}
		after, err := models.MissingKeysOf(ctx, m.db, next)
		if err != nil {
			return refuse(err)
		}
		after = slices.DeleteFunc(after, func(c models.KeyCount) bool {
			return slices.ContainsFunc(before, func(b models.KeyCount) bool { return b.KID == c.KID })
		})
		if len(after) > 0 {
			return refuse(fmt.Errorf("stored API keys use encryption keys the new key set lacks: %s (retire a key only once 'cloudkeys keys status' shows no row uses it)",
				(&models.MissingKeysError{Missing: after}).List()))
		}
	}
	added, removed := diffKIDs(m.material.KIDs(), next.KIDs())
	m.material, m.fileSum, m.failedSum = next, sum, [32]byte{}
	k := m.effective(next)
	m.enc.SetKeyring(k)
	m.log.Info("encryption key file reloaded", "reason", reason, "file", m.src.File, "active", k.ActiveKID(), "kids", k.KIDs(),
		"added", added, "removed", removed)
	m.beatSoon()
	return nil
}

// diffKIDs returns the kids of next not in prev, and those of prev not in
// next.
func diffKIDs(prev, next []string) (added, removed []string) {
	for _, k := range next {
		if !slices.Contains(prev, k) {
			added = append(added, k)
		}
	}
	for _, k := range prev {
		if !slices.Contains(next, k) {
			removed = append(removed, k)
		}
	}
	return added, removed
}

// heartbeatLoop records the heartbeat every HeartbeatInterval, and at once
// when the keys changed.
func (m *keyManager) heartbeatLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	lastPrune := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.HeartbeatInterval+5*time.Second)
		err := m.beat(ctx)
		switch {
		case err != nil && !failing:
			m.log.Warn("recording the heartbeat failed; the keys commands may not see this server as live", "error", err)
		case err == nil && failing:
			m.log.Info("recording the heartbeat works again")
		}
		failing = err != nil
		if err == nil && time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			_ = models.PruneHeartbeats(ctx, m.db, time.Now().Add(-heartbeatPruneAfter))
		}
		cancel()
	}
}

// beatSoon asks the heartbeat loop for a heartbeat now.
func (m *keyManager) beatSoon() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// beat records the heartbeat: the keys held and the one sealing now.
func (m *keyManager) beat(ctx context.Context) error {
	m.mu.Lock()
	h := m.self
	h.Keys = models.HeldKeys(m.material)
	m.mu.Unlock()
	h.ActiveKID = m.enc.Keyring().ActiveKID()
	h.LastSeen = time.Now()
	h.ExpiresAt = h.LastSeen.Add(m.cfg.HeartbeatLive)
	return models.Beat(ctx, m.db, h)
}

// readKeyFile reads and parses a key file, and returns the SHA-256 of its
// content.
func readKeyFile(path string) (*keyring.Keyring, [32]byte, error) {
	raw, sum, err := readFileSum(path)
	if err != nil {
		return nil, sum, err
	}
	defer clear(raw)
	k, err := keyring.Parse(raw)
	if err != nil {
		return nil, sum, fmt.Errorf("%s: %w", path, err)
	}
	return k, sum, nil
}

// maxKeyFileSize bounds what a reload reads (keyring.LoadFile's bound).
const maxKeyFileSize = 1 << 20

func readFileSum(path string) ([]byte, [32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > maxKeyFileSize {
		clear(raw)
		return nil, [32]byte{}, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFileSize)
	}
	return raw, sha256.Sum256(raw), nil
}

// instanceID is the configured CLOUDKEYS_INSTANCE_ID, or host-pid-random.
func instanceID(cfg *config.Config) string {
	if cfg.InstanceID != "" {
		return cfg.InstanceID
	}
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", hostname(), os.Getpid(), hex.EncodeToString(b[:]))
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown-host"
	}
	return h
}

// heartbeatVersion is the module version and VCS revision from the build
// information (buildinfo.Info.Short).
func heartbeatVersion() string { return buildinfo.Read().Short() }
