package app

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"cloudkeys/config"
)

// loadJWTSecret fills in cfg.JWTSecret when the configuration gave none:
// in development, the data directory's generated secret file.
func loadJWTSecret(cfg *config.Config, log *slog.Logger) error {
	if len(cfg.JWTSecret) > 0 {
		return nil
	}
	secret, created, err := loadOrCreateSecret(cfg.JWTSecretPath(), "JWT secret")
	if err != nil {
		return err
	}
	cfg.JWTSecret, cfg.JWTSecretSource = secret, cfg.JWTSecretPath()
	if created {
		log.Info("generated a development JWT secret", "file", cfg.JWTSecretPath())
	}
	return nil
}

// loadAuditKey fills in cfg.AuditKey when the configuration gave none: in
// development, the data directory's generated audit key file.
func loadAuditKey(cfg *config.Config, log *slog.Logger) error {
	if len(cfg.AuditKey) > 0 {
		return nil
	}
	key, created, err := loadOrCreateSecret(cfg.AuditKeyPath(), "audit key")
	if err != nil {
		return err
	}
	cfg.AuditKey, cfg.AuditKeySource = key, cfg.AuditKeyPath()
	if created {
		log.Info("generated a development audit key", "file", cfg.AuditKeyPath())
	}
	return nil
}

// loadOrCreateSecret reads a generated secret file, or creates one with 256
// random bits (mode 0600) when there is none.
func loadOrCreateSecret(path, what string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < config.MinJWTSecretLen {
			return nil, false, fmt.Errorf("the %s in %s is too short; delete the file to generate a new one", what, path)
		}
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read %s: %w", what, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	secret := newSecret()
	switch err := createFile(path, secret); {
	case errors.Is(err, fs.ErrExist): // another process won the race
		return loadOrCreateSecret(path, what)
	case err != nil:
		return nil, false, fmt.Errorf("write %s: %w", what, err)
	}
	return secret, true, nil
}

// newSecret returns 256 random bits, base64url-encoded: a JWT secret or
// an audit key (their UTF-8 bytes are the key).
func newSecret() []byte {
	raw := make([]byte, 32)
	rand.Read(raw)
	defer clear(raw)
	return []byte(base64.RawURLEncoding.EncodeToString(raw))
}

// createFile writes data to a new file at path, mode 0600, synced; it never
// replaces a file (fs.ErrExist), and removes what it created if the write
// fails.
func createFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
