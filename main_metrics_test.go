package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var metricsServed = regexp.MustCompile(`msg="metrics are served" addr=(\S+)`)

// TestServeMetricsListener: with CLOUDKEYS_METRICS_ADDR, `serve` answers
// GET /metrics there (the Prometheus text format, the families moving with
// the traffic) and nothing else; the main listener has no /metrics; the
// metrics listener closes with the server.
func TestServeMetricsListener(t *testing.T) {
	vars := testEnv(t.TempDir())
	vars["CLOUDKEYS_METRICS_ADDR"] = "127.0.0.1:0"
	base, logs, stop := startRun(t, vars)
	m := metricsServed.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the log does not say where the metrics are:\n%s", logs)
	}
	metricsURL := "http://" + m[1]

	post(t, base, "", `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { id } }`)
	post(t, base, "", `mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }`)

	res, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	found := false
	for _, s := range fams["cloudkeys_sign_ins_total"].GetMetric() {
		if len(s.GetLabel()) == 1 && s.GetLabel()[0].GetValue() == "succeeded" {
			found = s.GetCounter().GetValue() == 1
		}
	}
	if !found {
		t.Fatalf("cloudkeys_sign_ins_total{outcome=succeeded} is not 1: %v", fams["cloudkeys_sign_ins_total"])
	}
	for _, f := range []string{"cloudkeys_http_requests_total", "cloudkeys_graphql_operations_total", "cloudkeys_build_info", "go_sql_open_connections"} {
		if fams[f] == nil {
			t.Errorf("family %s missing", f)
		}
	}

	for _, u := range []string{base + "/metrics", metricsURL + "/graphql", metricsURL + "/"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || strings.Contains(string(body), "cloudkeys_") {
			t.Fatalf("GET %s: %d %.80q, want 404", u, res.StatusCode, body)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get(metricsURL + "/metrics"); err == nil {
		t.Fatal("the metrics listener still answers after the server stopped")
	}
}

// TestServeWithoutMetrics: no CLOUDKEYS_METRICS_ADDR, no metrics listener.
func TestServeWithoutMetrics(t *testing.T) {
	_, logs, stop := startRun(t, testEnv(t.TempDir()))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "metrics are served") {
		t.Fatalf("a metrics listener without CLOUDKEYS_METRICS_ADDR:\n%s", logs)
	}
}
