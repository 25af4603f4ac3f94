package keyring_test

import (
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"cloudkeys/keyring"
)

// decryptStored is the whole escape hatch of README "Encryption at rest":
// given the key file (a JWK Set) and a value of the api_key_jwe column,
// plain jwx — no cloudkeys code — returns the API key. jwx picks the key by
// the value's kid. (It does not check the "cid" binding; cloudkeys does.)
func decryptStored(keyFile []byte, apiKeyJWE string) (string, error) {
	set, err := jwk.Parse(keyFile)
	if err != nil {
		return "", err
	}
	plaintext, err := jwe.Decrypt([]byte(apiKeyJWE), jwe.WithKeySet(set, jwe.WithRequireKid(true)))
	if err != nil {
		return "", err
	}
	return string(plaintext), nil
}

func Example_decryptWithPlainJWX() {
	// What an operator leaving cloudkeys has: the key file and the column.
	keys, _ := keyring.New()
	rotated, _ := keys.Rotate() // values sealed with an older key open too
	keyFile, _ := rotated.JSON()
	stored, _, _ := keys.Seal([]byte("sk-example-0123456789"), "0b9b6c5e-6f2a-4c1e-9d8e-2f1a3b4c5d6e")

	apiKey, err := decryptStored(keyFile, stored)
	fmt.Println(apiKey, err)
	// Output: sk-example-0123456789 <nil>
}
