package models

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"gorm.io/gorm"

	"cloudkeys/keyring"
)

// These tests drive the encryption plugin through GORM directly, on a real
// SQLite file, to pin down how it behaves with Create, Save, Updates and
// Find: the API only uses some of these, but any code in models may use
// any of them.

const testKey = "sk-proj-MODELSTEST-0123456789abcdefghijklmnop"

func openTestDB(t *testing.T) (*gorm.DB, *keyring.Keyring, string) {
	t.Helper()
	k, err := keyring.New()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), Options{DataDir: t.TempDir()}, NewEncryption(k))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(db) })
	u, err := CreateUser(context.Background(), db, "owner@example.com", "not-a-real-hash")
	if err != nil {
		t.Fatal(err)
	}
	return db, k, u.ID
}

// stored reads the raw ciphertext and kid columns.
func stored(t *testing.T, db *gorm.DB, id string) (jwe, kid string) {
	t.Helper()
	if err := db.Raw("SELECT api_key_jwe, key_id FROM cloud_credentials WHERE id = ?", id).Row().Scan(&jwe, &kid); err != nil {
		t.Fatal(err)
	}
	return jwe, kid
}

func newCred(owner, name, key string) *CloudCredential {
	return &CloudCredential{UserID: owner, Name: name, BackendType: BackendOpenAI, APIType: APIOpenAI, APIKey: key}
}

func TestPluginCreateFindRoundTrip(t *testing.T) {
	db, k, owner := openTestDB(t)
	c := newCred(owner, "a", testKey)
	if err := db.Create(c).Error; err != nil {
		t.Fatal(err)
	}
	if len(c.ID) != 36 || c.KeyID != k.ActiveKID() || c.APIKeyJWE == "" {
		t.Fatalf("after Create: id %q kid %q, jwe set %v", c.ID, c.KeyID, c.APIKeyJWE != "")
	}
	jwe, kid := stored(t, db, c.ID)
	if jwe != c.APIKeyJWE || kid != k.ActiveKID() || strings.Contains(jwe, "MODELSTEST") {
		t.Fatal("the stored columns are not the sealed value and its kid")
	}
	plain, err := k.Open(jwe, c.ID)
	if err != nil || string(plain) != testKey {
		t.Fatalf("the stored value does not open to the key: %v", err)
	}
	var got CloudCredential
	if err := db.Take(&got, "id = ?", c.ID).Error; err != nil {
		t.Fatal(err)
	}
	if got.APIKey != testKey || got.KeyStatus() != KeyOK || got.KeyStatusMessage() != nil {
		t.Fatalf("Find did not open the key: status %s", got.KeyStatus())
	}
	// Slices of values and of pointers are opened too.
	var vals []CloudCredential
	var ptrs []*CloudCredential
	if err := db.Find(&vals).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Find(&ptrs).Error; err != nil {
		t.Fatal(err)
	}
	if len(vals) != 1 || vals[0].APIKey != testKey || len(ptrs) != 1 || ptrs[0].APIKey != testKey {
		t.Fatal("Find into a slice did not open the keys")
	}
}

func TestPluginUpdatesKeepTheKey(t *testing.T) {
	db, k, owner := openTestDB(t)
	c := newCred(owner, "a", testKey)
	if err := db.Create(c).Error; err != nil {
		t.Fatal(err)
	}
	original, _ := stored(t, db, c.ID)
	mustKeep := func(t *testing.T, what string) {
		t.Helper()
		jwe, _ := stored(t, db, c.ID)
		if jwe != original {
			t.Fatalf("%s rewrote the ciphertext", what)
		}
	}

	t.Run("Save of a loaded credential does not seal again", func(t *testing.T) {
		var got CloudCredential
		db.Take(&got, "id = ?", c.ID)
		got.Name = "renamed"
		if err := db.Save(&got).Error; err != nil {
			t.Fatal(err)
		}
		mustKeep(t, "Save with an unchanged key")
	})
	t.Run("Updates with a partial struct", func(t *testing.T) {
		if err := db.Model(&CloudCredential{ID: c.ID}).Updates(&CloudCredential{Name: "partial"}).Error; err != nil {
			t.Fatal(err)
		}
		mustKeep(t, "Updates(struct) without a key")
	})
	t.Run("Select of other columns", func(t *testing.T) {
		var got CloudCredential
		db.Take(&got, "id = ?", c.ID)
		got.Name = "selected"
		if err := db.Model(&got).Select("name").Updates(&got).Error; err != nil {
			t.Fatal(err)
		}
		mustKeep(t, "Select(name)")
	})
	t.Run("Update of one column", func(t *testing.T) {
		if err := db.Model(&CloudCredential{ID: c.ID}).Update("name", "single").Error; err != nil {
			t.Fatal(err)
		}
		mustKeep(t, "Update(name)")
	})
	t.Run("Save of a credential built without its key is refused", func(t *testing.T) {
		err := db.Save(&CloudCredential{ID: c.ID, UserID: owner, Name: "wipe", BackendType: BackendOpenAI, APIType: APIOpenAI}).Error
		if !errors.Is(err, errNoAPIKey) {
			t.Fatalf("Save without a key: err = %v, want errNoAPIKey", err)
		}
		mustKeep(t, "a refused Save")
	})
	t.Run("Save of a credential whose key did not open keeps the ciphertext", func(t *testing.T) {
		other, _ := keyring.New()
		db2 := db.Session(&gorm.Session{NewDB: true})
		var got CloudCredential
		db2.Take(&got, "id = ?", c.ID)
		got.open(other) // as if the key were unknown
		if got.KeyStatus() != KeyNeedsReentry || got.APIKey != "" {
			t.Fatal("setup: the key should not open with another keyring")
		}
		got.Name = "unreadable"
		if err := db.Save(&got).Error; err != nil {
			t.Fatal(err)
		}
		mustKeep(t, "Save of a NEEDS_REENTRY credential")
	})
	t.Run("an update map naming APIKey is refused", func(t *testing.T) {
		err := db.Model(&CloudCredential{ID: c.ID}).Updates(map[string]any{"APIKey": "sk-new-key-123456789"}).Error
		if !errors.Is(err, errKeyInMap) {
			t.Fatalf("err = %v, want errKeyInMap", err)
		}
		mustKeep(t, "a refused map update")
	})
	t.Run("a changed key the update does not write is refused", func(t *testing.T) {
		var got CloudCredential
		db.Take(&got, "id = ?", c.ID)
		got.APIKey = "sk-changed-0123456789abcdef"
		err := db.Model(&got).Select("name").Updates(&got).Error
		if !errors.Is(err, errKeyNotWritten) {
			t.Fatalf("err = %v, want errKeyNotWritten", err)
		}
		mustKeep(t, "a refused update")
	})

	t.Run("a new key is sealed by a Select of api_key_jwe", func(t *testing.T) {
		var got CloudCredential
		db.Take(&got, "id = ?", c.ID)
		got.APIKey = "sk-replaced-0123456789abcdef"
		if err := db.Model(&got).Select("api_key_jwe").Updates(&got).Error; err != nil {
			t.Fatal(err)
		}
		jwe, kid := stored(t, db, c.ID)
		if jwe == original || kid != k.ActiveKID() {
			t.Fatal("the new key was not stored")
		}
		plain, err := k.Open(jwe, c.ID)
		if err != nil || string(plain) != "sk-replaced-0123456789abcdef" {
			t.Fatalf("the new value does not open to the new key: %v", err)
		}
	})
}

// The kid column follows the ciphertext even when a Select names only
// api_key_jwe.
func TestPluginKidFollowsCiphertext(t *testing.T) {
	k1, _ := keyring.New()
	dir := t.TempDir()
	db1, err := Open(context.Background(), Options{DataDir: dir}, NewEncryption(k1))
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db1)
	u, err := CreateUser(context.Background(), db1, "owner@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	c := newCred(u.ID, "a", testKey)
	if err := db1.Create(c).Error; err != nil {
		t.Fatal(err)
	}
	k2, _ := k1.Rotate()
	db2, err := Open(context.Background(), Options{DataDir: dir}, NewEncryption(k2))
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db2)
	var got CloudCredential
	if err := db2.Take(&got, "id = ?", c.ID).Error; err != nil || got.APIKey != testKey {
		t.Fatalf("the rotated keyring does not open the old value: %v", err)
	}
	got.APIKey = "sk-after-rotation-0123456789"
	if err := db2.Model(&got).Select("api_key_jwe").Updates(&got).Error; err != nil {
		t.Fatal(err)
	}
	jwe, kid := stored(t, db2, c.ID)
	if kid != k2.ActiveKID() {
		t.Fatalf("key_id = %q, want the new active %q", kid, k2.ActiveKID())
	}
	if h := headerKID(t, jwe); h != kid {
		t.Fatalf("the header kid %q and the column %q disagree", h, kid)
	}
}

func TestPluginCreateWithoutKeyIsRefused(t *testing.T) {
	db, _, owner := openTestDB(t)
	err := db.Create(&CloudCredential{UserID: owner, Name: "nokey", BackendType: BackendOpenAI, APIType: APIOpenAI}).Error
	if !errors.Is(err, errNoAPIKey) {
		t.Fatalf("err = %v, want errNoAPIKey", err)
	}
	var n int64
	db.Model(&CloudCredential{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d rows stored", n)
	}
}

func TestPluginNotRegistered(t *testing.T) {
	db, err := Open(context.Background(), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db)
	if _, err := Keyring(db); !errors.Is(err, errNoEncryption) {
		t.Fatalf("Keyring without the plugin: %v", err)
	}
}

// A query that does not read the ciphertext does not try to open it.
func TestPluginPartialSelect(t *testing.T) {
	db, _, owner := openTestDB(t)
	c := newCred(owner, "a", testKey)
	if err := db.Create(c).Error; err != nil {
		t.Fatal(err)
	}
	var got CloudCredential
	if err := db.Select("id", "name").Take(&got, "id = ?", c.ID).Error; err != nil {
		t.Fatal(err)
	}
	if got.KeyStatus() != KeyOK || got.APIKey != "" {
		t.Fatalf("partial select: status %s", got.KeyStatus())
	}
}

func TestAPIKeyHint(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"sk-proj-abcdefghijklQ7xa", "sk-…Q7xa"},
		{"abcdefghijklmnop", "abc…mnop"}, // 16: first 3 and last 4
		{"abcdefghijklmno", "…lmno"},     // 15: last 4 only
		{"abcdefgh", "…efgh"},            // 8: last 4 only
		{"abcdefg", "…"},                 // 7: nothing of the key
		{"x", "…"},
	} {
		c := CloudCredential{APIKey: tc.key}
		if got := c.APIKeyHint(); got != tc.want {
			t.Errorf("hint of a %d-character key = %q, want %q", len(tc.key), got, tc.want)
		}
	}
	unreadable := CloudCredential{keyProblem: "x"}
	if unreadable.APIKeyHint() != "" {
		t.Error("a key that did not open has a hint")
	}
}

// A loaded credential saved as a new row (ID cleared, so a new ID is made)
// is sealed again for its new ID: the old ciphertext is bound to the old
// row and would not open in the copy.
func TestPluginCopyIsSealedForItsNewID(t *testing.T) {
	db, _, owner := openTestDB(t)
	orig := newCred(owner, "original", testKey)
	if err := db.Create(orig).Error; err != nil {
		t.Fatal(err)
	}
	var cp CloudCredential
	if err := db.Take(&cp, "id = ?", orig.ID).Error; err != nil {
		t.Fatal(err)
	}
	cp.ID, cp.Name = "", "copy"
	if err := db.Create(&cp).Error; err != nil {
		t.Fatal(err)
	}
	var got CloudCredential
	if err := db.Take(&got, "id = ?", cp.ID).Error; err != nil {
		t.Fatal(err)
	}
	if cp.ID == orig.ID || got.KeyStatus() != KeyOK || got.APIKey != testKey {
		t.Fatalf("the copy reads %s", got.KeyStatus())
	}
}

// headerKID reads the kid of a sealed value's protected header.
func headerKID(t *testing.T, jwe string) string {
	t.Helper()
	seg, _, _ := strings.Cut(jwe, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
