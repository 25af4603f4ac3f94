package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"gorm.io/gorm"

	"cloudkeys/config"
	"cloudkeys/keyring"
	"cloudkeys/models"
)

// KeySource says where the encryption keys came from.
type KeySource struct {
	// Env is true when the keys came from CLOUDKEYS_ENCRYPTION_KEYS; then
	// there is no file to change.
	Env bool
	// File is the key file otherwise.
	File string
	// Created is true when this call generated the (development) file.
	Created bool
}

func (s KeySource) String() string {
	if s.Env {
		return "CLOUDKEYS_ENCRYPTION_KEYS"
	}
	return s.File
}

// LoadKeys returns the encryption keys the configuration names:
// CLOUDKEYS_ENCRYPTION_KEYS (a JWK Set), else CLOUDKEYS_ENCRYPTION_KEYS_FILE
// (which must exist: a mistyped path must not quietly start a new key set,
// which would leave every stored key unreadable), else, in development
// only, the data directory's encryption-keys.json, generated (mode 0600)
// when missing. The keys are independent of the JWT secret.
func LoadKeys(cfg *config.Config) (*keyring.Keyring, KeySource, error) {
	return loadKeys(cfg, true, false)
}

// ExistingKeys returns the keys LoadKeys would, but never generates a key
// set: it is for the operator's commands (cloudkeys keys …), where a new
// key set in a mistyped data directory would only hide the mistake. A
// missing key file is an error that names the path and how to point the
// command at the right key set.
func ExistingKeys(cfg *config.Config) (*keyring.Keyring, KeySource, error) {
	return loadKeys(cfg, false, false)
}

// ExistingKeysOrEmpty is ExistingKeys for 'cloudkeys keys add' and
// 'rotate', which may start from a key set that holds no key yet: an empty
// key file, or a JWK Set without keys, gives a nil Keyring (and its
// source). A missing file is still an error: those commands create no file.
func ExistingKeysOrEmpty(cfg *config.Config) (*keyring.Keyring, KeySource, error) {
	return loadKeys(cfg, false, true)
}

func loadKeys(cfg *config.Config, create, maybeEmpty bool) (*keyring.Keyring, KeySource, error) {
	load := keyring.LoadFile
	if maybeEmpty {
		load = keyring.LoadFileMaybeEmpty
	}
	switch {
	case len(cfg.EncryptionKeys) > 0 && cfg.EncryptionKeysFile != "":
		return nil, KeySource{}, errors.New("set CLOUDKEYS_ENCRYPTION_KEYS or CLOUDKEYS_ENCRYPTION_KEYS_FILE, not both")
	case len(cfg.EncryptionKeys) > 0:
		k, err := keyring.Parse(cfg.EncryptionKeys)
		if maybeEmpty && errors.Is(err, keyring.ErrEmptySet) {
			return nil, KeySource{Env: true}, nil
		}
		if err != nil {
			return nil, KeySource{}, fmt.Errorf("CLOUDKEYS_ENCRYPTION_KEYS: %w", err)
		}
		return k, KeySource{Env: true}, nil
	case cfg.EncryptionKeysFile != "":
		k, err := load(cfg.EncryptionKeysFile)
		if err != nil {
			return nil, KeySource{}, fmt.Errorf("CLOUDKEYS_ENCRYPTION_KEYS_FILE: %w", err)
		}
		return k, KeySource{File: cfg.EncryptionKeysFile}, nil
	case cfg.Production():
		// serve's configuration (config.Finish with the secrets) refuses this
		// already; the keys commands, which read none, are refused here.
		return nil, KeySource{}, errors.New("production needs encryption keys: set CLOUDKEYS_ENCRYPTION_KEYS or CLOUDKEYS_ENCRYPTION_KEYS_FILE")
	case !create:
		path := cfg.EncryptionKeysPath()
		k, err := load(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, KeySource{}, fmt.Errorf("there is no key set at %s, and this command never creates one. "+
				"Point it at the key set your servers use: --data-dir (the directory holding encryption-keys.json), "+
				"CLOUDKEYS_ENCRYPTION_KEYS_FILE or CLOUDKEYS_ENCRYPTION_KEYS ('cloudkeys init' writes a new key set; "+
				"'cloudkeys keys add' starts one in an existing empty file)", path)
		}
		if err != nil {
			return nil, KeySource{}, err
		}
		return k, KeySource{File: path}, nil
	default:
		path := cfg.EncryptionKeysPath()
		k, created, err := keyring.LoadOrCreateFile(path)
		if err != nil {
			return nil, KeySource{}, err
		}
		return k, KeySource{File: path, Created: created}, nil
	}
}

// ErrNoDatabase is in the error of OpenExistingDB when the SQLite file does
// not exist.
var ErrNoDatabase = errors.New("no database")

// OpenExistingDB opens the servers' database with keys, never a new one:
// where the SQLite file does not exist (a mistyped --data-dir), it refuses
// instead of creating an empty database whose "0 stored API keys" would
// read as success (ErrNoDatabase). It is for the operator's commands.
func OpenExistingDB(ctx context.Context, cfg *config.Config, keys *keyring.Keyring) (*gorm.DB, error) {
	opts := dbOptions(cfg)
	if !models.IsPostgres(opts.URL) {
		path := opts.SQLitePath()
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("there is no database at %s, and this command never creates one. "+
				"Point it at your servers' database: --data-dir (the directory holding cloudkeys.db) or --database-url: %w", path, ErrNoDatabase)
		} else if err != nil {
			return nil, err
		}
	}
	return models.Open(ctx, opts, models.NewEncryption(keys))
}
