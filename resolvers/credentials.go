package resolvers

import "cloudkeys/models"

// providers is models.Providers as the resolver returns it, built once.
var providers = func() []*models.Provider {
	out := make([]*models.Provider, len(models.Providers))
	for i := range models.Providers {
		out[i] = &models.Providers[i]
	}
	return out
}()
