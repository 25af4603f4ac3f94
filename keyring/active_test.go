package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Add appends a key that opens but does not seal; WithActive makes it the
// sealing key without reordering the set.
func TestAddThenWithActive(t *testing.T) {
	k := mustParse(t, goodKey("old", 1, nil))
	a, err := k.Add()
	if err != nil {
		t.Fatal(err)
	}
	kids := a.KIDs()
	if len(kids) != 2 || kids[0] != "old" || a.ActiveKID() != "old" || a.FirstKID() != "old" {
		t.Fatalf("after Add: kids %q, active %q", kids, a.ActiveKID())
	}
	if len(k.KIDs()) != 1 {
		t.Fatal("Add changed the original keyring")
	}
	fresh := kids[1]
	oldSealed, kid, err := a.Seal([]byte("before"), "row")
	if err != nil || kid != "old" {
		t.Fatalf("Seal after Add used %q (%v), want the old key", kid, err)
	}

	b, err := a.WithActive(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if b.ActiveKID() != fresh || b.FirstKID() != "old" || !slices.Equal(b.KIDs(), kids) {
		t.Fatalf("WithActive: active %q, first %q, kids %q", b.ActiveKID(), b.FirstKID(), b.KIDs())
	}
	if a.ActiveKID() != "old" {
		t.Fatal("WithActive changed the original keyring")
	}
	sealed, kid, err := b.Seal([]byte("after"), "row")
	if err != nil || kid != fresh {
		t.Fatalf("Seal after WithActive used %q (%v)", kid, err)
	}
	// Each opens the other's values: the material is the same.
	for _, kr := range []*Keyring{a, b} {
		if p, err := kr.Open(sealed, "row"); err != nil || string(p) != "after" {
			t.Fatalf("open new: %q %v", p, err)
		}
		if p, err := kr.Open(oldSealed, "row"); err != nil || string(p) != "before" {
			t.Fatalf("open old: %q %v", p, err)
		}
	}
	// The file form keeps the order; a parsed set's active key is its first.
	set, _ := b.JSON()
	back, err := Parse(set)
	if err != nil || !slices.Equal(back.KIDs(), kids) || back.ActiveKID() != "old" || !back.SameKeys(b) {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if _, err := b.WithActive("nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("WithActive of an unknown kid: %v", err)
	}
	// Without keeps the active key, and refuses it.
	c, _ := b.Add()
	w, err := c.Without("old")
	if err != nil || w.ActiveKID() != fresh || slices.Contains(w.KIDs(), "old") {
		t.Fatalf("Without of a non-active key: %v %v", w, err)
	}
	if _, err := c.Without(fresh); !errors.Is(err, ErrActiveKey) {
		t.Fatalf("Without of the active key: %v", err)
	}
}

func TestCheckValue(t *testing.T) {
	k := mustParse(t, goodKey("a", 1, nil), goodKey("b", 2, nil))
	va, ok := k.CheckValue("a")
	vb, _ := k.CheckValue("b")
	if !ok || len(va) != 64 || va == vb {
		t.Fatalf("check values %q %q", va, vb)
	}
	if _, ok := k.CheckValue("c"); ok {
		t.Fatal("a check value for an unknown kid")
	}
	// Same kid, other bytes: another value. Same bytes: the same value.
	other := mustParse(t, goodKey("a", 9, nil))
	if v, _ := other.CheckValue("a"); v == va {
		t.Fatal("different key bytes under one kid give the same check value")
	}
	same := mustParse(t, goodKey("a", 1, nil))
	if v, _ := same.CheckValue("a"); v != va {
		t.Fatal("the check value is not a function of the key")
	}
	if k.SameKeys(other) || !k.SameKeys(k) || same.SameKeys(k) {
		t.Fatal("SameKeys")
	}
	// It does not show the key.
	assertNoSecret(t, va, []byte(strings.Repeat("\x01", 32)))
}

func TestHeaderKID(t *testing.T) {
	k := testKeyring(t)
	sealed := mustSeal(t, k, "secret", "row")
	if kid, err := HeaderKID(sealed); err != nil || kid != k.ActiveKID() {
		t.Fatalf("HeaderKID = %q, %v", kid, err)
	}
	if _, err := HeaderKID("gAAAAABlegacy"); !errors.Is(err, ErrLegacy) {
		t.Fatalf("legacy: %v", err)
	}
	if _, err := HeaderKID("a.b.c"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed: %v", err)
	}
	if kid, err := HeaderKID(withHeader(t, sealed, map[string]any{"alg": "A256KW", "enc": "A256GCM"})); err != nil || kid != "" {
		t.Fatalf("no kid: %q %v", kid, err)
	}
}

func TestEmptySet(t *testing.T) {
	if _, err := Parse([]byte(`{"keys":[]}`)); !errors.Is(err, ErrEmptySet) || !errors.Is(err, ErrInvalidKeySet) {
		t.Fatalf("Parse of an empty set: %v", err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"zero": "", "blank": " \n", "empty set": `{"keys": []}`} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		if k, err := LoadFileMaybeEmpty(path); k != nil || err != nil {
			t.Fatalf("%s: %v %v", name, k, err)
		}
	}
	path := filepath.Join(dir, "bad")
	os.WriteFile(path, []byte(`{"keys": [`), 0o600)
	if _, err := LoadFileMaybeEmpty(path); err == nil {
		t.Fatal("a broken file loaded")
	}
	if _, err := LoadFileMaybeEmpty(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
