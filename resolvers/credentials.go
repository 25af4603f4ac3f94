package resolvers

import (
	"fmt"

	"cloudkeys/models"
	"cloudkeys/probe"
)

// protocolOf maps a credential's API type to the probe's protocol. The
// mapping is explicit so that a new API type cannot silently be tested
// with the wrong headers.
func protocolOf(t models.APIType) (probe.Protocol, error) {
	switch t {
	case models.APIOpenAI:
		return probe.OpenAI, nil
	case models.APIAnthropic:
		return probe.Anthropic, nil
	}
	return 0, fmt.Errorf("resolvers: no probe protocol for API type %q", t)
}

// providers is models.Providers as the resolver returns it, built once.
var providers = func() []*models.Provider {
	out := make([]*models.Provider, len(models.Providers))
	for i := range models.Providers {
		out[i] = &models.Providers[i]
	}
	return out
}()
