package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cloudkeys/apperr"
)

// presentError is the one place where errors become GraphQL errors. A
// domain error (*apperr.Error) shows its message and code (with
// extensions.field and extensions.retryAfter where they apply); gqlgen's own
// request errors keep their codes; anything else is an internal error: it
// is logged with the request ID and shown only as INTERNAL_SERVER_ERROR.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		if e := apperr.As(err); e != nil {
			gqlErr.Message = e.Message
			ext := map[string]any{"code": string(e.Code)}
			if e.Field != "" {
				ext["field"] = e.Field
			}
			if e.Code == apperr.RateLimited {
				ext["retryAfter"] = retryAfterSeconds(e)
			}
			gqlErr.Extensions = ext
			return gqlErr
		}
		if _, ok := gqlErr.Extensions["code"]; ok {
			return gqlErr // gqlgen's own: parse, validation, complexity, APQ
		}
		if gqlErr.Unwrap() == nil && gqlErr.Path == nil {
			// A request-level error gqlgen raised without a code (for
			// instance a variable that does not coerce): the caller's fault.
			gqlErr.Extensions = map[string]any{"code": "BAD_REQUEST"}
			return gqlErr
		}
		if errors.Is(err, context.DeadlineExceeded) {
			log.WarnContext(ctx, "field timed out", "path", gqlErr.Path.String())
			return &gqlerror.Error{Message: "the request took too long and was stopped", Path: gqlErr.Path,
				Locations: gqlErr.Locations, Extensions: map[string]any{"code": string(apperr.Internal)}}
		}
		log.ErrorContext(ctx, "internal error", "path", gqlErr.Path.String(), "error", err.Error())
		return &gqlerror.Error{Message: "internal server error", Path: gqlErr.Path,
			Locations: gqlErr.Locations, Extensions: map[string]any{"code": string(apperr.Internal)}}
	}
}

// retryAfterSeconds rounds up to whole seconds, at least 1.
func retryAfterSeconds(e *apperr.Error) int {
	s := int((e.RetryAfter + 999_999_999) / 1_000_000_000)
	if s < 1 {
		s = 1
	}
	return s
}

// recoverPanic turns a resolver panic into an internal error, logging the
// panic and its stack.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic in resolver")
	}
}
