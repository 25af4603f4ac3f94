package probe

import (
	"context"
	"fmt"

	"cloudkeys/models"
)

// ProtocolOf maps a credential's API type to the protocol its key is sent
// with. The mapping is explicit so that a new API type cannot silently be
// called with the wrong headers.
func ProtocolOf(t models.APIType) (Protocol, error) {
	switch t {
	case models.APIOpenAI:
		return OpenAI, nil
	case models.APIAnthropic:
		return Anthropic, nil
	}
	return 0, fmt.Errorf("probe: no protocol for API type %q", t)
}

// TestCredential tests c's stored key against its provider (Test). A key
// that cannot be opened is not sent anywhere: the result says it was not
// tested, and why. The caller has established that c is theirs.
func (c *Client) TestCredential(ctx context.Context, cred *models.CloudCredential) (*Result, error) {
	if msg := cred.KeyStatusMessage(); msg != nil {
		// Not an error: the test ran and found the key unusable.
		return &Result{Message: "Not tested: " + *msg}, nil
	}
	proto, err := ProtocolOf(cred.APIType)
	if err != nil {
		return nil, err
	}
	res := c.Test(ctx, proto, cred.EffectiveBaseURL(), cred.APIKey)
	return &res, nil
}
