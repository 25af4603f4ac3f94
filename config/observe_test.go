package config

import (
	"io"
	"testing"
)

// TestObservabilitySettings: CLOUDKEYS_METRICS_ADDR (and --metrics-addr)
// and the standard OTEL_* variables that turn traces on and off.
func TestObservabilitySettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c.example/otlp/"}, "https://c.example/otlp/v1/traces"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, "http://c:4318/custom"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, ""},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, "http://c:4318/v1/traces"},
	} {
		c := Read(func(k string) string { return tc.env[k] })
		if c.TracesEndpoint != tc.want {
			t.Errorf("%v: TracesEndpoint %q, want %q", tc.env, c.TracesEndpoint, tc.want)
		}
	}

	c, err := Load(nil, func(k string) string {
		return map[string]string{"CLOUDKEYS_METRICS_ADDR": "127.0.0.1:9090"}[k]
	}, io.Discard)
	if err != nil || c.MetricsAddr != "127.0.0.1:9090" {
		t.Fatalf("CLOUDKEYS_METRICS_ADDR: %v %q", err, c.MetricsAddr)
	}
	c, err = Load([]string{"--metrics-addr", ":9191"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.MetricsAddr != ":9191" {
		t.Fatalf("--metrics-addr: %v %q", err, c.MetricsAddr)
	}
	if c, _ := Load(nil, func(string) string { return "" }, io.Discard); c.MetricsAddr != "" {
		t.Fatalf("metrics on by default: %q", c.MetricsAddr)
	}
}
