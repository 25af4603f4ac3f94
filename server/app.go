package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"gorm.io/gorm"

	"cloudkeys/auth"
	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
	"cloudkeys/probe"
)

// App is a wired cloudkeys: the HTTP handler and what it holds open.
type App struct {
	Handler http.Handler
	DB      *gorm.DB
	Auth    *auth.Service
	Config  *config.Config
	// Keys are the encryption keys the database handle seals and opens with.
	Keys *keyring.Keyring
}

// Open builds every dependency from the configuration — secrets, database
// (migrated), password hasher, token issuer — and the HTTP handler. main
// and the end-to-end tests both start cloudkeys through it.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	if err := checkCredentialCap(cfg, log); err != nil {
		return nil, err
	}
	if len(cfg.JWTSecret) == 0 {
		secret, created, err := loadOrCreateSecret(cfg.JWTSecretPath())
		if err != nil {
			return nil, err
		}
		cfg.JWTSecret, cfg.JWTSecretSource = secret, cfg.JWTSecretPath()
		if created {
			log.Info("generated a development JWT secret", "file", cfg.JWTSecretPath())
		}
	}
	keys, src, err := LoadKeys(cfg)
	if err != nil {
		return nil, err
	}
	if src.Created {
		log.Info("generated a development encryption key file", "file", src.File)
	}
	log.Info("encryption keys loaded", "from", src.String(), "active", keys.ActiveKID(), "kids", keys.KIDs())
	db, err := models.Open(ctx, models.Options{URL: cfg.DatabaseURL, DataDir: cfg.DataDir}, models.NewEncryption(keys))
	if err != nil {
		return nil, err
	}
	if err := checkStoredKeys(ctx, db, cfg.AllowMissingKeys, src, log); err != nil {
		models.Close(db)
		return nil, err
	}
	hasher, err := auth.NewHasher(cfg.Argon2, cfg.HashConcurrency, cfg.HashWait)
	if err != nil {
		models.Close(db)
		return nil, err
	}
	tokens := auth.NewTokens(cfg.JWTSecret, cfg.JWTIssuer, cfg.JWTAudience, cfg.AccessTokenTTL, cfg.Now)
	svc := auth.NewService(db, hasher, tokens, auth.Options{
		Sessions: models.SessionPolicy{TTL: cfg.RefreshTokenTTL, Grace: cfg.RefreshGrace},
		Login:    models.LoginLimits{PerEmail: cfg.LoginMaxPerEmail, PerAddr: cfg.LoginMaxPerAddr, Window: cfg.LoginWindow},
		Now:      cfg.Now,
	}, log)
	prober := probe.New(probe.Options{AllowPrivate: cfg.AllowPrivateBaseURLs, Timeout: cfg.ProbeTimeout})
	h := NewServer(Deps{Config: cfg, Log: log, DB: db, Auth: svc, Probe: prober})
	return &App{Handler: h, DB: db, Auth: svc, Config: cfg, Keys: keys}, nil
}

// Close releases what Open opened.
func (a *App) Close() error { return models.Close(a.DB) }

// loadOrCreateSecret reads a generated secret file, or creates one with 256
// random bits (mode 0600) when there is none.
func loadOrCreateSecret(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < config.MinJWTSecretLen {
			return nil, false, fmt.Errorf("the JWT secret in %s is too short; delete the file to generate a new one", path)
		}
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read JWT secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := []byte(base64.RawURLEncoding.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			return loadOrCreateSecret(path)
		}
		return nil, false, fmt.Errorf("write JWT secret: %w", err)
	}
	if _, err := f.Write(secret); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write JWT secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write JWT secret: %w", err)
	}
	return secret, true, nil
}
