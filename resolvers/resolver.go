// Package resolvers connects the GraphQL schema to the domain: each resolver
// decodes its arguments, calls models or auth, and returns what they return.
// Rules live in models and auth; errors are translated in one place, the
// server's error presenter. Files follow schema/: auth.graphql ↔
// auth.resolvers.go, and so on.
package resolvers

import (
	"log/slog"

	"gorm.io/gorm"

	"cloudkeys/auth"
	"cloudkeys/probe"
)

// Resolver holds what the resolvers need.
type Resolver struct {
	DB   *gorm.DB
	Auth *auth.Service
	Log  *slog.Logger
	// Probe runs testCloudCredential's calls to providers.
	Probe *probe.Client
	// MaxCredentials is how many cloud credentials one account may store.
	MaxCredentials int
}

func ptr[T any](v T) *T { return &v }
