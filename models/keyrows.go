package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"cloudkeys/keyring"
)

// This file holds what `cloudkeys keys …` and the start-up check need to
// know about the stored ciphertexts. Like the encryption plugin, it is the
// only code besides keyring that reads api_key_jwe; each function uses the
// keyring of the plugin registered on db.

// keyProblems names each reason a stored value does not open, for the
// owner (Message, shown as keyStatusMessage) and for the operator (Kind,
// in `keys status`). The first entry whose error matches wins.
var keyProblems = []struct {
	err           error
	kind, message string
}{
	{keyring.ErrUnknownKey, "unknown key",
		"The API key was encrypted with an encryption key this server no longer has (retired, or missing from its key set)."},
	{keyring.ErrBinding, "bound to another record",
		"The stored API key belongs to another credential (it was copied from another record), so it is not used here."},
	{keyring.ErrLegacy, "legacy Fernet token",
		"The API key is stored in an older format (a Fernet token from the previous server) that cloudkeys cannot read."},
	{keyring.ErrMalformed, "not a JWE",
		"The stored API key is not in cloudkeys' encrypted format (it may have been written by another program)."},
	{keyring.ErrDecrypt, "does not decrypt",
		"The stored API key could not be decrypted: it was altered or damaged, or the encryption key with its ID is not the one it was encrypted with."},
	{nil, "unsupported JWE", // ErrAlgorithm, ErrCompressed, ErrTooLarge
		"The stored API key uses an encryption format cloudkeys does not accept."},
}

// problemOf returns the entry of keyProblems for an Open error.
func problemOf(err error) (kind, message string) {
	for _, p := range keyProblems {
		if p.err == nil || errors.Is(err, p.err) {
			return p.kind, p.message
		}
	}
	panic("unreachable: keyProblems ends with a catch-all")
}

// reentryMessage tells the owner, in words they can act on, why a stored
// key cannot be used. It never contains the key or the ciphertext.
func reentryMessage(err error) string {
	_, msg := problemOf(err)
	return msg + " Enter the API key again to keep using this credential."
}

// KeyCount is how many stored credentials use one kid.
type KeyCount struct {
	KID  string `gorm:"column:kid"`
	Rows int64  `gorm:"column:n"`
}

// MissingKeys lists the kids that stored credentials use (by their key_id
// column) and the key set of db's encryption plugin lacks, with their row
// counts, ordered by kid. Rows without a kid (imported legacy values) are
// not counted: no key set could open them.
func MissingKeys(ctx context.Context, db *gorm.DB) ([]KeyCount, error) {
	k, err := Keyring(db)
	if err != nil {
		return nil, err
	}
	return MissingKeysOf(ctx, db, k)
}

// MissingKeysOf is MissingKeys for the key set k rather than the plugin's
// (a key file a server is about to reload).
func MissingKeysOf(ctx context.Context, db *gorm.DB, k *keyring.Keyring) ([]KeyCount, error) {
	var counts []KeyCount
	err := db.WithContext(ctx).Table("cloud_credentials").
		Select("key_id AS kid, COUNT(*) AS n").Where("key_id <> ''").
		Group("key_id").Order("key_id").Scan(&counts).Error
	if err != nil {
		return nil, fmt.Errorf("count credentials per key: %w", err)
	}
	return slices.DeleteFunc(counts, func(c KeyCount) bool { return k.Has(c.KID) }), nil
}

// MissingKeysError says which kids stored credentials use that the key
// set lacks (a wrong or truncated key file).
type MissingKeysError struct{ Missing []KeyCount }

func (e *MissingKeysError) Error() string {
	return "stored API keys use encryption keys missing from the key set: " + e.List()
}

// List names each missing kid with its row count: "k1" (3 credentials), ….
func (e *MissingKeysError) List() string {
	names := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		names[i] = fmt.Sprintf("%q (%d credentials)", m.KID, m.Rows)
	}
	return strings.Join(names, ", ")
}

// CheckStoredKeys returns a *MissingKeysError when stored credentials use
// kids that db's key set lacks, and nil when the key set has them all.
func CheckStoredKeys(ctx context.Context, db *gorm.DB) error {
	missing, err := MissingKeys(ctx, db)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &MissingKeysError{Missing: missing}
	}
	return nil
}

// sealedRow is a credential's ciphertext, read without the plugin.
type sealedRow struct {
	ID        string
	APIKeyJWE string `gorm:"column:api_key_jwe"`
	KeyID     string
}

// firstID sorts before every UUID, as text (SQLite) and as uuid (PostgreSQL).
const firstID = "00000000-0000-0000-0000-000000000000"

// eachSealedBatch reads the credentials matching where (with args) in
// batches of size, in ID order, and calls f with each batch.
func eachSealedBatch(ctx context.Context, db *gorm.DB, size int, where string, args []any, f func([]sealedRow) error) error {
	after := firstID
	for {
		var rows []sealedRow
		err := db.WithContext(ctx).Table("cloud_credentials").Select("id, api_key_jwe, key_id").
			Where("id > ?", after).Where(where, args...).Order("id").Limit(size).Scan(&rows).Error
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		if err := f(rows); err != nil {
			return err
		}
		after = rows[len(rows)-1].ID
	}
}

// RewrapResult says what Rewrap did.
type RewrapResult struct {
	ActiveKID string
	// Rewrapped credentials were sealed anew under the active key.
	Rewrapped int
	// Repaired credentials had a key_id column that disagreed with the
	// kid of their JWE header; it now agrees (some of them were rewrapped
	// too, and counted there as well).
	Repaired int
	// Unreadable credentials do not open; they were left as they are
	// (but for their key_id column, set to their header's kid when it
	// disagreed).
	Unreadable int
	// Changed credentials were changed (or deleted) by someone else between
	// being read and rewritten; whoever changed them sealed them anew.
	Changed int
}

// Rewrap re-encrypts, under the active key, every credential whose value
// is sealed under another one, batchSize at a time, and repairs the
// key_id column of every row where it disagrees with the kid of the JWE
// header. It is safe while servers are serving: each row is rewritten
// only if its ciphertext is still the one that was read (UPDATE … WHERE
// id = ? AND api_key_jwe = ?), so a concurrent change by the owner is
// never overwritten, and only the ciphertext and kid columns are written
// (updated_at is not: the credential did not change). It can be
// interrupted and run again: it reads every row (only its ID, ciphertext
// and kid column) and rewrites those not yet right. progress, if not nil,
// is called after each batch.
func Rewrap(ctx context.Context, db *gorm.DB, batchSize int, progress func(RewrapResult)) (RewrapResult, error) {
	k, err := Keyring(db)
	if err != nil {
		return RewrapResult{}, err
	}
	active := k.ActiveKID()
	res := RewrapResult{ActiveKID: active}
	type rewrite struct {
		id, old, sealed, kid string
		resealed, repair     bool
	}
	err = eachSealedBatch(ctx, db, batchSize, "1 = 1", nil, func(rows []sealedRow) error {
		// Crypto first, outside the transaction, so the write lock is held
		// only for the updates.
		writes := make([]rewrite, 0, len(rows))
		for _, r := range rows {
			header, herr := keyring.HeaderKID(r.APIKeyJWE)
			mismatch := herr == nil && header != r.KeyID
			if herr == nil && header == active {
				if mismatch { // sealed right, described wrong
					writes = append(writes, rewrite{id: r.ID, old: r.APIKeyJWE, sealed: r.APIKeyJWE, kid: active, repair: true})
				}
				continue
			}
			plaintext, err := k.Open(r.APIKeyJWE, r.ID)
			if err != nil {
				res.Unreadable++
				if mismatch { // the column must say which key the value needs
					writes = append(writes, rewrite{id: r.ID, old: r.APIKeyJWE, sealed: r.APIKeyJWE, kid: header, repair: true})
				}
				continue
			}
			sealed, kid, err := k.Seal(plaintext, r.ID)
			clear(plaintext)
			if err != nil {
				return err
			}
			writes = append(writes, rewrite{id: r.ID, old: r.APIKeyJWE, sealed: sealed, kid: kid, resealed: true, repair: mismatch})
		}
		if len(writes) > 0 {
			err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				for _, w := range writes {
					u := tx.Exec("UPDATE cloud_credentials SET api_key_jwe = ?, key_id = ? WHERE id = ? AND api_key_jwe = ?",
						w.sealed, w.kid, w.id, w.old)
					if u.Error != nil {
						return u.Error
					}
					if u.RowsAffected == 0 {
						res.Changed++
						continue
					}
					if w.resealed {
						res.Rewrapped++
					}
					if w.repair {
						res.Repaired++
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if progress != nil {
			progress(res)
		}
		return nil
	})
	return res, err
}

// CountKeyUse returns how many stored credentials use kid: by their
// key_id column or by the kid of their JWE header (the two disagree only
// in a damaged row, and then either may be right). It reads every row.
func CountKeyUse(ctx context.Context, db *gorm.DB, kid string, batchSize int) (int, error) {
	n := 0
	err := eachSealedBatch(ctx, db, batchSize, "1 = 1", nil, func(rows []sealedRow) error {
		for _, r := range rows {
			header, _ := keyring.HeaderKID(r.APIKeyJWE)
			if r.KeyID == kid || header == kid {
				n++
			}
		}
		return nil
	})
	return n, err
}

// KeyUsage is what `keys status` reports.
type KeyUsage struct {
	// Keys has one entry per kid of the key set (in set order, the active
	// one first) and then one per kid that rows use and the set lacks.
	Keys []KeyUse
	// Total is the number of stored credentials.
	Total int
	// Unreadable counts the credentials that do not open, by reason.
	Unreadable map[string]int
	// Mismatched counts the rows whose key_id column disagrees with the
	// kid of their JWE header ('keys rewrap' repairs them); MismatchedIDs
	// names the first few.
	Mismatched    int
	MismatchedIDs []KIDMismatch
}

// KIDMismatch is a row whose key_id column is not its JWE header's kid.
type KIDMismatch struct {
	ID, Column, Header string
}

// maxMismatchedIDs bounds KeyUsage.MismatchedIDs.
const maxMismatchedIDs = 10

// KeyUse is how one kid is used.
type KeyUse struct {
	KID           string
	Active, InSet bool
	// Rows use the kid (by their key_id column); Unreadable of them do not
	// open.
	Rows, Unreadable int
}

// KeyReport opens every stored credential, batchSize at a time, and counts
// them per kid and per reason they do not open. It never returns
// plaintext.
func KeyReport(ctx context.Context, db *gorm.DB, batchSize int) (*KeyUsage, error) {
	k, err := Keyring(db)
	if err != nil {
		return nil, err
	}
	u := &KeyUsage{Unreadable: map[string]int{}}
	index := map[string]int{}
	use := func(kid string) *KeyUse {
		i, ok := index[kid]
		if !ok {
			i = len(u.Keys)
			index[kid] = i
			u.Keys = append(u.Keys, KeyUse{KID: kid, Active: kid == k.ActiveKID(), InSet: k.Has(kid)})
		}
		return &u.Keys[i]
	}
	for _, kid := range k.KIDs() {
		use(kid)
	}
	err = eachSealedBatch(ctx, db, batchSize, "1 = 1", nil, func(rows []sealedRow) error {
		for _, r := range rows {
			u.Total++
			ku := use(r.KeyID)
			ku.Rows++
			if header, err := keyring.HeaderKID(r.APIKeyJWE); err == nil && header != r.KeyID {
				u.Mismatched++
				if len(u.MismatchedIDs) < maxMismatchedIDs {
					u.MismatchedIDs = append(u.MismatchedIDs, KIDMismatch{ID: r.ID, Column: r.KeyID, Header: header})
				}
			}
			plaintext, err := k.Open(r.APIKeyJWE, r.ID)
			if err != nil {
				kind, _ := problemOf(err)
				u.Unreadable[kind]++
				ku.Unreadable++
				continue
			}
			clear(plaintext)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Kids the set lacks, after the set's own, by name.
	n := len(k.KIDs())
	slices.SortFunc(u.Keys[n:], func(a, b KeyUse) int { return strings.Compare(a.KID, b.KID) })
	return u, nil
}
