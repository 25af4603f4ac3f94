// Package resolvers connects the GraphQL schema to the domain: each resolver
// decodes its arguments, takes the caller from caller(ctx), calls models,
// auth or probe, and returns what they return. Rules (who may do what) live
// in the domain; errors are translated in one place, the server's error
// presenter. Files follow schema/: auth.graphql ↔ auth.resolvers.go, and so
// on.
package resolvers

import (
	"context"
	"time"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/auth"
	"cloudkeys/models"
	"cloudkeys/probe"
)

// Resolver holds what the resolvers need.
type Resolver struct {
	DB   *gorm.DB
	Auth *auth.Service
	// Probe runs testCloudCredential's calls to providers.
	Probe *probe.Client
	// Audit records the credential and relay-key events (SPEC §9), each
	// in the transaction of its change.
	Audit *audit.Log
	// MaxCredentials is how many cloud credentials one account may store.
	MaxCredentials int
	// MaxRelayKeys is how many live relay keys one credential may have.
	MaxRelayKeys int
	// Now is the clock of relay keys and usage days; nil: the system clock.
	Now func() time.Time
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC().Truncate(time.Microsecond)
	}
	return models.Now()
}

// daysOr30 is usageByDay's days argument with its default.
func daysOr30(days *int) int {
	if days == nil {
		return 30
	}
	return *days
}

// caller is the one way a resolver learns who acts: the signed-in caller of
// an @auth field. It fails closed with UNAUTHENTICATED should a field ever
// lose its @auth, rather than run for a nil user.
func caller(ctx context.Context) (auth.Caller, error) { return auth.CallerFrom(ctx) }

func ptr[T any](v T) *T { return &v }

// ptrs returns pointers to the elements of s, for list fields of models.
func ptrs[T any](s []T) []*T {
	out := make([]*T, len(s))
	for i := range s {
		out[i] = &s[i]
	}
	return out
}
