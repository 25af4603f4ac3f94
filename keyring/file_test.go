package keyring

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// sameKeys reports whether a and b hold the same keys in the same order.
func sameKeys(a, b *Keyring) bool {
	return slices.EqualFunc(a.keys, b.keys, func(x, y key) bool {
		return x.kid == y.kid && bytes.Equal(x.secret, y.secret)
	})
}

func TestLoadOrCreateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "secrets")
	path := filepath.Join(dir, "encryption-keys.json")

	k, created, err := LoadOrCreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	if got := fileMode(t, path); got != 0o600 {
		t.Errorf("file mode %v, want 0600", got)
	}
	if got := fileMode(t, dir); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file (temporary file left behind?)", len(entries))
	}

	loaded, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameKeys(k, loaded) {
		t.Error("reloaded keyring differs from the one created")
	}

	// A second call loads the same file and does not touch it.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := LoadOrCreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("created = true for an existing file")
	}
	if !sameKeys(k, again) {
		t.Error("second LoadOrCreateFile returned other keys")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("LoadOrCreateFile rewrote an existing file")
	}
}

func TestLoadOrCreateFileDoesNotOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	existing := testKeyring(t)
	if err := WriteFile(path, existing); err != nil {
		t.Fatal(err)
	}
	k, created, err := LoadOrCreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created || !sameKeys(k, existing) {
		t.Error("LoadOrCreateFile did not load the existing file")
	}

	// An existing but invalid file is an error, never replaced by new keys.
	if err := os.WriteFile(path, []byte(`{"keys": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateFile(path); !errors.Is(err, ErrInvalidKeySet) {
		t.Errorf("invalid existing file: err = %v, want ErrInvalidKeySet", err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"keys": []}` {
		t.Error("LoadOrCreateFile replaced an invalid file")
	}
}

// Replicas starting together on a shared volume must end up with one key.
func TestLoadOrCreateFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	const n = 8
	var wg sync.WaitGroup
	rings := make([]*Keyring, n)
	creators := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			k, created, err := LoadOrCreateFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			rings[i], creators[i] = k, created
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if c := len(slices.DeleteFunc(slices.Clone(creators), func(b bool) bool { return !b })); c != 1 {
		t.Errorf("%d callers report creating the file, want 1", c)
	}
	onDisk, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range rings {
		if !sameKeys(k, onDisk) {
			t.Errorf("caller %d holds keys that are not the ones on disk", i)
		}
	}
}

func TestWriteFileReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	k := testKeyring(t)
	if err := WriteFile(path, k); err != nil {
		t.Fatal(err)
	}
	// A loose mode on the old file does not survive the rewrite.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, r); err != nil {
		t.Fatal(err)
	}
	if got := fileMode(t, path); got != 0o600 {
		t.Errorf("file mode %v after rewrite, want 0600", got)
	}
	loaded, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameKeys(loaded, r) {
		t.Error("file does not hold the rotated keyring")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, jwkSet(t, goodKey("k", 0xA5, map[string]any{"alg": nil})), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(bad)
	if !errors.Is(err, ErrInvalidKeySet) {
		t.Fatalf("invalid file: err = %v, want ErrInvalidKeySet", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(bad)) {
		t.Errorf("error %q does not name the file", err)
	}
	assertNoSecret(t, err.Error(), bytes.Repeat([]byte{0xA5}, 32))
	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, bytes.Repeat([]byte(" "), maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(huge); !errors.Is(err, ErrInvalidKeySet) {
		t.Errorf("oversized file: err = %v, want ErrInvalidKeySet", err)
	}
}
