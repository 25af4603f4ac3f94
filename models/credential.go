package models

import "time"

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

// APIKeyHint shows enough of the key to recognise it: the first 3 and last 4
// characters, or only the last 4 for keys shorter than 16 characters; empty
// when the key could not be opened.
func (c *CloudCredential) APIKeyHint() string {
	if c.keyProblem != "" {
		return ""
	}
	r := []rune(c.APIKey)
	switch {
	case len(r) == 0:
		return ""
	case len(r) < 16:
		if len(r) <= 4 {
			return "…" + string(r)
		}
		return "…" + string(r[len(r)-4:])
	default:
		return string(r[:3]) + "…" + string(r[len(r)-4:])
	}
}
