package traces

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestStripQueries(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com/v1/chat?key=sk-secret":           "https://api.example.com/v1/chat",
		"http://h:1/p#frag":                                       "http://h:1/p",
		`Post "https://h/v1/x?api-key=s3cret": dial tcp: refused`: `Post "https://h/v1/x": dial tcp: refused`,
		"SELECT * FROM t WHERE a = ? AND b = ?":                   "SELECT * FROM t WHERE a = ? AND b = ?",
		"two: http://a/?x=1 and https://b/c?y=2&z=3 end":          "two: http://a/ and https://b/c end",
		"no url here": "no url here",
	} {
		if got := stripQueries(in); got != want {
			t.Errorf("stripQueries(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedactingExporter: what reaches the exporter has no URL query in
// attributes, events or status; spans without one pass unchanged.
func TestRedactingExporter(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(redactingExporter{mem}))
	tr := tp.Tracer("test")
	_, s := tr.Start(context.Background(), "call")
	s.SetAttributes(attribute.String("url.full", "https://h/v1/x?key=SECRET"), attribute.Int("n", 1))
	s.AddEvent("exception", trace.WithAttributes(attribute.String("exception.message", `Get "https://h/?key=SECRET": EOF`)))
	s.SetStatus(codes.Error, "https://h/?key=SECRET")
	s.End()
	_, plain := tr.Start(context.Background(), "plain")
	plain.SetAttributes(attribute.String("db.query.text", "SELECT ? FROM t"))
	plain.End()
	spans := mem.GetSpans() // the syncer exported them as they ended
	defer tp.Shutdown(context.Background())
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); stripQueries(v) != v || kv.Value.AsString() == "SECRET" {
				t.Errorf("%s: %s=%q", s.Name, kv.Key, v)
			}
		}
		for _, ev := range s.Events {
			for _, kv := range ev.Attributes {
				if v := kv.Value.Emit(); stripQueries(v) != v {
					t.Errorf("%s: event %s=%q", s.Name, kv.Key, v)
				}
			}
		}
		if stripQueries(s.Status.Description) != s.Status.Description {
			t.Errorf("%s: status %q", s.Name, s.Status.Description)
		}
	}
	if got := spans[0].Attributes[0].Value.AsString(); got != "https://h/v1/x" {
		t.Errorf("url.full = %q", got)
	}
	if got := spans[1].Attributes[0].Value.AsString(); got != "SELECT ? FROM t" {
		t.Errorf("an attribute without a URL changed: %q", got)
	}
}
