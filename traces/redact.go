package traces

import (
	"context"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// redactingExporter strips the query string and fragment of every URL in a
// span's attributes, events and status before the span leaves the process.
//
// The one instrumentation that records a URL with its query is otelhttp's
// client (url.full of a call to a provider): the query is the credential's
// base URL's and the client's, and some providers take a key there
// (?key=…). otelhttp sets url.full after the span starts, so no span
// processor can change it; the exporter is the last place that can. The
// server's spans hold the path only (otelhttp records no url.query), but
// the rule is applied to every span alike, so that a future
// instrumentation cannot bring a query string back.
type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out, copied := spans, false
	for i, s := range spans {
		if r, ok := redact(s); ok {
			if !copied {
				out, copied = append([]sdktrace.ReadOnlySpan(nil), spans...), true
			}
			out[i] = r
		}
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

// urlQuery matches a URL's query string and fragment (group 1 is the URL
// before them).
var urlQuery = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^\s?#"'<>]*)[?#][^\s"'<>]*`)

// mayHoldQuery is the cheap test before the regular expression.
func mayHoldQuery(v string) bool {
	return strings.Contains(v, "://") && strings.ContainsAny(v, "?#")
}

func stripQueries(v string) string { return urlQuery.ReplaceAllString(v, "$1") }

// redactAttrs returns attrs with every URL's query stripped, and whether
// anything changed (attrs itself is never modified).
func redactAttrs(attrs []attribute.KeyValue) ([]attribute.KeyValue, bool) {
	var out []attribute.KeyValue
	for i, kv := range attrs {
		if kv.Value.Type() != attribute.STRING || !mayHoldQuery(kv.Value.AsString()) {
			continue
		}
		if out == nil {
			out = append([]attribute.KeyValue(nil), attrs...)
		}
		out[i] = attribute.String(string(kv.Key), stripQueries(kv.Value.AsString()))
	}
	if out == nil {
		return attrs, false
	}
	return out, true
}

// redactedSpan is a span with its attributes, events and status replaced.
type redactedSpan struct {
	sdktrace.ReadOnlySpan
	attrs  []attribute.KeyValue
	events []sdktrace.Event
	status sdktrace.Status
}

func (s redactedSpan) Attributes() []attribute.KeyValue { return s.attrs }
func (s redactedSpan) Events() []sdktrace.Event         { return s.events }
func (s redactedSpan) Status() sdktrace.Status          { return s.status }

// redact returns s with every URL's query stripped, if it had one.
func redact(s sdktrace.ReadOnlySpan) (sdktrace.ReadOnlySpan, bool) {
	attrs, changed := redactAttrs(s.Attributes())
	events := s.Events()
	var copied bool
	for i, ev := range events {
		a, ok := redactAttrs(ev.Attributes)
		if !ok {
			continue
		}
		if !copied {
			events, copied = append([]sdktrace.Event(nil), events...), true
		}
		events[i].Attributes = a
		changed = true
	}
	status := s.Status()
	if mayHoldQuery(status.Description) {
		status.Description = stripQueries(status.Description)
		changed = true
	}
	if !changed {
		return s, false
	}
	return redactedSpan{ReadOnlySpan: s, attrs: attrs, events: events, status: status}, true
}
