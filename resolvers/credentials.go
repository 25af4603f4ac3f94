package resolvers

import "cloudkeys/models"

// providers is models.Providers as the resolver returns it, built once.
var providers = ptrs(models.Providers)
