package models

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cloudkeys/apperr"
)

// CloudCredential is a user's API key for a cloud provider. APIKey holds the
// plaintext in memory only: it is not a column. The encryption plugin seals
// it into APIKeyJWE before every save and opens it after every find, so
// code outside models and keyring never sees ciphertext.
type CloudCredential struct {
	ID          string `gorm:"primaryKey"`
	UserID      string
	Name        string
	BackendType BackendType
	APIType     APIType
	BaseURL     *string
	CreatedAt   time.Time
	UpdatedAt   time.Time

	// APIKey is the plaintext key; empty when it could not be opened.
	APIKey string `gorm:"-"`
	// APIKeyJWE is the sealed key (JWE compact serialization).
	APIKeyJWE string `gorm:"column:api_key_jwe"`
	// KeyID is the kid of the encryption key that sealed APIKeyJWE.
	KeyID string

	// sealedKey and sealedID are the plaintext APIKeyJWE holds and the ID
	// it is bound to, as last sealed or opened: saving a credential whose
	// key did not change does not seal it again.
	sealedKey string `gorm:"-"`
	sealedID  string `gorm:"-"`
	// keyProblem says why APIKeyJWE could not be opened, if it could not.
	keyProblem string `gorm:"-"`
}

// KeyStatus says whether the stored key could be opened.
func (c *CloudCredential) KeyStatus() KeyStatus {
	if c.keyProblem != "" {
		return KeyNeedsReentry
	}
	return KeyOK
}

// KeyStatusMessage says why the key must be entered again, or nil.
func (c *CloudCredential) KeyStatusMessage() *string {
	if c.keyProblem == "" {
		return nil
	}
	return &c.keyProblem
}

// Hint lengths: keys shorter than hintMinLen show nothing of themselves,
// keys shorter than hintPrefixMinLen show only their last hintTail
// characters, longer ones also their first hintHead.
const (
	hintMinLen       = 8
	hintPrefixMinLen = 16
	hintHead         = 3
	hintTail         = 4
)

// APIKeyHint shows enough of the key to recognise it without revealing
// it: the first 3 and last 4 characters ("sk-…Q7xa") for keys of 16
// characters or more, only the last 4 ("…Q7xa") from 8 to 15 characters,
// and a bare "…" under 8, where even 4 characters would be half the key.
// It is empty when the key could not be opened.
func (c *CloudCredential) APIKeyHint() string {
	if c.keyProblem != "" || c.APIKey == "" {
		return ""
	}
	r := []rune(c.APIKey)
	switch {
	case len(r) < hintMinLen:
		return "…"
	case len(r) < hintPrefixMinLen:
		return "…" + string(r[len(r)-hintTail:])
	default:
		return string(r[:hintHead]) + "…" + string(r[len(r)-hintTail:])
	}
}

// Limits of the input fields.
const (
	maxNameLen    = 100
	maxAPIKeyLen  = 4096
	maxBaseURLLen = 2048
)

// NewCredential is a credential to store, as a user typed it.
type NewCredential struct {
	Name        string
	BackendType BackendType
	APIKey      string
	APIType     *APIType // nil: the backend type's protocol
	BaseURL     *string  // nil or "": the backend type's default base URL
}

// CredentialUpdate changes a credential; nil fields stay as they are.
type CredentialUpdate struct {
	Name *string
	// BackendType, when it differs from the stored one, also resets APIType
	// and BaseURL to the new type's defaults unless they are given too.
	BackendType *BackendType
	APIKey      *string
	APIType     *APIType
	// BaseURL "" resets the base URL to the backend type's default.
	BaseURL *string
}

// Field names in errors, as the GraphQL inputs name them.
const (
	fieldName        = "input.name"
	fieldBackendType = "input.backendType"
	fieldAPIKey      = "input.apiKey"
	fieldAPIType     = "input.apiType"
	fieldBaseURL     = "input.baseUrl"
)

// CreateCredential stores a new credential owned by ownerID, with its key
// sealed by the encryption plugin. Any signed-in user may store up to
// maxPerOwner credentials; they belong to that user alone. Returns
// BAD_USER_INPUT (naming the field) for invalid input, FORBIDDEN when the
// owner already has maxPerOwner credentials, and CONFLICT when the owner
// already has a credential with that name; nothing is stored then.
//
// The count and the insert are one transaction under a per-owner lock
// (SQLite serialises writers anyway), so concurrent creates cannot pass
// the cap together.
func CreateCredential(ctx context.Context, db *gorm.DB, ownerID string, maxPerOwner int, in NewCredential) (*CloudCredential, error) {
	c, err := in.build(ownerID)
	if err != nil {
		return nil, err
	}
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lock(tx, "credentials:"+ownerID); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&CloudCredential{}).Where("user_id = ?", ownerID).Count(&n).Error; err != nil {
			return err
		}
		if n >= int64(maxPerOwner) {
			return errTooManyCredentials(maxPerOwner, n)
		}
		return tx.Create(c).Error
	})
	if err != nil {
		return nil, translateWriteError(err, c.Name)
	}
	return c, nil
}

// Credentials returns the owner's credentials ordered by name, each with
// its key opened (or marked NEEDS_REENTRY). Only the owner's credentials
// are ever listed.
func Credentials(ctx context.Context, db *gorm.DB, ownerID string) ([]*CloudCredential, error) {
	var out []*CloudCredential
	err := db.WithContext(ctx).Select(listColumns).Where("user_id = ?", ownerID).Order("name, id").Find(&out).Error
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listColumns are the columns the API shows (and the ciphertext with the
// ID it is bound to): the owner is known, the kid column is for operators.
var listColumns = []string{"id", "name", "backend_type", "api_type", "base_url", "api_key_jwe", "created_at", "updated_at"}

// CredentialByID returns one credential with its key opened. Only the owner
// may see a credential; returns NOT_FOUND if it does not exist, is not the
// owner's (administrators included), or id is not a credential ID at all.
func CredentialByID(ctx context.Context, db *gorm.DB, ownerID, id string) (*CloudCredential, error) {
	return credentialFor(db.WithContext(ctx), ownerID, id)
}

// UpdateCredential changes the fields of in that are set and returns the
// credential as stored. Only the owner may change a credential; returns
// NOT_FOUND otherwise, BAD_USER_INPUT for invalid input and CONFLICT for a
// name the owner already uses, and then changes nothing. A new API key is
// sealed again (which also repairs a NEEDS_REENTRY credential); fields not
// set, the stored key included, are never rewritten.
func UpdateCredential(ctx context.Context, db *gorm.DB, ownerID, id string, in CredentialUpdate) (*CloudCredential, error) {
	var c *CloudCredential
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx
		if isPostgres(tx) {
			q = tx.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var err error
		if c, err = credentialFor(q, ownerID, id); err != nil {
			return err
		}
		cols, err := in.apply(c)
		if err != nil || len(cols) == 0 {
			return err
		}
		c.UpdatedAt = Now()
		cols = append(cols, "updated_at")
		return tx.Model(c).Where("user_id = ?", ownerID).Select(cols).Updates(c).Error
	})
	if err != nil {
		return nil, translateWriteError(err, c.nameOrEmpty())
	}
	return c, nil
}

// DeleteCredential deletes a credential and its key. Only the owner may
// delete a credential; returns NOT_FOUND otherwise.
func DeleteCredential(ctx context.Context, db *gorm.DB, ownerID, id string) error {
	id, ok := canonicalID(id)
	if !ok {
		return errCredentialNotFound()
	}
	res := db.WithContext(ctx).Where("id = ? AND user_id = ?", id, ownerID).Delete(&CloudCredential{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return errCredentialNotFound()
	}
	return nil
}

// credentialFor loads the owner's credential id, or NOT_FOUND.
func credentialFor(db *gorm.DB, ownerID, id string) (*CloudCredential, error) {
	id, ok := canonicalID(id)
	if !ok {
		return nil, errCredentialNotFound()
	}
	var c CloudCredential
	err := db.Where("id = ? AND user_id = ?", id, ownerID).Take(&c).Error
	if notFound(err) {
		return nil, errCredentialNotFound()
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// errTooManyCredentials refuses a credential beyond the owner's cap. The
// owner may hold more than the cap when it was lowered after they stored
// them.
func errTooManyCredentials(maxPerOwner int, have int64) error {
	deleteFirst := "delete one"
	if extra := have - int64(maxPerOwner) + 1; extra > 1 {
		deleteFirst = fmt.Sprintf("delete %d", extra)
	}
	return apperr.Errorf(apperr.Forbidden, "an account may store at most %d cloud credentials and you have %d: %s before adding another",
		maxPerOwner, have, deleteFirst)
}

// errCredentialNotFound is the one answer for a credential that does not
// exist and for one that is not the caller's.
func errCredentialNotFound() error {
	return apperr.Errorf(apperr.NotFound, "cloud credential not found")
}

// canonicalID returns id in the lowercase hyphenated UUID form the rows
// are stored with; ok is false when id is not a UUID.
func canonicalID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

func (c *CloudCredential) nameOrEmpty() string {
	if c == nil {
		return ""
	}
	return c.Name
}

// translateWriteError turns the unique (owner, name) violation into
// CONFLICT and leaves every other error as it is.
func translateWriteError(err error, name string) error {
	if isUniqueViolation(err) {
		return &apperr.Error{Code: apperr.Conflict, Field: fieldName,
			Message: fmt.Sprintf("you already have a credential named %q", name)}
	}
	return err
}

// build validates a new credential and fills in its defaults.
func (in NewCredential) build(ownerID string) (*CloudCredential, error) {
	name, err := validName(fieldName, in.Name)
	if err != nil {
		return nil, err
	}
	p, err := providerOf(in.BackendType)
	if err != nil {
		return nil, err
	}
	key, err := validAPIKey(in.APIKey)
	if err != nil {
		return nil, err
	}
	apiType, err := p.apiTypeFor(in.APIType)
	if err != nil {
		return nil, err
	}
	baseURL, err := p.baseURLFor(in.BaseURL)
	if err != nil {
		return nil, err
	}
	return &CloudCredential{UserID: ownerID, Name: name, BackendType: p.BackendType,
		APIType: apiType, BaseURL: baseURL, APIKey: key}, nil
}

// apply validates the update, changes c and returns the columns that
// changed.
func (in CredentialUpdate) apply(c *CloudCredential) ([]string, error) {
	var cols []string
	if in.Name != nil {
		name, err := validName(fieldName, *in.Name)
		if err != nil {
			return nil, err
		}
		if name != c.Name {
			c.Name, cols = name, append(cols, "name")
		}
	}
	p, err := providerOf(c.BackendType)
	if in.BackendType != nil && *in.BackendType != c.BackendType {
		if p, err = providerOf(*in.BackendType); err != nil {
			return nil, err
		}
		c.BackendType, c.APIType, c.BaseURL = p.BackendType, p.APIType, p.DefaultBaseURL
		cols = append(cols, "backend_type", "api_type", "base_url")
		if in.BaseURL == nil && p.DefaultBaseURL == nil {
			return nil, apperr.Invalidf(fieldBaseURL, "baseUrl is required for %s: give the server's URL", p.BackendType)
		}
	} else if err != nil {
		return nil, err // a stored backend type this version does not know
	}
	if in.APIKey != nil {
		key, err := validAPIKey(*in.APIKey)
		if err != nil {
			return nil, err
		}
		if key != c.APIKey || c.KeyStatus() != KeyOK {
			c.APIKey, cols = key, append(cols, "api_key_jwe")
		}
	}
	if in.APIType != nil {
		t, err := p.apiTypeFor(in.APIType)
		if err != nil {
			return nil, err
		}
		if t != c.APIType {
			c.APIType, cols = t, append(cols, "api_type")
		}
	}
	if in.BaseURL != nil {
		u, err := p.baseURLFor(in.BaseURL)
		if err != nil {
			return nil, err
		}
		if !equalPtr(u, c.BaseURL) {
			c.BaseURL, cols = u, append(cols, "base_url")
		}
	}
	return cols, nil
}

func equalPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func providerOf(b BackendType) (Provider, error) {
	p, ok := ProviderOf(b)
	if !ok {
		return Provider{}, apperr.Invalidf(fieldBackendType, "unknown backend type")
	}
	return p, nil
}

// validName trims surrounding white space and checks the rest (of a
// credential's or a relay key's name, the input field): 1 to 100
// characters, none of them a control character or an invisible one
// (format characters: zero-width spaces, bidirectional overrides such as
// U+202E, which make a name read as another).
func validName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", apperr.Invalidf(field, "name is required")
	case n > maxNameLen:
		return "", apperr.Invalidf(field, "name must be at most %d characters", maxNameLen)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", apperr.Invalidf(field, "name must not contain control characters such as line breaks or tabs")
	case strings.IndexFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) >= 0:
		return "", apperr.Invalidf(field, "name must not contain invisible characters such as zero-width spaces or bidirectional overrides")
	}
	return s, nil
}

// validAPIKey trims surrounding white space (a pasted key often brings a
// line break along) and checks the rest: 1 to 4096 characters, no control
// characters, and otherwise only visible ASCII. Provider keys are such
// tokens; a space or non-ASCII character inside one comes from copying (a
// typographic quote, a non-breaking or zero-width space, the "…" of a
// hint) and would only fail later, at the provider. Messages never repeat
// the key.
func validAPIKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", apperr.Invalidf(fieldAPIKey, "apiKey is required")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", apperr.Invalidf(fieldAPIKey, "apiKey must not contain control characters such as line breaks or tabs")
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return "", apperr.Invalidf(fieldAPIKey, "apiKey may only contain visible ASCII characters; it contains a space or a character such as a typographic quote, an invisible space or \"…\", probably from copying")
		}
	}
	if len(s) > maxAPIKeyLen {
		return "", apperr.Invalidf(fieldAPIKey, "apiKey must be at most %d characters", maxAPIKeyLen)
	}
	return s, nil
}

// apiTypeFor returns the protocol of a credential of p: given, or p's. The
// first-party and *_COMPATIBLE types name their protocol, so they refuse
// the other one; the hosted providers (Together, Groq, …) speak OpenAI's
// by default and may be set to Anthropic's for an Anthropic-compatible
// endpoint some of them also offer (with its baseUrl).
func (p Provider) apiTypeFor(given *APIType) (APIType, error) {
	if given == nil {
		return p.APIType, nil
	}
	if *given != APIOpenAI && *given != APIAnthropic {
		return "", apperr.Invalidf(fieldAPIType, "unknown API type")
	}
	if *given != p.APIType && p.fixedProtocol() {
		return "", apperr.Invalidf(fieldAPIType, "%s speaks the %s API only; leave apiType out or set it to %s", p.BackendType, p.APIType, p.APIType)
	}
	return *given, nil
}

func (p Provider) fixedProtocol() bool {
	switch p.BackendType {
	case BackendOpenAI, BackendAnthropic, BackendOpenAICompatible, BackendAnthropicCompatible:
		return true
	}
	return false
}

// baseURLFor returns the base URL of a credential of p: given (validated),
// or, when given is nil or blank, p's default, which the *_COMPATIBLE
// types do not have. The default is stored in the row, so a credential
// keeps its URL if a later version changes the catalogue.
func (p Provider) baseURLFor(given *string) (*string, error) {
	if given == nil || strings.TrimSpace(*given) == "" {
		if p.DefaultBaseURL == nil {
			return nil, apperr.Invalidf(fieldBaseURL, "baseUrl is required for %s: give the server's URL", p.BackendType)
		}
		return p.DefaultBaseURL, nil
	}
	u, err := validBaseURL(*given)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// validBaseURL trims surrounding white space and checks the rest: an
// absolute http or https URL with a host, at most 2048 characters, without
// user name, password, fragment or white space. A path and a query are
// kept: GET {baseUrl}/v1/models appends to the path.
func validBaseURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxBaseURLLen {
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl must be at most %d characters", maxBaseURLLen)
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl must not contain spaces or control characters")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https", u.Opaque != "", u.Hostname() == "":
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl must be an absolute http:// or https:// URL, such as https://api.example.com")
	case u.User != nil:
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl must not contain a user name or password; the API key is sent in a header")
	case !validPort(u.Port()):
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl has an invalid port")
	case strings.Contains(s, "#"):
		return "", apperr.Invalidf(fieldBaseURL, "baseUrl must not contain a fragment (#…)")
	}
	return s, nil
}

// validPort accepts no port or a port from 1 to 65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// EffectiveBaseURL is the URL a connection test calls: the stored base URL,
// or the backend type's default for a row stored without one.
func (c *CloudCredential) EffectiveBaseURL() string {
	if c.BaseURL != nil {
		return *c.BaseURL
	}
	if p, ok := ProviderOf(c.BackendType); ok && p.DefaultBaseURL != nil {
		return *p.DefaultBaseURL
	}
	return ""
}
