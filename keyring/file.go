package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxFileSize bounds what LoadFile reads; a key set of a thousand keys is
// well under it.
const maxFileSize = 1 << 20

// LoadFile reads and parses the JWK Set in the file at path.
func LoadFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: reading %s: %w", path, err)
	}
	defer clear(b)
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidKeySet, path, maxFileSize)
	}
	k, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadFileMaybeEmpty is LoadFile for a file that may hold no key yet: an
// empty file (or only white space) or a JWK Set without keys gives a nil
// Keyring and no error. It is for `cloudkeys keys add`, which starts a key
// set there.
func LoadFileMaybeEmpty(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer clear(b)
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	k, err := LoadFile(path)
	if errors.Is(err, ErrEmptySet) {
		return nil, nil
	}
	return k, err
}

// LoadOrCreateFile loads the key set at path or, when there is no file
// there, generates a new one-key set and writes it: parent directories with
// mode 0700, the file with mode 0600, atomically. It never replaces an
// existing file: if another process creates the file first, that file is
// loaded instead, so two replicas starting together agree on one key.
// created reports whether this call wrote the file.
func LoadOrCreateFile(path string) (k *Keyring, created bool, err error) {
	k, err = LoadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if k, err = New(); err != nil {
		return nil, false, err
	}
	switch err := writeFile(path, k, false); {
	case err == nil:
		return k, true, nil
	case errors.Is(err, fs.ErrExist):
		k, err := LoadFile(path)
		return k, false, err
	default:
		return nil, false, err
	}
}

// WriteFile writes k's JWK Set to path with mode 0600, replacing any file
// there atomically: readers see the old set or the new one, never a mix.
// Missing parent directories are created with mode 0700.
func WriteFile(path string, k *Keyring) error {
	return writeFile(path, k, true)
}

// writeFile writes the set to a temporary file in the target directory,
// syncs it, and moves it into place: with rename when replace is set, and
// otherwise with link, which fails with fs.ErrExist instead of overwriting.
func writeFile(path string, k *Keyring, replace bool) (err error) {
	data, err := k.JSON()
	if err != nil {
		return err
	}
	defer clear(data)

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
		}
		// After a rename this fails harmlessly; after a link or an error it
		// removes the temporary name.
		_ = os.Remove(tmpName)
	}()
	// CreateTemp already uses 0600; say so explicitly, umask cannot widen it.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("keyring: writing %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("keyring: syncing %s: %w", tmpName, err)
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return fmt.Errorf("keyring: closing %s: %w", tmpName, err)
	}

	if replace {
		err = os.Rename(tmpName, path)
	} else {
		err = os.Link(tmpName, path)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			// Some file systems have no hard links. Fall back to rename after
			// checking for a file; the race this leaves is only with another
			// process creating the same file in the same instant.
			if _, statErr := os.Lstat(path); statErr == nil {
				return fmt.Errorf("keyring: %s: %w", path, fs.ErrExist)
			}
			err = os.Rename(tmpName, path)
		}
	}
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename or link in dir durable. Errors are ignored: some
// platforms cannot sync a directory, and the file itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
