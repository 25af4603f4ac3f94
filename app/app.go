// Package app builds a running cloudkeys from its configuration:
// config → secrets → encryption keys → database → services → HTTP handler.
// It is the one place that does, used by `cloudkeys serve`, the other
// commands and the end-to-end tests alike; it is also the only package that
// reads or writes the secret and key files the configuration names.
//
// What may import it: package main and tests. It imports every other room.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/auth"
	"cloudkeys/config"
	"cloudkeys/metrics"
	"cloudkeys/models"
	"cloudkeys/probe"
	"cloudkeys/relay"
	"cloudkeys/server"
	"cloudkeys/traces"
)

// App is a wired cloudkeys: its services, the HTTP handler and what they
// hold open.
type App struct {
	Config *config.Config
	Log    *slog.Logger
	// KeySource is where the encryption keys come from; Keys() returns
	// those the database handle seals and opens with now (keys.go: they
	// are reloaded, and the active kid is the database's).
	KeySource KeySource
	keys      *keyManager
	DB        *gorm.DB
	Auth      *auth.Service
	Probe     *probe.Client
	// Audit is the audit trail (SPEC §9): every security event, chained.
	Audit *audit.Log
	// auditStop ends the audit trail's upkeep (startAuditUpkeep).
	auditStop, auditDone chan struct{}
	auditHead            atomic.Pointer[audit.Link] // the chain head, as last read
	// Meter counts relayed calls and writes them in batches; Forwarder
	// holds the relay's upstream connections.
	Meter     *relay.Meter
	Forwarder *relay.Forwarder
	Handler   http.Handler
	// Metrics is the Prometheus registry served on CLOUDKEYS_METRICS_ADDR
	// (nil: metrics off); Tracing sends spans to the OTLP endpoint (nil:
	// off). observe.go wires both.
	Metrics *metrics.Metrics
	Tracing *traces.Tracing
}

// Open builds every dependency from the configuration — secrets, keys,
// database (migrated, its stored kids checked against the keys), password
// hasher, token issuer, provider probe — and the HTTP handler.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	if err := checkCredentialCap(cfg, log); err != nil {
		return nil, err
	}
	if err := loadJWTSecret(cfg, log); err != nil {
		return nil, err
	}
	if err := loadAuditKey(cfg, log); err != nil {
		return nil, err
	}
	keys, src, err := LoadKeys(cfg)
	if err != nil {
		return nil, err
	}
	if src.Created {
		log.Info("generated a development encryption key file", "file", src.File)
	}
	log.Info("encryption keys loaded", "from", src.String(), "kids", keys.KIDs())
	if err := checkSecretFiles(cfg, src, log); err != nil {
		return nil, err
	}
	enc := models.NewEncryption(keys)
	db, err := models.Open(ctx, dbOptions(cfg), enc)
	if err != nil {
		return nil, migrateFirst(cfg, err, "serve --no-migrate")
	}
	a := &App{Config: cfg, Log: log, KeySource: src, DB: db}
	if err := a.openObservability(ctx, enc); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.startKeys(ctx, keys, enc); err != nil {
		a.Close()
		return nil, err
	}
	hasher, err := auth.NewHasher(cfg.Argon2, cfg.HashConcurrency, cfg.HashWait)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Metrics.HashPools(map[string]metrics.HashPool{"sign_in": hasher, "accounts": hasher.Accounts()})
	if a.Audit, err = audit.New(db, cfg.AuditKey, cfg.Now); err != nil {
		a.Close()
		return nil, fmt.Errorf("audit key from %s: %w", cfg.AuditKeySource, err)
	}
	a.Audit.SetRequestInfo(auth.ClientAddr, server.RequestID)
	tokens := auth.NewTokens(cfg.JWTSecret, cfg.JWTIssuer, cfg.JWTAudience, cfg.AccessTokenTTL, cfg.Now)
	a.Auth = auth.NewService(db, hasher, tokens, auth.Options{
		Sessions: models.SessionPolicy{TTL: cfg.RefreshTokenTTL, Grace: cfg.RefreshGrace},
		Login:    models.LoginLimits{PerEmail: cfg.LoginMaxPerEmail, PerAddr: cfg.LoginMaxPerAddr, Window: cfg.LoginWindow},
		Now:      cfg.Now,
		// SPEC §10: in production the first account is not an admin unless
		// configured; 'cloudkeys users create-admin' makes the first one.
		FirstUserAdmin:     cfg.FirstUserAdmin,
		Registration:       models.RegistrationLimit{PerAddr: cfg.RegisterMaxPerAddr, Window: cfg.RegisterWindow},
		RegistrationClosed: cfg.Registration == "closed",
		Audit:              a.Audit,
		Observer:           a.authObserver(),
	}, log)
	a.Probe = probe.New(probe.Options{AllowPrivate: cfg.AllowPrivateBaseURLs, Timeout: cfg.ProbeTimeout})
	a.Forwarder = relay.New(relay.Options{Dial: a.Probe.DialContext, MaxBodyBytes: cfg.RelayMaxBodyBytes,
		HeaderTimeout: cfg.RelayHeaderTimeout, MaxDuration: cfg.RelayMaxDuration, WrapTransport: a.upstreamTracing()})
	a.Meter = relay.NewMeter(db, cfg.RelayUsageFlush, log, cfg.Now)
	gateway := &relay.Gateway{DB: db, Auth: a.Auth, Forwarder: a.Forwarder, Meter: a.Meter, Log: log,
		Now: cfg.Now, BodyReadTimeout: time.Minute, Observer: a.relayObserver()}
	a.Handler = server.NewServer(server.Deps{Config: cfg, Log: log, DB: db, Auth: a.Auth, Probe: a.Probe,
		Audit: a.Audit, Relay: gateway.Handler(), Metrics: a.Metrics, Tracing: a.Tracing})
	a.startAuditUpkeep()
	return a, nil
}

// Close writes the relay's pending usage and releases what Open opened.
func (a *App) Close() error {
	a.stopAuditUpkeep()
	a.stopKeys()
	var err error
	if a.Meter != nil {
		err = a.Meter.Close()
	}
	if a.Forwarder != nil {
		a.Forwarder.Close()
	}
	return errors.Join(err, models.Close(a.DB), a.shutdownTracing())
}

// checkStoredKeys refuses to serve when stored credentials use kids the
// key set lacks (a wrong or truncated key file), naming them, unless
// --allow-missing-keys; then it logs them and those credentials read
// NEEDS_REENTRY.
func (a *App) checkStoredKeys(ctx context.Context) error {
	err := models.CheckStoredKeys(ctx, a.DB)
	missing, ok := errors.AsType[*models.MissingKeysError](err)
	if !ok {
		return err
	}
	if a.Config.AllowMissingKeys {
		a.Log.Warn("stored API keys use encryption keys missing from the key set; those credentials read NEEDS_REENTRY until their owners enter the keys again",
			"missing", missing.List(), "keys", a.KeySource.String())
		return nil
	}
	return fmt.Errorf("stored API keys use encryption keys missing from the key set (%s): %s. "+
		"Restore a key set that has them, or start with --allow-missing-keys: those credentials will then read NEEDS_REENTRY until their owners enter the keys again",
		a.KeySource, missing.List())
}

// checkCredentialCap refuses a cap below 1 (no account could store a
// credential) and warns when the cap's full listing — cloudCredentials
// selecting every field of CloudCredential — costs more than the
// complexity limit: every client that lists all the fields would be
// refused.
func checkCredentialCap(cfg *config.Config, log *slog.Logger) error {
	if cfg.MaxCredentialsPerUser < 1 {
		return fmt.Errorf("CLOUDKEYS_MAX_CREDENTIALS_PER_USER must be at least 1, not %d", cfg.MaxCredentialsPerUser)
	}
	if cost := server.FullCredentialListCost(cfg.MaxCredentialsPerUser); cfg.MaxComplexity > 0 && cost > cfg.MaxComplexity {
		log.Warn("a cloudCredentials list with every field costs more than the complexity limit, so it will be refused: "+
			"lower CLOUDKEYS_MAX_CREDENTIALS_PER_USER or raise CLOUDKEYS_MAX_COMPLEXITY",
			"max_credentials_per_user", cfg.MaxCredentialsPerUser, "cost", cost, "max_complexity", cfg.MaxComplexity)
	}
	return nil
}
