package gqlhttp

// The GraphQL-over-HTTP transport. It replaces gqlgen's stock
// transports, whose gaps SPEC §5 lists, and follows the GraphQL over HTTP
// specification (graphql.github.io/graphql-over-http/draft, "the spec"
// below; sections are cited by title). README.md's "GraphQL over HTTP"
// section records each choice the spec leaves open.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"cloudkeys/apperr"
)

// The response media types (spec § Media Types).
const (
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaJSON            = "application/json"
)

// allowedMethods is the Allow header of /graphql.
const allowedMethods = "GET, HEAD, POST, OPTIONS"

// transport is the only transport of the GraphQL handler: it answers every
// request that reaches /graphql, so no request falls through to a gqlgen
// default.
//
//   - POST with Content-Type: application/json (UTF-8) runs queries and
//     mutations. Any other body type is refused with 415 before the body is
//     read: there is no form, multipart, text/plain or application/graphql
//     transport, so a cross-site HTML form or a CORS "simple request" can
//     never execute an operation (CSRF).
//   - GET (and HEAD, which is GET without the body) runs queries only: the
//     operation type is checked after parsing and before anything executes,
//     and a mutation is answered 405 with Allow: POST. A GET therefore never
//     changes anything, whoever sends it.
//   - OPTIONS answers 204 with Allow (a CORS preflight is answered by the
//     CORS middleware in front, when origins are configured).
//   - Any other method: 405 with Allow.
//
// Execution goes through gqlgen's executor (CreateOperationContext,
// DispatchOperation), so extensions, caches and the error presenter apply.
type transport struct {
	maxBody    int64         // bytes of a POST body; 0: unlimited
	timeout    time.Duration // per request; 0: none
	tokenLimit int           // the executor's parser token limit, to re-parse a refused GET
	onResult   func(code string)
}

var _ graphql.Transport = transport{}

func (transport) Supports(*http.Request) bool { return true }

func (t transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	case http.MethodOptions:
		w.Header().Set("Allow", allowedMethods)
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", allowedMethods)
		t.writeRequestError(w, r, exec, mediaJSON, apperr.MethodNotAllowed, "/graphql accepts GET (queries only) and POST")
		return
	}

	// Spec § Body: respect Accept, or answer 406 and stop.
	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		t.writeRequestError(w, r, exec, mediaJSON, apperr.NotAcceptable,
			"Accept must allow application/graphql-response+json or application/json")
		return
	}

	var params *graphql.RawParams
	var bad *badRequest
	start := graphql.Now()
	if r.Method == http.MethodPost {
		params, bad = t.readPOST(w, r)
	} else {
		params, bad = readGET(r)
	}
	if bad != nil {
		t.writeRequestError(w, r, exec, media, bad.code, bad.message)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := r.Context()
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}

	opCtx, errs := exec.CreateOperationContext(ctx, params)
	safe := r.Method != http.MethodPost
	if errs != nil {
		// Spec § GET: a mutation over GET is 405 even when the document
		// also fails validation, so look for it before reporting errors.
		if safe && t.operationType(opCtx, params) == ast.Mutation {
			t.refuseMutationOverGET(w, r, exec, media)
			return
		}
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		t.respond(w, media, requestErrorStatus(media, resp), resp)
		return
	}
	if safe && opCtx.Operation.Operation != ast.Query {
		t.refuseMutationOverGET(w, r, exec, media)
		return
	}

	handler, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := handler(ctx)
	if resp == nil {
		// The executor answers nothing when the context ended before
		// execution started: the deadline passed during parsing and
		// validation.
		resp = exec.DispatchError(ctx, gqlerror.List{timeoutError()})
	}
	status := http.StatusOK
	if resp.Data == nil {
		status = requestErrorStatus(media, resp)
	}
	t.respond(w, media, status, resp)
}

// badRequest is a request refused before GraphQL sees it; its status is
// the code's (apperr.HTTPStatus).
type badRequest struct {
	code    apperr.Code
	message string
}

func malformed(format string, args ...any) *badRequest {
	return &badRequest{apperr.BadRequest, fmt.Sprintf(format, args...)}
}

// readPOST reads a JSON POST body (spec § POST, § JSON Encoding).
func (t transport) readPOST(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *badRequest) {
	if bad := checkContentType(r.Header.Get("Content-Type")); bad != nil {
		return nil, bad
	}
	tooLarge := &badRequest{apperr.BodyLimit, fmt.Sprintf("the request body is larger than the server's limit of %d bytes", t.maxBody)}
	if t.maxBody > 0 && r.ContentLength > t.maxBody {
		return nil, tooLarge
	}
	body := r.Body
	if t.maxBody > 0 {
		body = http.MaxBytesReader(w, r.Body, t.maxBody)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, malformed("could not read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, malformed("the request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("the request body has more after its JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("the request body must be a JSON object with a query")
	}
	return paramsFrom(m)
}

// checkContentType accepts application/json in UTF-8 (spec § POST: a
// server MUST support it, and assumes UTF-8 when no charset is given) and
// refuses everything else with 415.
func checkContentType(ct string) *badRequest {
	refuse := func(msg string) *badRequest {
		return &badRequest{apperr.UnsupportedMediaType, msg}
	}
	if ct == "" {
		return refuse("a POST needs Content-Type: application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return refuse("the Content-Type header does not parse; send application/json")
	}
	switch mt {
	case mediaJSON:
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return refuse("the request body must be UTF-8")
		}
		return nil
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		// The content types an HTML form or a CORS "simple request" can
		// send cross-site without a preflight (spec § Security).
		return refuse(mt + " is refused: GraphQL requests must be sent as application/json")
	default:
		return refuse(mt + " is not supported: send application/json")
	}
}

// readGET reads the parameters from the query string (spec § GET).
func readGET(r *http.Request) (*graphql.RawParams, *badRequest) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, malformed("the query string does not parse")
	}
	m := map[string]any{}
	for _, name := range []string{"query", "operationName", "variables", "extensions"} {
		vs, ok := q[name]
		if !ok {
			continue
		}
		if len(vs) > 1 {
			return nil, malformed("%s is given more than once", name)
		}
		switch name {
		case "query", "operationName":
			m[name] = vs[0]
		default:
			// variables and extensions are JSON-encoded strings.
			if vs[0] == "" {
				continue
			}
			dec := json.NewDecoder(strings.NewReader(vs[0]))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, malformed("%s is not valid JSON", name)
			}
			if _, err := dec.Token(); err != io.EOF {
				return nil, malformed("%s has more after its JSON value", name)
			}
			m[name] = v
		}
	}
	return paramsFrom(m)
}

// paramsFrom checks the parameters' types (spec § Request Parameters): a
// request with a parameter of the wrong type, or without a query, is not a
// well-formed GraphQL-over-HTTP request. null is the same as absent. The
// query may be absent only when an APQ hash stands for it.
func paramsFrom(m map[string]any) (*graphql.RawParams, *badRequest) {
	p := &graphql.RawParams{}
	switch v := m["query"].(type) {
	case string:
		p.Query = v
	case nil:
	default:
		return nil, malformed("query must be a string")
	}
	switch v := m["operationName"].(type) {
	case string:
		p.OperationName = v
	case nil:
	default:
		return nil, malformed("operationName must be a string")
	}
	switch v := m["variables"].(type) {
	case map[string]any:
		p.Variables = v
	case nil:
	default:
		return nil, malformed("variables must be a JSON object")
	}
	switch v := m["extensions"].(type) {
	case map[string]any:
		p.Extensions = v
	case nil:
	default:
		return nil, malformed("extensions must be a JSON object")
	}
	if _, ok := m["query"].(string); !ok && p.Extensions["persistedQuery"] == nil {
		return nil, malformed("the request has no query")
	}
	return p, nil
}

// operationType returns the type of the operation a request selects, or ""
// when its document does not parse or names no single operation. The
// executor keeps no document that failed validation, so that one is
// parsed again (with the same token limit).
func (t transport) operationType(opCtx *graphql.OperationContext, params *graphql.RawParams) ast.Operation {
	var doc *ast.QueryDocument
	if opCtx != nil {
		doc = opCtx.Doc
	}
	if doc == nil {
		var err error
		doc, err = parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, t.tokenLimit)
		if err != nil {
			return ""
		}
	}
	if op := doc.Operations.ForName(params.OperationName); op != nil {
		return op.Operation
	}
	return ""
}

// refuseMutationOverGET answers 405 without executing anything (spec § GET:
// the server MUST respond 405 and halt execution).
func (t transport) refuseMutationOverGET(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, media string) {
	w.Header().Set("Allow", http.MethodPost)
	t.writeRequestError(w, r, exec, media, apperr.MethodNotAllowed,
		"a mutation must be sent with POST: GET requests only run queries")
}

// requestErrorStatus is the status of a response with no data: a request
// error (spec § Status Codes). Under application/json it is 200 for every
// well-formed request (§ application/json: SHOULD); under
// application/graphql-response+json a response without data MUST be 4xx
// or 5xx (§ application/graphql-response+json): the status of its codes
// (apperr.HTTPStatus: 400 for the client's errors, 503 when the request ran
// out of time), and 500 as soon as one of them is the server's failure.
func requestErrorStatus(media string, resp *graphql.Response) int {
	if media == mediaJSON {
		return http.StatusOK
	}
	status := http.StatusBadRequest
	for _, e := range resp.Errors {
		s := apperr.HTTPStatus(CodeOf(e))
		if s == http.StatusInternalServerError {
			return s
		}
		status = max(status, s)
	}
	return status
}

// RequestError returns a GraphQL error with extensions.code, as every
// refusal of this package is written.
func RequestError(code apperr.Code, msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(code)}}
}

// CodeOf returns the extensions.code of e ("" when it has none).
func CodeOf(e *gqlerror.Error) apperr.Code {
	code, _ := e.Extensions["code"].(string)
	return apperr.Code(code)
}

// TimeoutMessage is the message of every TIMEOUT error.
const TimeoutMessage = "the request took longer than the server's time limit and was stopped"

// timeoutError is the request error of a request whose deadline passed
// before execution started.
func timeoutError() *gqlerror.Error { return RequestError(apperr.Timeout, TimeoutMessage) }

// writeRequestError answers a request refused by the transport: a GraphQL
// response with one error and no data, through the error presenter, with
// the status of its code.
func (t transport) writeRequestError(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, media string, code apperr.Code, msg string) {
	resp := exec.DispatchError(r.Context(), gqlerror.List{RequestError(code, msg)})
	t.respond(w, media, apperr.HTTPStatus(code), resp)
}

// respond tells Options.OnResult the response's outcome, then writes it.
// Every GraphQL response of the endpoint goes through here.
func (t transport) respond(w http.ResponseWriter, media string, status int, resp *graphql.Response) {
	if t.onResult != nil {
		t.onResult(ResultCode(resp))
	}
	writeResponse(w, media, status, resp)
}

// ResultCode is the outcome of a response: the extensions.code of its
// first error, or "OK" when it has none.
func ResultCode(resp *graphql.Response) string {
	if len(resp.Errors) == 0 {
		return "OK"
	}
	if code := CodeOf(resp.Errors[0]); code != "" {
		return string(code)
	}
	return "UNKNOWN"
}

// writeResponse writes resp as media (spec § Body: Content-Type with its
// charset).
func writeResponse(w http.ResponseWriter, media string, status int, resp *graphql.Response) {
	body, err := encodeResponse(resp)
	if err != nil {
		// Only an error or extension value that does not marshal fails here.
		status = http.StatusInternalServerError
		body = []byte(`{"errors":[{"message":"internal server error","extensions":{"code":"` + string(apperr.Internal) + `"}}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", media+"; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// encodeResponse writes a GraphQL response: errors, data, extensions, each
// only when present. Unlike graphql.Response it omits data when there is
// none: a request error has no data entry (GraphQL spec § Response Format;
// "data": null would claim execution started).
//
// data is the executor's JSON, written by gqlgen's marshalers, and is
// copied as it is. Passing it through encoding/json (as a json.RawMessage)
// would only check, compact and HTML-escape it a second time, which cost 7 %
// of the CPU of a 20-row cloudCredentials listing (BENCHMARKS.md). The
// only difference on the wire is that <, > and & inside strings are no
// longer written as \u003c, \u003e and \u0026 (in errors and extensions
// neither, for one rule): the same JSON text.
func encodeResponse(resp *graphql.Response) ([]byte, error) {
	var errs, ext []byte
	var err error
	if len(resp.Errors) > 0 {
		if errs, err = marshalJSON(resp.Errors); err != nil {
			return nil, err
		}
	}
	if len(resp.Extensions) > 0 {
		if ext, err = marshalJSON(resp.Extensions); err != nil {
			return nil, err
		}
	}
	body := make([]byte, 0, len(errs)+len(resp.Data)+len(ext)+len(`{"errors":,"data":,"extensions":}`))
	body = append(body, '{')
	for _, m := range [...]struct {
		name  string
		value []byte
	}{{`"errors":`, errs}, {`"data":`, resp.Data}, {`"extensions":`, ext}} {
		if len(m.value) == 0 {
			continue
		}
		if len(body) > 1 {
			body = append(body, ',')
		}
		body = append(body, m.name...)
		body = append(body, m.value...)
	}
	return append(body, '}'), nil
}

// marshalJSON is json.Marshal without HTML escaping.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
