package relay

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"cloudkeys/apperr"
	"cloudkeys/models"
)

// providerError is how a refusal of the relay's own reads in each
// provider's error shape, so that an SDK raises its usual exception (an
// AuthenticationError for 401, a RateLimitError for 429, …): the OpenAI
// error type and code, and the Anthropic error type.
type providerError struct {
	openAIType, openAICode string
	anthropicType          string
}

// errorShapes maps the relay's codes to the providers' error types. The
// HTTP status is apperr.HTTPStatus(code), the one table.
var errorShapes = map[apperr.Code]providerError{
	apperr.Unauthenticated: {"invalid_request_error", "invalid_api_key", "authentication_error"},
	apperr.AccountDisabled: {"invalid_request_error", "account_disabled", "permission_error"},
	apperr.AccountPending:  {"invalid_request_error", "account_pending", "permission_error"},
	apperr.Forbidden:       {"invalid_request_error", "model_not_allowed", "permission_error"},
	apperr.NotFound:        {"invalid_request_error", "not_found", "not_found_error"},
	apperr.Conflict:        {"invalid_request_error", "key_needs_reentry", "invalid_request_error"},
	apperr.BodyLimit:       {"invalid_request_error", "request_too_large", "request_too_large"},
	apperr.BadRequest:      {"invalid_request_error", "invalid_request", "invalid_request_error"},
	apperr.Invalid:         {"invalid_request_error", "invalid_request", "invalid_request_error"},
	apperr.RateLimited:     {"requests", "rate_limit_exceeded", "rate_limit_error"},
	apperr.BadGateway:      {"api_error", "bad_gateway", "api_error"},
	apperr.GatewayTimeout:  {"api_error", "gateway_timeout", "api_error"},
	apperr.Internal:        {"api_error", "internal_error", "api_error"},
}

// WriteError writes e in the error shape of api — OpenAI
// {"error":{"message","type","code"}}, Anthropic
// {"type":"error","error":{"type","message"}} — with the status of its code,
// and Retry-After (whole seconds) for RATE_LIMITED. e.Message must be fixed
// text: nothing from the provider, the key or the request. A code without
// a shape of its own is an invalid_request_error; an empty message is the
// status text.
func WriteError(w http.ResponseWriter, api models.APIType, e *apperr.Error) {
	shape, ok := errorShapes[e.Code]
	if !ok {
		shape = providerError{"invalid_request_error", strings.ToLower(string(e.Code)), "invalid_request_error"}
	}
	status := apperr.HTTPStatus(e.Code)
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	var body any
	if api == models.APIAnthropic {
		body = map[string]any{"type": "error", "error": map[string]string{"type": shape.anthropicType, "message": msg}}
	} else {
		body = map[string]any{"error": map[string]any{"message": msg, "type": shape.openAIType, "code": shape.openAICode, "param": nil}}
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Code == apperr.RateLimited {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds()))
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// APITypeOf guesses the error shape a request expects before its credential
// is known (a missing or unknown key): Anthropic's when it sends
// anthropic-version or x-api-key or calls messages, OpenAI's otherwise.
func APITypeOf(r *http.Request) models.APIType {
	p := strings.TrimRight(r.URL.Path, "/")
	if r.Header.Get("anthropic-version") != "" || r.Header.Get("x-api-key") != "" ||
		strings.HasSuffix(p, "/messages") || strings.HasSuffix(p, "/messages/count_tokens") {
		return models.APIAnthropic
	}
	return models.APIOpenAI
}
