package models

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloudkeys/keyring"
)

func TestActiveKeyRecord(t *testing.T) {
	db, _, _ := openTestDB(t)
	ctx := context.Background()
	if _, ok, err := RecordedActiveKey(ctx, db); ok || err != nil {
		t.Fatalf("a fresh database records an active key: %v %v", ok, err)
	}
	a, err := RecordActiveKeyIfNone(ctx, db, "k1")
	if err != nil || a.KID != "k1" {
		t.Fatalf("first record: %+v %v", a, err)
	}
	// A second server's first key does not replace it.
	if a, err := RecordActiveKeyIfNone(ctx, db, "k2"); err != nil || a.KID != "k1" {
		t.Fatalf("second record: %+v %v", a, err)
	}
	if err := SetActiveKey(ctx, db, "k2"); err != nil {
		t.Fatal(err)
	}
	if a, ok, err := RecordedActiveKey(ctx, db); !ok || err != nil || a.KID != "k2" || time.Since(a.ActivatedAt) > time.Minute {
		t.Fatalf("after SetActiveKey: %+v %v %v", a, ok, err)
	}
}

func TestCheckKeyValues(t *testing.T) {
	db, k, _ := openTestDB(t)
	ctx := context.Background()
	if err := CheckKeyValues(ctx, db, k); err != nil {
		t.Fatal(err)
	}
	rec, _ := KeyCheckValues(ctx, db)
	if v, _ := k.CheckValue(k.ActiveKID()); rec[k.ActiveKID()] != v {
		t.Fatalf("recorded %v", rec)
	}
	// Same kid, other bytes: refused, naming the kid, and a new kid of
	// that set is not recorded.
	forged, err := keyring.Parse(fmt.Appendf(nil, `{"keys":[{"kty":"oct","kid":%q,"alg":"A256KW","k":%q}]}`,
		k.ActiveKID(), base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))))
	if err != nil {
		t.Fatal(err)
	}
	withNew, _ := forged.Add()
	err = CheckKeyValues(ctx, db, withNew)
	var mismatch *KeyMismatchError
	if !errors.As(err, &mismatch) || len(mismatch.KIDs) != 1 || mismatch.KIDs[0] != k.ActiveKID() {
		t.Fatalf("mismatch: %v", err)
	}
	if rec, _ := KeyCheckValues(ctx, db); len(rec) != 1 {
		t.Fatalf("a refused set recorded values: %v", rec)
	}
	// A set that adds a key records it.
	added, _ := k.Add()
	if err := CheckKeyValues(ctx, db, added); err != nil {
		t.Fatal(err)
	}
	if rec, _ := KeyCheckValues(ctx, db); len(rec) != 2 {
		t.Fatalf("recorded %v", rec)
	}
}

func TestHeartbeats(t *testing.T) {
	db, k, _ := openTestDB(t)
	ctx := context.Background()
	now := time.Now()
	h := Heartbeat{InstanceID: "a", Hostname: "host", PID: 1, Version: "v", KeySource: "file", Keys: HeldKeys(k),
		ActiveKID: k.ActiveKID(), StartedAt: now, LastSeen: now, ExpiresAt: now.Add(30 * time.Second)}
	if err := Beat(ctx, db, h); err != nil {
		t.Fatal(err)
	}
	stale := h
	stale.InstanceID, stale.ExpiresAt = "b", now.Add(-time.Second)
	if err := Beat(ctx, db, stale); err != nil {
		t.Fatal(err)
	}
	live, err := LiveServers(ctx, db, time.Now())
	if err != nil || len(live) != 1 || live[0].InstanceID != "a" || !live[0].Holds(k.ActiveKID()) || live[0].Holds("x") {
		t.Fatalf("live: %+v %v", live, err)
	}
	if v, _ := live[0].CheckValue(k.ActiveKID()); v != HeldKeys(k)[0].KCV {
		t.Fatal("the heartbeat does not carry the check value")
	}
	// A second beat replaces the first.
	added, _ := k.Add()
	h.Keys = HeldKeys(added)
	if err := Beat(ctx, db, h); err != nil {
		t.Fatal(err)
	}
	if live, _ := LiveServers(ctx, db, time.Now()); len(live) != 1 || len(live[0].Keys) != 2 {
		t.Fatalf("after a second beat: %+v", live)
	}
	if err := PruneHeartbeats(ctx, db, time.Now()); err != nil {
		t.Fatal(err)
	}
	var n int64
	db.Table("server_heartbeats").Count(&n)
	if n != 1 {
		t.Fatalf("%d heartbeats after pruning, want 1", n)
	}
	if err := EndHeartbeat(ctx, db, "a"); err != nil {
		t.Fatal(err)
	}
	if live, _ := LiveServers(ctx, db, time.Now()); len(live) != 0 {
		t.Fatalf("after EndHeartbeat: %+v", live)
	}
}

// A row whose key_id column is not its JWE header's kid is counted by
// KeyReport and repaired by Rewrap, whether its value opens or not; retire's
// count sees either kid.
func TestKIDColumnMismatch(t *testing.T) {
	_, r, keys := seedRotated(t, 3)
	ctx := context.Background()
	k2, _ := Keyring(r)
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	old := k2.KIDs()[1]
	// Sealed with the old key, the column says the new one.
	r.Exec("UPDATE cloud_credentials SET key_id = ? WHERE id = ?", k2.ActiveKID(), ids[0])
	// Sealed with a key nobody has, the column says the old one.
	stranger, _ := keyring.New()
	sealed, _, _ := stranger.Seal([]byte("x"), ids[1])
	r.Exec("UPDATE cloud_credentials SET api_key_jwe = ? WHERE id = ?", sealed, ids[1])

	u, err := KeyReport(ctx, r, 2)
	if err != nil || u.Mismatched != 2 || len(u.MismatchedIDs) != 2 {
		t.Fatalf("report: %+v %v", u, err)
	}
	if n, err := CountKeyUse(ctx, r, stranger.ActiveKID(), 2); err != nil || n != 1 {
		t.Fatalf("CountKeyUse by header: %d %v", n, err)
	}
	if n, _ := CountKeyUse(ctx, r, old, 2); n != 3 {
		t.Fatalf("CountKeyUse of the old kid: %d, want 3 (two by column and header, one by column only)", n)
	}
	res, err := Rewrap(ctx, r, 2, nil)
	if err != nil || res.Rewrapped != 2 || res.Repaired != 2 || res.Unreadable != 1 {
		t.Fatalf("rewrap: %+v %v", res, err)
	}
	if u, _ := KeyReport(ctx, r, 2); u.Mismatched != 0 {
		t.Fatalf("after rewrap: %+v", u.MismatchedIDs)
	}
	if _, kid := stored(t, r, ids[1]); kid != stranger.ActiveKID() {
		t.Fatalf("the unreadable row's column says %q, want its header's kid", kid)
	}
	// A row sealed under the active key with a wrong column: the column
	// alone is fixed.
	r.Exec("UPDATE cloud_credentials SET key_id = 'k-wrong' WHERE id = ?", ids[2])
	before, _ := stored(t, r, ids[2])
	res, err = Rewrap(ctx, r, 2, nil)
	if err != nil || res.Rewrapped != 0 || res.Repaired != 1 {
		t.Fatalf("second rewrap: %+v %v", res, err)
	}
	if jwe, kid := stored(t, r, ids[2]); jwe != before || kid != k2.ActiveKID() {
		t.Fatal("the column repair resealed the value or missed the column")
	}
}

// The keyring can be swapped while statements run (go test -race).
func TestSetKeyringWhileQuerying(t *testing.T) {
	db, k, owner := openTestDB(t)
	enc := db.Config.Plugins[encryptionPlugin].(*Encryption)
	for i := range 5 {
		if err := db.Create(newCred(owner, fmt.Sprint(i), testKey)).Error; err != nil {
			t.Fatal(err)
		}
	}
	added, _ := k.Add()
	next, _ := added.WithActive(added.KIDs()[1])
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var cs []CloudCredential
				if err := db.Find(&cs).Error; err != nil {
					errs <- err
					return
				}
				for _, c := range cs {
					if c.APIKey != testKey {
						errs <- fmt.Errorf("a credential did not open: %v", c.KeyStatusMessage())
						return
					}
				}
				if err := db.Create(newCred(owner, fmt.Sprintf("w%d-%d", w, i), testKey)).Error; err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 50 {
		if i%2 == 0 {
			enc.SetKeyring(next)
		} else {
			enc.SetKeyring(added)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
