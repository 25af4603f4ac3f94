package auth

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"cloudkeys/models"
)

// Directive implements @auth(requires: Role): the field resolves only for
// an authenticated caller holding the role; otherwise it is null with
// UNAUTHENTICATED, ACCOUNT_DISABLED/ACCOUNT_PENDING or FORBIDDEN.
func (s *Service) Directive(ctx context.Context, _ any, next graphql.Resolver, requires *models.Role) (any, error) {
	user, err := s.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if requires != nil && *requires == models.RoleAdmin {
		if err := requireAdmin(user); err != nil {
			return nil, err
		}
	}
	return next(ctx)
}
