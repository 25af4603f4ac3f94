package server_test

// The Prometheus metrics (SPEC §10) after real traffic: GraphQL over HTTP
// (sign-ins that succeed, fail and are throttled), a relayed call to the
// fake provider, a stored key that does not open. The registry is scraped
// in-process through the handler `serve` puts on CLOUDKEYS_METRICS_ADDR
// (main_metrics_test.go scrapes the real listener) and parsed with the
// Prometheus text parser.

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"cloudkeys/relay/fakeprovider"
)

// scrape reads the app's metrics as a scraper would.
func scrape(t testing.TB, a *testApp) map[string]*dto.MetricFamily {
	t.Helper()
	if a.Metrics == nil {
		t.Fatal("metrics are off: set cfg.MetricsAddr")
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	a.Metrics.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return fams
}

// sample returns the value of family name's series with exactly labels
// (name=value, …), and whether there is one: a counter's or gauge's
// value, a histogram's count.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
outer:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue outer
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// mustSample is sample, failing the test without the series.
func mustSample(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(fams, name, labels...)
	if !ok {
		var have []string
		if f := fams[name]; f != nil {
			for _, m := range f.GetMetric() {
				have = append(have, m.String())
			}
		}
		t.Fatalf("no series %s%v; the family has: %v", name, labels, have)
	}
	return v
}

func TestMetricsAfterTraffic(t *testing.T) {
	cfg := relayConfig(t)
	cfg.MetricsAddr = "127.0.0.1:0" // metrics on; the test scrapes the handler itself
	cfg.LoginMaxPerEmail = 2
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	a := e.app

	before := scrape(t, a)
	for _, fam := range []string{
		"cloudkeys_http_requests_total", "cloudkeys_http_request_duration_seconds",
		"cloudkeys_graphql_operations_total", "cloudkeys_sign_ins_total", "cloudkeys_throttle_refusals_total",
		"cloudkeys_hash_slots", "cloudkeys_hash_slots_in_use", "cloudkeys_hash_waits_total",
		"cloudkeys_hash_wait_timeouts_total", "cloudkeys_hash_wait_seconds_total",
		"cloudkeys_key_open_failures_total", "cloudkeys_build_info",
		"go_sql_open_connections", "go_sql_max_open_connections", "go_sql_wait_count_total",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if before[fam] == nil {
			t.Errorf("family %s is missing", fam)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// newRelayEnv registered ada and signed her in once.
	if v := mustSample(t, before, "cloudkeys_sign_ins_total", "outcome", "succeeded"); v != 1 {
		t.Fatalf("sign-ins succeeded = %v, want 1", v)
	}
	for _, o := range []string{"failed", "throttled", "pending", "disabled", "error"} {
		if v := mustSample(t, before, "cloudkeys_sign_ins_total", "outcome", o); v != 0 {
			t.Fatalf("sign-ins %s = %v before any, want 0", o, v)
		}
	}
	for _, pool := range []string{"sign_in", "accounts"} {
		if v := mustSample(t, before, "cloudkeys_hash_slots", "pool", pool); v != 2 { // cfg.HashConcurrency 4, halved
			t.Fatalf("hash slots of %s = %v, want 2", pool, v)
		}
		mustSample(t, before, "cloudkeys_hash_slots_in_use", "pool", pool)
		mustSample(t, before, "cloudkeys_hash_waits_total", "pool", pool)
	}
	build := before["cloudkeys_build_info"].GetMetric()
	if len(build) != 1 || build[0].GetGauge().GetValue() != 1 {
		t.Fatalf("build info: %v", build)
	}
	labels := map[string]string{}
	for _, l := range build[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] == "" || labels["revision"] == "" || !strings.HasPrefix(labels["goversion"], "go") {
		t.Fatalf("build info labels: %v", labels)
	}

	// A wrong password, then an unknown email until the throttle refuses.
	anon := a.client(t)
	if r := anon.do(loginMutation, map[string]any{"email": "ada@example.com", "password": "wrong password"}); codeOf(r) != "UNAUTHENTICATED" {
		t.Fatalf("wrong password: %s", r.Raw)
	}
	for i := range 3 {
		r := anon.do(loginMutation, map[string]any{"email": "nobody@example.com", "password": "whatever pw"})
		want := "UNAUTHENTICATED"
		if i == 2 {
			want = "RATE_LIMITED"
		}
		if codeOf(r) != want {
			t.Fatalf("login %d of an unknown email: %s, want %s", i, r.Raw, want)
		}
	}

	// A relayed call with usage, and one refused (no relay key).
	_, secret := e.c.createRelayKey(e.openAI.ID, nil)
	if ans := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false),
		"Authorization", "Bearer "+secret); ans.status != 200 {
		t.Fatalf("relayed call: %d %s", ans.status, ans.body)
	}
	if ans := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false)); ans.status != 401 {
		t.Fatalf("call without a key: %d %s", ans.status, ans.body)
	}

	// A stored key that does not open: listed, it reads NEEDS_REENTRY.
	if err := a.DB.Exec("UPDATE cloud_credentials SET api_key_jwe = 'not-a-jwe' WHERE id = ?", e.anthropic.ID).Error; err != nil {
		t.Fatal(err)
	}
	var creds []credJSON
	e.c.must(`{ cloudCredentials { `+credFields+` } }`, nil, "cloudCredentials", &creds)

	// The main listener serves no metrics.
	res, err := http.Get(a.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the main listener: %d, want 404", res.StatusCode)
	}

	after := scrape(t, a)
	moved := func(name string, want float64, labels ...string) {
		t.Helper()
		b, _ := sample(before, name, labels...)
		if got := mustSample(t, after, name, labels...) - b; got != want {
			t.Errorf("%s%v moved by %v, want %v", name, labels, got, want)
		}
	}
	moved("cloudkeys_sign_ins_total", 0, "outcome", "succeeded")
	moved("cloudkeys_sign_ins_total", 3, "outcome", "failed") // a wrong password, two unknown-email attempts
	moved("cloudkeys_sign_ins_total", 1, "outcome", "throttled")
	moved("cloudkeys_throttle_refusals_total", 1, "limit", "sign_in")
	moved("cloudkeys_throttle_refusals_total", 0, "limit", "register")
	moved("cloudkeys_graphql_operations_total", 3, "code", "UNAUTHENTICATED")
	moved("cloudkeys_graphql_operations_total", 1, "code", "RATE_LIMITED")
	moved("cloudkeys_http_requests_total", 1, "route", "relay", "status", "200")
	moved("cloudkeys_http_requests_total", 1, "route", "relay", "status", "401")
	moved("cloudkeys_http_requests_total", 1, "route", "other", "status", "404") // GET /metrics
	moved("cloudkeys_http_request_duration_seconds", 1, "route", "relay", "status", "200")
	moved("cloudkeys_relay_calls_total", 1, "api_type", "openai", "endpoint", "POST chat/completions", "status", "200")
	moved("cloudkeys_relay_calls_total", 1, "api_type", "openai", "endpoint", "none", "status", "401")
	moved("cloudkeys_relay_upstream_duration_seconds", 1, "provider", "openai_compatible")
	moved("cloudkeys_relay_tokens_total", fakeprovider.InputTokens, "provider", "openai_compatible", "direction", "input")
	moved("cloudkeys_relay_tokens_total", fakeprovider.OutputTokens, "provider", "openai_compatible", "direction", "output")
	moved("cloudkeys_key_open_failures_total", 1, "reason", "not_a_jwe")
	if v := mustSample(t, after, "cloudkeys_graphql_operations_total", "code", "OK"); v < 5 {
		t.Errorf("GraphQL operations OK = %v, want the successful ones counted", v)
	}
	if v := mustSample(t, after, "cloudkeys_http_requests_total", "route", "graphql", "status", "200"); v < 8 {
		t.Errorf("HTTP requests of /graphql = %v", v)
	}
	if v := mustSample(t, after, "go_sql_max_open_connections", "db_name", "cloudkeys"); v <= 0 {
		t.Errorf("database pool: max open connections %v", v)
	}

	// Label values come from fixed sets: no path, email, model or ID.
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, leak := range []string{"@", "gpt-4o", e.openAI.ID, e.user.ID, "/relay/v1", secret} {
					if strings.Contains(l.GetValue(), leak) {
						t.Errorf("%s has the label %s=%q", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// codeOf is the extensions.code of a response's first error ("" without).
func codeOf(r *response) string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// TestMetricsOff: without CLOUDKEYS_METRICS_ADDR nothing is built; and two
// apps with metrics in one process have registries of their own.
func TestMetricsOff(t *testing.T) {
	t.Parallel()
	off := startApp(t, nil)
	if off.Metrics != nil {
		t.Fatal("metrics built without CLOUDKEYS_METRICS_ADDR")
	}
	res, err := http.Get(off.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics: %d", res.StatusCode)
	}

	var apps []*testApp
	for range 2 {
		cfg := testConfig(t)
		cfg.MetricsAddr = "127.0.0.1:0"
		apps = append(apps, startApp(t, cfg))
	}
	apps[0].client(t).do(`{ __typename }`, nil)
	one := mustSample(t, scrape(t, apps[0]), "cloudkeys_graphql_operations_total", "code", "OK")
	other := mustSample(t, scrape(t, apps[1]), "cloudkeys_graphql_operations_total", "code", "OK")
	if one != 1 || other != 0 {
		t.Fatalf("two apps share counts: %v and %v", one, other)
	}
}
