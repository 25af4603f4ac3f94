package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cloudkeys/apperr"
)

// The codes the HTTP layer adds to SPEC §5's list (README.md, "GraphQL over
// HTTP": its status codes and limits). Each limit has its own, so a client
// can tell which one it hit.
const (
	codeBadRequest           = "BAD_REQUEST"               // not a well-formed GraphQL-over-HTTP request (400)
	codeMethodNotAllowed     = "METHOD_NOT_ALLOWED"        // 405, with an Allow header
	codeNotAcceptable        = "NOT_ACCEPTABLE"            // 406: Accept names no type we write
	codeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"    // 415: the body is not application/json
	codeBodyLimit            = "BODY_LIMIT_EXCEEDED"       // 413: CLOUDKEYS_MAX_BODY_BYTES
	codeTokenLimit           = "TOKEN_LIMIT_EXCEEDED"      // CLOUDKEYS_MAX_TOKENS
	codeDepthLimit           = "DEPTH_LIMIT_EXCEEDED"      // CLOUDKEYS_MAX_DEPTH
	codeAliasLimit           = "ALIAS_LIMIT_EXCEEDED"      // CLOUDKEYS_MAX_ALIASES
	codeTimeout              = "TIMEOUT"                   // CLOUDKEYS_REQUEST_TIMEOUT
	codeComplexityLimit      = "COMPLEXITY_LIMIT_EXCEEDED" // CLOUDKEYS_MAX_COMPLEXITY (gqlgen's code)
	codeValidationFailed     = "GRAPHQL_VALIDATION_FAILED"
	codeParseFailed          = "GRAPHQL_PARSE_FAILED"
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
		if code, ok := gqlErr.Extensions["code"]; ok {
			if code == codeParseFailed && strings.HasPrefix(gqlErr.Message, tokenLimitPrefix) {
				// gqlparser says only "exceeded token limit of N", under the
				// generic parse code; name the limit.
				return &gqlerror.Error{Message: fmt.Sprintf("the document is too long: it has more than %s tokens, the server's limit",
					strings.TrimPrefix(gqlErr.Message, tokenLimitPrefix)), Extensions: map[string]any{"code": codeTokenLimit}}
			}
			return gqlErr // gqlgen's own (parse, validation, complexity, APQ) and the HTTP layer's
		}
		if gqlErr.Unwrap() == nil && gqlErr.Path == nil {
			// A request-level error gqlgen raised without a code (for
			// instance a variable that does not coerce): the caller's fault.
			gqlErr.Extensions = map[string]any{"code": codeBadRequest}
			return gqlErr
		}
		if errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The request's own deadline (CLOUDKEYS_REQUEST_TIMEOUT) passed
			// while this field worked; a deadline of something else is an
			// internal error like any other.
			log.WarnContext(ctx, "field timed out", "path", gqlErr.Path.String())
			return &gqlerror.Error{Message: timeoutMessage, Path: gqlErr.Path,
				Locations: gqlErr.Locations, Extensions: map[string]any{"code": codeTimeout}}
		}
		log.ErrorContext(ctx, "internal error", "path", gqlErr.Path.String(), "error", err.Error())
		return &gqlerror.Error{Message: "internal server error", Path: gqlErr.Path,
			Locations: gqlErr.Locations, Extensions: map[string]any{"code": string(apperr.Internal)}}
	}
}

// tokenLimitPrefix starts gqlparser's message for a document over the token
// limit (parser.ParseQueryWithTokenLimit); a test pins it.
const tokenLimitPrefix = "exceeded token limit of "

// timeoutMessage is the message of every TIMEOUT error.
const timeoutMessage = "the request took longer than the server's time limit and was stopped"

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
