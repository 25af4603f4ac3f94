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
	"cloudkeys/gqlhttp"
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
			if e.Reason != "" {
				ext["reason"] = string(e.Reason)
			}
			if e.Code == apperr.RateLimited {
				ext["retryAfter"] = e.RetryAfterSeconds()
			}
			gqlErr.Extensions = ext
			return gqlErr
		}
		if _, ok := gqlErr.Extensions["code"]; ok {
			if named := gqlhttp.NameTokenLimit(gqlErr); named != nil {
				return named
			}
			return gqlErr // gqlgen's own (parse, validation, complexity, APQ) and gqlhttp's
		}
		if gqlErr.Unwrap() == nil && gqlErr.Path == nil {
			// A request-level error gqlgen raised without a code (for
			// instance a variable that does not coerce): the caller's fault.
			gqlErr.Extensions = map[string]any{"code": string(apperr.BadRequest)}
			return gqlErr
		}
		if errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The request's own deadline (CLOUDKEYS_REQUEST_TIMEOUT) passed
			// while this field worked; a deadline of something else is an
			// internal error like any other.
			log.WarnContext(ctx, "field timed out", "path", gqlErr.Path.String())
			e := gqlhttp.RequestError(apperr.Timeout, gqlhttp.TimeoutMessage)
			e.Path, e.Locations = gqlErr.Path, gqlErr.Locations
			return e
		}
		log.ErrorContext(ctx, "internal error", "path", gqlErr.Path.String(), "error", err.Error())
		return &gqlerror.Error{Message: "internal server error", Path: gqlErr.Path,
			Locations: gqlErr.Locations, Extensions: map[string]any{"code": string(apperr.Internal)}}
	}
}

// recoverPanic turns a resolver panic into an internal error, logging the
// panic and its stack.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic in resolver")
	}
}
