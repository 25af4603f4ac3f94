package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cloudkeys/keyring"
)

// The files `cloudkeys init` writes, by name in its directory: the names
// the data directory uses for the development ones.
const (
	JWTSecretFile      = "jwt-secret"
	EncryptionKeysFile = "encryption-keys.json"
	AuditKeyFile       = "audit-key"
)

// InitFiles are the files Init wrote, as absolute paths, and the kid of the
// one key of the new key set.
type InitFiles struct {
	JWTSecret, EncryptionKeys, AuditKey string
	ActiveKID                           string
}

// Init writes a production JWT secret (256 random bits, base64url), a JWK
// Set of one new A256KW key, and an audit key (like the JWT secret) into
// dir, each with mode 0600, creating dir (0700) if missing. It never
// replaces a file: if any of the three exists already it writes nothing and
// says which; if writing fails half-way, it removes what it wrote.
func Init(dir string) (InitFiles, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return InitFiles{}, err
	}
	f := InitFiles{
		JWTSecret:      filepath.Join(abs, JWTSecretFile),
		EncryptionKeys: filepath.Join(abs, EncryptionKeysFile),
		AuditKey:       filepath.Join(abs, AuditKeyFile),
	}
	var exist []string
	for _, p := range []string{f.JWTSecret, f.EncryptionKeys, f.AuditKey} {
		if _, err := os.Lstat(p); err == nil {
			exist = append(exist, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return InitFiles{}, err
		}
	}
	if len(exist) > 0 {
		return InitFiles{}, fmt.Errorf("refusing to overwrite %s: init never replaces a secret or key file (the data sealed with it would be lost), and wrote nothing. "+
			"Keep the files you have, or move them away (back them up first) or choose another --dir", strings.Join(exist, " and "))
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return InitFiles{}, fmt.Errorf("create %s: %w", abs, err)
	}

	var written []string
	ok := false
	defer func() {
		if !ok {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	for _, p := range []string{f.JWTSecret, f.AuditKey} {
		secret := newSecret()
		err := createFile(p, secret)
		clear(secret)
		if err != nil {
			return InitFiles{}, fmt.Errorf("write %s: %w", p, err)
		}
		written = append(written, p)
	}
	k, created, err := keyring.LoadOrCreateFile(f.EncryptionKeys)
	if err != nil {
		return InitFiles{}, fmt.Errorf("write %s: %w", f.EncryptionKeys, err)
	}
	if !created { // created by someone else since the check above
		return InitFiles{}, fmt.Errorf("refusing to overwrite %s: it appeared while init ran; nothing was written", f.EncryptionKeys)
	}
	f.ActiveKID = k.ActiveKID()
	ok = true
	return f, nil
}
