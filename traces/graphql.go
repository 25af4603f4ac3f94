package traces

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// graphQLTracer is a gqlgen handler extension: one span per executed
// operation, child of the HTTP request's span and parent of the database
// statements its resolvers run.
//
// It is cloudkeys' own rather than github.com/ravilushqa/otelgqlgen (the
// maintained gqlgen tracer, v0.19.0 on the module proxy) because that one
// always records the document text (gql.request.query), and by default
// every variable and every field's arguments: a login with its password
// written inline in the document — as in the README's curl example — or in
// a variable would be exported. None of that can be switched off for the
// document. So this span holds only:
//
//   - graphql.operation.type and graphql.operation.name (the name the
//     client gave, clipped to 100 bytes);
//   - cloudkeys.graphql.code: the extensions.code of the first error, or
//     OK — never an error's message, which can quote an argument's value;
//   - cloudkeys.graphql.complexity, when the complexity limit is on.
//
// It makes no span per field: resolvers that do work (the database, a
// provider) have spans of their own, and a span per field of a 20-row
// listing would cost more than the listing.
type graphQLTracer struct{ tracer trace.Tracer }

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = graphQLTracer{}

func (graphQLTracer) ExtensionName() string { return "cloudkeys:tracing" }

func (graphQLTracer) Validate(graphql.ExecutableSchema) error { return nil }

// maxNameLen bounds the operation name recorded.
const maxNameLen = 100

func (g graphQLTracer) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	op := graphql.GetOperationContext(ctx)
	kind, name := "query", op.OperationName
	if op.Operation != nil {
		kind = string(op.Operation.Operation)
		if name == "" {
			name = op.Operation.Name
		}
	}
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	spanName := "graphql " + kind
	if name != "" {
		spanName += " " + name
	}
	ctx, span := g.tracer.Start(ctx, spanName, trace.WithAttributes(
		attribute.String("graphql.operation.type", kind), attribute.String("graphql.operation.name", name)))
	defer span.End()
	if stats, ok := op.Stats.GetExtension("ComplexityLimit").(*extension.ComplexityStats); ok && stats != nil {
		span.SetAttributes(attribute.Int("cloudkeys.graphql.complexity", stats.Complexity))
	}

	resp := next(ctx)
	code := "OK"
	if resp == nil {
		code = "TIMEOUT" // the executor answers nothing when the deadline passed first
	} else if len(resp.Errors) > 0 {
		code, _ = resp.Errors[0].Extensions["code"].(string)
		if code == "" {
			code = "UNKNOWN"
		}
	}
	span.SetAttributes(attribute.String("cloudkeys.graphql.code", code))
	if code != "OK" {
		span.SetStatus(codes.Error, code)
	}
	return resp
}
