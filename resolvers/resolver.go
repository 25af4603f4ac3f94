// Package resolvers connects the GraphQL schema to the domain: each resolver
// decodes its arguments, takes the caller from caller(ctx), calls models,
// auth or probe, and returns what they return. Rules (who may do what) live
// in the domain; errors are translated in one place, the server's error
// presenter. Files follow schema/: auth.graphql ↔ auth.resolvers.go, and so
// on.
package resolvers

import (
	"context"

	"gorm.io/gorm"

	"cloudkeys/auth"
	"cloudkeys/probe"
)

// Resolver holds what the resolvers need.
type Resolver struct {
	DB   *gorm.DB
	Auth *auth.Service
	// Probe runs testCloudCredential's calls to providers.
	Probe *probe.Client
	// MaxCredentials is how many cloud credentials one account may store.
	MaxCredentials int
}

// caller is the one way a resolver learns who acts: the signed-in caller of
// an @auth field. It fails closed with UNAUTHENTICATED should a field ever
// lose its @auth, rather than run for a nil user.
func caller(ctx context.Context) (auth.Caller, error) { return auth.CallerFrom(ctx) }

func ptr[T any](v T) *T { return &v }
