package auth

import (
	"context"
	"testing"

	"cloudkeys/apperr"
)

// A field that lost its @auth gets UNAUTHENTICATED from CallerFrom, never a
// nil user: outside a request, and in a request whose check never ran or
// failed.
func TestCallerFromFailsClosed(t *testing.T) {
	for name, ctx := range map[string]context.Context{
		"no request":      context.Background(),
		"check never ran": context.WithValue(context.Background(), callerKey{}, &caller{token: "x"}),
		"check failed":    context.WithValue(context.Background(), callerKey{}, &caller{token: "x", resolved: true, err: errInvalidToken}),
	} {
		c, err := CallerFrom(ctx)
		if apperr.CodeOf(err) != apperr.Unauthenticated || c.User != nil {
			t.Errorf("%s: caller %+v, error %v", name, c, err)
		}
	}
}
