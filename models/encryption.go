package models

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"cloudkeys/keyring"
)

// Encryption is the GORM plugin that encrypts CloudCredential.APIKey at
// rest. Registered on a *gorm.DB (models.Open(ctx, opts, NewEncryption(k))),
// it holds that handle's keyring and adds three callbacks:
//
//   - before every create and update (GORM's BeforeSave point, after the
//     model's own Before* hooks), it seals a changed APIKey into APIKeyJWE
//     and KeyID, bound to the credential's ID (a random UUID, generated
//     here for a new credential so that the binding exists before the
//     insert);
//   - after every query (GORM's AfterFind point), it opens APIKeyJWE into
//     APIKey. A value that does not open does not fail the query: the
//     credential comes back with KeyStatus NEEDS_REENTRY and a message
//     saying why.
//
// These are callbacks rather than methods on the model because GORM hands a
// model's hooks a fresh *gorm.DB without the statement: the callbacks can
// see which columns a statement reads or writes, and so refuse an update
// that would store an empty key and skip opening a column a query did not
// select. There is no package-level keyring: each handle carries its own.
//
// The keyring can be replaced while the handle is in use (SetKeyring: a
// server reloading its key file, or picking up the active kid the database
// records): each statement loads the current keyring once, atomically, and
// uses that one for all its rows.
type Encryption struct {
	keys atomic.Pointer[keyring.Keyring]
	// OnOpenFailure, if set, is told why each stored key a query read did
	// not open (OpenFailureReason), for metrics. Set it before the plugin
	// is registered; it must be cheap and safe for concurrent use.
	OnOpenFailure func(reason string)
}

// NewEncryption returns the plugin for the keyring k.
func NewEncryption(k *keyring.Keyring) *Encryption {
	e := &Encryption{}
	if k != nil {
		e.keys.Store(k)
	}
	return e
}

// Keyring returns the keyring the plugin seals and opens with now.
func (e *Encryption) Keyring() *keyring.Keyring { return e.keys.Load() }

// SetKeyring makes k the keyring of every statement that starts from now
// on; statements already running finish with the one they loaded.
func (e *Encryption) SetKeyring(k *keyring.Keyring) {
	if k == nil {
		panic("models: SetKeyring(nil)")
	}
	e.keys.Store(k)
}

const encryptionPlugin = "cloudkeys:encryption"

// Name implements gorm.Plugin.
func (*Encryption) Name() string { return encryptionPlugin }

// Initialize implements gorm.Plugin: it registers the callbacks.
func (e *Encryption) Initialize(db *gorm.DB) error {
	if e.keys.Load() == nil {
		return errors.New("models: encryption plugin without a keyring")
	}
	cb := db.Callback()
	if err := cb.Create().After("gorm:before_create").Before("gorm:create").
		Register("cloudkeys:seal_on_create", e.sealOnCreate); err != nil {
		return err
	}
	if err := cb.Update().After("gorm:before_update").Before("gorm:update").
		Register("cloudkeys:seal_on_update", e.sealOnUpdate); err != nil {
		return err
	}
	return cb.Query().After("gorm:query").Before("gorm:after_query").
		Register("cloudkeys:open", e.open)
}

// Keyring returns the current keyring of the plugin registered on db.
func Keyring(db *gorm.DB) (*keyring.Keyring, error) {
	if p, ok := db.Config.Plugins[encryptionPlugin].(*Encryption); ok {
		return p.keys.Load(), nil
	}
	return nil, errNoEncryption
}

// SetKeyring replaces the keyring of the plugin registered on db.
func SetKeyring(db *gorm.DB, k *keyring.Keyring) error {
	if p, ok := db.Config.Plugins[encryptionPlugin].(*Encryption); ok {
		p.SetKeyring(k)
		return nil
	}
	return errNoEncryption
}

var (
	errNoEncryption = errors.New("models: the encryption plugin is not registered on this database handle")
	// errNoAPIKey refuses a statement that would store a credential with
	// no sealed key: an empty api_key_jwe would lose the key for good.
	errNoAPIKey = errors.New("models: refusing to store a cloud credential without an API key")
	// errKeyNotWritten refuses an update that changed APIKey but does not
	// write api_key_jwe (a Select leaving it out): the change would be lost.
	errKeyNotWritten = errors.New("models: APIKey changed but the update does not write api_key_jwe")
	// errKeyInMap refuses Updates(map) naming APIKey: GORM ignores fields
	// that are not columns, so the new key would be silently dropped.
	errKeyInMap = errors.New("models: set APIKey on a *CloudCredential, not in an update map")
)

var credentialType = reflect.TypeFor[CloudCredential]()

// isCredential reports whether the statement is about cloud credentials.
func isCredential(db *gorm.DB) bool {
	return db.Error == nil && db.Statement.Schema != nil && db.Statement.Schema.ModelType == credentialType
}

// eachCredential calls f with every *CloudCredential that v (a struct, a
// pointer, or a slice or array of either) holds, stopping at an error.
func eachCredential(v reflect.Value, f func(*CloudCredential) error) error {
	v = reflect.Indirect(v)
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := eachCredential(v.Index(i), f); err != nil {
				return err
			}
		}
	case reflect.Struct:
		if v.Type() != credentialType {
			return nil
		}
		if !v.CanAddr() {
			c := v.Interface().(CloudCredential)
			if c.APIKey != "" {
				return fmt.Errorf("models: pass a *CloudCredential to save an APIKey, not a %s", v.Type())
			}
			return nil
		}
		return f(v.Addr().Interface().(*CloudCredential))
	}
	return nil
}

// sealOnCreate seals every new credential's key. Every column is written on
// create (unless a Select or Omit says otherwise), so a credential without
// a key is refused.
func (e *Encryption) sealOnCreate(db *gorm.DB) {
	if !isCredential(db) {
		return
	}
	written := writes(db, false)
	keys := e.keys.Load()
	db.AddError(eachCredential(db.Statement.ReflectValue, func(c *CloudCredential) error {
		if c.ID == "" {
			c.ID = uuid.NewString()
		}
		if err := c.seal(keys); err != nil {
			return err
		}
		if c.APIKeyJWE == "" && written {
			return errNoAPIKey
		}
		return nil
	}))
}

// sealOnUpdate seals the key of the value an update writes, when it
// changed, and refuses an update that would write an empty api_key_jwe or
// drop a changed key.
func (e *Encryption) sealOnUpdate(db *gorm.DB) {
	if !isCredential(db) {
		return
	}
	stmt := db.Statement
	if m, ok := stmt.Dest.(map[string]any); ok {
		if _, named := m["APIKey"]; named {
			db.AddError(errKeyInMap)
		}
		return
	}
	written := writes(db, true)
	sealedAny := false
	keys := e.keys.Load()
	db.AddError(eachCredential(reflect.ValueOf(stmt.Dest), func(c *CloudCredential) error {
		changed := c.APIKey != "" && c.needsSeal()
		if err := c.seal(keys); err != nil {
			return err
		}
		switch {
		case changed && !written && restricted(db):
			return errKeyNotWritten
		case c.APIKeyJWE == "" && written:
			return errNoAPIKey
		}
		sealedAny = sealedAny || changed
		return nil
	}))
	// The kid column must follow the ciphertext it describes.
	if written && sealedAny && restricted(db) {
		if sel, _ := stmt.SelectAndOmitColumns(false, true); !sel["key_id"] {
			stmt.Selects = append(stmt.Selects, "key_id")
		}
	}
}

// writes reports whether the statement writes the api_key_jwe column: on
// create, unless a Select or Omit leaves it out; on update, only when
// selected (Save selects "*"), since Updates with a struct skips empty
// fields.
func writes(db *gorm.DB, update bool) bool {
	sel, isRestricted := db.Statement.SelectAndOmitColumns(!update, update)
	if v, ok := sel["api_key_jwe"]; ok {
		return v
	}
	return !update && !isRestricted
}

// restricted reports whether the statement names the columns it writes.
func restricted(db *gorm.DB) bool {
	_, r := db.Statement.SelectAndOmitColumns(false, true)
	return r
}

// open opens the key of every credential a query found, when the query
// read both the ciphertext and the ID it is bound to.
func (e *Encryption) open(db *gorm.DB) {
	if !isCredential(db) || db.RowsAffected == 0 {
		return
	}
	if len(db.Statement.Selects) > 0 {
		sel, _ := db.Statement.SelectAndOmitColumns(false, false)
		if !sel["api_key_jwe"] || !sel["id"] {
			return
		}
	}
	keys := e.keys.Load()
	db.AddError(eachCredential(db.Statement.ReflectValue, func(c *CloudCredential) error {
		if err := c.open(keys); err != nil && e.OnOpenFailure != nil {
			e.OnOpenFailure(OpenFailureReason(err))
		}
		return nil
	}))
}

// OpenFailureReason names why a stored value did not open, as a metric
// label: the kind of keyProblems in snake case ("unknown_key",
// "does_not_decrypt", …).
func OpenFailureReason(err error) string {
	kind, _ := problemOf(err)
	return strings.ReplaceAll(strings.ToLower(kind), " ", "_")
}

// needsSeal reports whether APIKeyJWE does not (or may not) hold APIKey
// sealed for this ID.
func (c *CloudCredential) needsSeal() bool {
	return c.APIKeyJWE == "" || c.APIKey != c.sealedKey || c.ID != c.sealedID
}

// seal encrypts APIKey into APIKeyJWE and KeyID when it changed. An empty
// APIKey means "unknown" (a key that could not be opened, or a value built
// without one): the stored ciphertext is kept as it is.
func (c *CloudCredential) seal(k *keyring.Keyring) error {
	if c.APIKey == "" || !c.needsSeal() {
		return nil
	}
	sealed, kid, err := k.Seal([]byte(c.APIKey), c.ID)
	if err != nil {
		return err
	}
	c.APIKeyJWE, c.KeyID = sealed, kid
	c.sealedKey, c.sealedID, c.keyProblem = c.APIKey, c.ID, ""
	return nil
}

// open decrypts APIKeyJWE into APIKey, or records (and returns) why it
// cannot.
func (c *CloudCredential) open(k *keyring.Keyring) error {
	c.APIKey, c.sealedKey, c.sealedID, c.keyProblem = "", "", "", ""
	plaintext, err := k.Open(c.APIKeyJWE, c.ID)
	if err != nil {
		c.keyProblem = reentryMessage(err)
		return err
	}
	c.APIKey = string(plaintext)
	c.sealedKey, c.sealedID = c.APIKey, c.ID
	return nil
}
