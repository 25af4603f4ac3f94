// Package traces is cloudkeys' OpenTelemetry tracing (SPEC §10): when the
// standard OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set, spans
// of the HTTP requests, the GraphQL operations, the database statements and
// the relay's calls to providers go to that collector over OTLP/HTTP; when
// it is not, New returns nil and nothing is built: no provider, no
// exporter, no goroutine, no middleware.
//
// It uses the maintained instrumentation where there is one — otelhttp for
// the server and the relay's upstream transport, gorm.io/plugin/opentelemetry
// for the database — and its own gqlgen extension (graphql.go says why).
// What a span may hold is decided here, once, for every one of them
// (docs/observability.md): no header, no query string, no GraphQL document
// or variable, no SQL parameter, no error message of GraphQL; the exporter
// strips the query of every URL a span still carries (redact.go).
//
// Every Tracing has its own TracerProvider; nothing here sets OTel's
// globals, so two cloudkeys in one process (tests) do not mix their spans.
//
// What may import it: app (which builds it and wires it), server (the HTTP
// middleware and the GraphQL extension). It imports nothing of cloudkeys.
package traces

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"gorm.io/gorm"
	gormtracing "gorm.io/plugin/opentelemetry/tracing"
)

// instrumentation names cloudkeys' own tracer (the GraphQL extension).
const instrumentation = "cloudkeys/traces"

// Options say where spans go and what the service is.
type Options struct {
	// Endpoint is the OTLP/HTTP URL spans are POSTed to (…/v1/traces);
	// "" turns tracing off. config derives it from the standard
	// variables; the exporter reads the others (OTEL_EXPORTER_OTLP_HEADERS,
	// _TIMEOUT, _COMPRESSION, _CERTIFICATE, …) itself, the SDK reads
	// OTEL_TRACES_SAMPLER and OTEL_BSP_*, and the resource
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
	Endpoint string
}

// Tracing is a running tracer provider with its exporter.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// New starts tracing to o.Endpoint, or returns nil (and builds nothing)
// when it is "". The exporter connects lazily: a collector that is down
// costs dropped spans, never a failed start.
func New(ctx context.Context, o Options) (*Tracing, error) {
	if o.Endpoint == "" {
		return nil, nil
	}
	if err := CheckEndpoint(o.Endpoint); err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(o.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "cloudkeys"), attribute.String("service.version", moduleVersion())),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(redactingExporter{exp}), sdktrace.WithResource(res))
	return &Tracing{tp: tp}, nil
}

// moduleVersion is the main module's version from the build information
// (a tag, a pseudo-version or "(devel)"), as `cloudkeys version` prints it.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// CheckEndpoint refuses an OTLP endpoint that is not an http or https URL
// with a host: the exporter would otherwise fall back to localhost:4318
// without a word.
func CheckEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("the OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) must be an http:// or https:// URL with a host")
	}
	return nil
}

// Shutdown sends the spans still buffered and stops the exporter; nil
// does nothing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// ForceFlush sends the spans ended so far (tests; Shutdown does it too).
func (t *Tracing) ForceFlush(ctx context.Context) error { return t.tp.ForceFlush(ctx) }

// Handler puts every request to h in a server span named by name (the
// route, never the raw path: "POST /graphql"). An incoming W3C traceparent
// is honoured as the parent. The span holds otelhttp's request attributes
// (method, path, status, peer and user agent), never a header or the query
// string.
func (t *Tracing) Handler(h http.Handler, name func(*http.Request) string) http.Handler {
	return otelhttp.NewHandler(h, "cloudkeys",
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics are Prometheus'
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return name(r) }))
}

// Transport wraps the relay's upstream transport: one client span per call
// to a provider, lasting until its answer (a stream included) is read. No
// trace context is sent to the provider (an empty propagator): the relay
// sends only the headers of its allow-list, and a provider has no business
// with our trace IDs.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "relay upstream " + r.Method }))
}

// GORM returns the database plugin: a client span per statement with its
// SQL text but never its parameters (WithoutQueryVariables), without the
// server address (taken from the DSN, which holds the password) and
// without the plugin's own OTel metrics (Prometheus has the pool).
func (t *Tracing) GORM() gorm.Plugin {
	return gormtracing.NewPlugin(gormtracing.WithTracerProvider(t.tp),
		gormtracing.WithoutQueryVariables(), gormtracing.WithoutServerAddress(), gormtracing.WithoutMetrics())
}

// GraphQL returns the gqlgen extension putting each operation in a span.
func (t *Tracing) GraphQL() graphql.HandlerExtension {
	return graphQLTracer{tracer: t.tp.Tracer(instrumentation)}
}
