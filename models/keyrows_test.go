package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
)

// seedRotated stores n credentials under one key and returns a handle on
// the same database whose keyring has a newer active key.
func seedRotated(t *testing.T, n int) (old, rotated *gorm.DB, keys map[string]string) {
	t.Helper()
	db, k, owner := openTestDB(t)
	keys = map[string]string{}
	for i := range n {
		key := fmt.Sprintf("sk-rewrap-%03d-abcdefghijkl", i)
		c, err := CreateCredential(context.Background(), db, owner, n, NewCredential{Name: fmt.Sprint(i), BackendType: BackendOpenAI, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		keys[c.ID] = key
	}
	k2, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	// A second handle on the same file, with the rotated keyring.
	r, err := Open(context.Background(), Options{DataDir: dataDirOf(t, db)}, NewEncryption(k2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(r) })
	return db, r, keys
}

func dataDirOf(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var file string
	if err := db.Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Row().Scan(&file); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(file, "/cloudkeys.db")
}

func kidCounts(t *testing.T, db *gorm.DB) map[string]int {
	t.Helper()
	var rows []sealedRow
	db.Table("cloud_credentials").Select("id, api_key_jwe, key_id").Scan(&rows)
	out := map[string]int{}
	for _, r := range rows {
		out[r.KeyID]++
	}
	return out
}

// An interrupted rewrap leaves every row readable and a second run
// finishes the work.
func TestRewrapIsResumable(t *testing.T) {
	_, db, keys := seedRotated(t, 7)
	k, _ := Keyring(db)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Rewrap(ctx, db, 3, func(RewrapResult) { cancel() })
	if !errors.Is(err, context.Canceled) || res.Rewrapped != 3 {
		t.Fatalf("interrupted rewrap: %+v, %v", res, err)
	}
	if got := kidCounts(t, db); got[k.ActiveKID()] != 3 || len(got) != 2 {
		t.Fatalf("after the interruption: %v", got)
	}
	res, err = Rewrap(context.Background(), db, 3, nil)
	if err != nil || res.Rewrapped != 4 {
		t.Fatalf("resumed rewrap: %+v, %v", res, err)
	}
	if got := kidCounts(t, db); got[k.ActiveKID()] != 7 || len(got) != 1 {
		t.Fatalf("after the resumed rewrap: %v", got)
	}
	var creds []CloudCredential
	db.Find(&creds)
	for _, c := range creds {
		if c.APIKey != keys[c.ID] {
			t.Fatalf("credential %s does not open to its key after rewrap", c.ID)
		}
	}
}

// A row its owner changes between rewrap reading it and writing it keeps
// the owner's change.
func TestRewrapNeverOverwritesAConcurrentChange(t *testing.T) {
	old, db, keys := seedRotated(t, 2)
	oldKeys, _ := Keyring(old)
	var victim string
	for id := range keys {
		victim = id
		break
	}
	// The owner, on a server still running with the old key set, enters a
	// new key just before rewrap writes that row.
	ownerValue, _, err := oldKeys.Seal([]byte("sk-owner-changed-it-0123456789"), victim)
	if err != nil {
		t.Fatal(err)
	}
	interfered := false
	err = db.Callback().Raw().Before("gorm:raw").Register("test:interfere", func(tx *gorm.DB) {
		if interfered || !strings.HasPrefix(tx.Statement.SQL.String(), "UPDATE cloud_credentials SET api_key_jwe") {
			return
		}
		interfered = true
		// On the rewrap's own connection (its transaction), as SQLite
		// serialises writers anyway.
		tx.Session(&gorm.Session{NewDB: true}).Exec("UPDATE cloud_credentials SET api_key_jwe = ? WHERE id = ?", ownerValue, victim)
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Rewrap(context.Background(), db, 10, nil)
	db.Callback().Raw().Remove("test:interfere")
	if err != nil || !interfered {
		t.Fatalf("rewrap: %v (interfered %v)", err, interfered)
	}
	if res.Rewrapped+res.Changed != 2 || res.Changed < 1 {
		t.Fatalf("result %+v", res)
	}
	var c CloudCredential
	db.Take(&c, "id = ?", victim)
	if c.APIKey != "sk-owner-changed-it-0123456789" {
		t.Fatalf("rewrap overwrote the owner's change (status %s)", c.KeyStatus())
	}
	// The next run moves the owner's value onto the active key too.
	if res, err := Rewrap(context.Background(), db, 10, nil); err != nil || res.Rewrapped != 1 {
		t.Fatalf("second rewrap: %+v, %v", res, err)
	}
	k, _ := Keyring(db)
	if got := kidCounts(t, db); got[k.ActiveKID()] != 2 {
		t.Fatalf("kids %v", got)
	}
}
