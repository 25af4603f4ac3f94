// Package metrics is cloudkeys' Prometheus instrumentation (SPEC §10): one
// registry per running cloudkeys, the instruments every family is recorded
// in, and the handler that serves them in the Prometheus text format on
// the separate metrics listener (CLOUDKEYS_METRICS_ADDR; never on the main
// one). docs/observability.md explains the label sets and the cost.
//
// The domain packages do not import it, nor Prometheus: each one that has
// something to count says so through a small interface or callback of its
// own (auth.Observer, relay.Observer, models.Encryption's OnOpenFailure,
// gqlhttp.Options.OnResult), which *Metrics satisfies with plain strings
// and numbers; app wires them. Every label value comes from a fixed set,
// never from a request (no path, no email, no model name, no ID).
//
// A nil *Metrics is "metrics off": app builds none when
// CLOUDKEYS_METRICS_ADDR is unset, and nothing is recorded or registered.
//
// What may import it: app (which builds and wires it) and server (which
// records the HTTP requests). Of cloudkeys it imports only buildinfo.
package metrics

import (
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cloudkeys/buildinfo"
)

// namespace prefixes every family of cloudkeys' own.
const namespace = "cloudkeys"

// Route is the route label of an HTTP request: one of a fixed set, so a
// client sending endless distinct paths cannot make endless series.
type Route uint8

// The routes (package server maps a path to one).
const (
	RouteOther Route = iota
	RouteGraphQL
	RouteRelay
	RouteHealthz
	RouteReadyz
	RouteSchema
	RoutePlayground
	numRoutes
)

var routeNames = [numRoutes]string{
	RouteOther: "other", RouteGraphQL: "graphql", RouteRelay: "relay", RouteHealthz: "healthz",
	RouteReadyz: "readyz", RouteSchema: "schema", RoutePlayground: "playground",
}

// String returns the route's label value.
func (r Route) String() string {
	if r >= numRoutes {
		return routeNames[RouteOther]
	}
	return routeNames[r]
}

// The status label: the three digits of an HTTP status from 100 to 599,
// else "other". Written once, so that recording allocates nothing.
const (
	minStatus  = 100
	maxStatus  = 599
	numStatus  = maxStatus - minStatus + 2 // and "other"
	otherIndex = numStatus - 1
)

var statusText = func() (s [numStatus]string) {
	for code := minStatus; code <= maxStatus; code++ {
		s[code-minStatus] = strconv.Itoa(code)
	}
	s[otherIndex] = "other"
	return s
}()

func statusIndex(code int) int {
	if code < minStatus || code > maxStatus {
		return otherIndex
	}
	return code - minStatus
}

// The outcomes of a sign-in (auth.Service.Login), every one created at
// zero so that a rate over it exists before the first sign-in.
var signInOutcomes = []string{"succeeded", "failed", "throttled", "pending", "disabled", "error"}

// The limits whose refusals are counted: the login throttle (login and
// changePassword's check of the current password) and the per-address
// registration limit.
var throttleLimits = []string{"sign_in", "register"}

// The reasons a stored API key does not open (models' keyProblems), every
// one created at zero.
var openFailureReasons = []string{"unknown_key", "bound_to_another_record", "legacy_fernet_token",
	"not_a_jwe", "does_not_decrypt", "unsupported_jwe"}

// maxCodes bounds the code label of GraphQL operations. The error presenter
// gives every error one of a fixed set of codes; should a new code appear
// past this many, it is counted as "OTHER" rather than as a new series.
const maxCodes = 64

// Buckets of the latency histograms, in seconds. HTTP: most answers take
// well under a millisecond to tens of milliseconds; a login is one Argon2id
// hash (~50 ms with the defaults); relayed streams last minutes and land in
// +Inf. Upstream: a provider's time to its response headers.
var (
	httpBuckets     = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60}
	upstreamBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
)

// Metrics holds one registry and its instruments. Its methods are safe for
// concurrent use; each does nothing on a nil *Metrics.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// httpSeries caches the series of each route and status, made on first
	// use, so that a request costs two atomic loads and the two updates.
	httpSeries [numRoutes][numStatus]atomic.Pointer[httpSeries]

	graphql      *prometheus.CounterVec
	graphqlCodes sync.Map // code → prometheus.Counter
	codeCount    atomic.Int32

	signIns       *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	openFailures  *prometheus.CounterVec
	relayCalls    *prometheus.CounterVec
	relayUpstream *prometheus.HistogramVec
	relayTokens   *prometheus.CounterVec
}

type httpSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// New returns a Metrics with its own registry (never Prometheus' global
// one, so that two cloudkeys in one process — tests — do not collide),
// holding the families of SPEC §10, Go's runtime and process collectors
// and cloudkeys_build_info. The database pool, the hashing pools and the
// audit chain head are added by the methods named after them.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests answered on the main listener, by route (a fixed set: graphql, relay, healthz, readyz, schema, playground, other) and status.",
	}, []string{"route", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time from a request's arrival to the end of its answer (a relayed stream included), by route and status.",
		Buckets: httpBuckets,
	}, []string{"route", "status"})
	m.graphql = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "graphql", Name: "operations_total",
		Help: "GraphQL responses written, by outcome: the extensions.code of the first error, or OK.",
	}, []string{"code"})
	m.signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "sign_ins_total",
		Help: "login attempts by outcome: succeeded, failed (wrong email or password), throttled, pending, disabled, error (hashing busy, database).",
	}, []string{"outcome"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "throttle_refusals_total",
		Help: "Attempts refused with RATE_LIMITED before any password was hashed, by limit: sign_in (the login throttle, per email and per address) or register (per address).",
	}, []string{"limit"})
	m.openFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "key_open_failures_total",
		Help: "Stored API keys read that did not open (the credential reads NEEDS_REENTRY), by reason.",
	}, []string{"reason"})
	m.relayCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "relay", Name: "calls_total",
		Help: "Relayed calls by the credential's API type, endpoint (\"none\" when refused before one matched) and the status the client got (499: it went away first).",
	}, []string{"api_type", "endpoint", "status"})
	m.relayUpstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "relay", Name: "upstream_duration_seconds",
		Help:    "Time from sending a relayed call to the provider's response headers, by provider (the credential's backend type).",
		Buckets: upstreamBuckets,
	}, []string{"provider"})
	m.relayTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "relay", Name: "tokens_total",
		Help: "Tokens of the providers' usage read from relayed answers, by provider and direction (input, output).",
	}, []string{"provider", "direction"})

	for _, o := range signInOutcomes {
		m.signIns.WithLabelValues(o)
	}
	for _, l := range throttleLimits {
		m.throttled.WithLabelValues(l)
	}
	for _, r := range openFailureReasons {
		m.openFailures.WithLabelValues(r)
	}
	m.graphqlCode("OK")

	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.graphql, m.signIns, m.throttled,
		m.openFailures, m.relayCalls, m.relayUpstream, m.relayTokens,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo())
	return m
}

// Handler serves the registry in the Prometheus text (or protobuf, as the
// scraper asks) format. Serve it on the metrics listener only.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for a collector added by its owner (see
// AuditChainHead for the one planned) and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// HTTPRequest counts one answered request of route with status, which took
// d. It allocates nothing once the route and status have been seen.
func (m *Metrics) HTTPRequest(route Route, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route >= numRoutes {
		route = RouteOther
	}
	i := statusIndex(status)
	s := m.httpSeries[route][i].Load()
	if s == nil {
		s = &httpSeries{count: m.httpRequests.WithLabelValues(route.String(), statusText[i]),
			duration: m.httpDuration.WithLabelValues(route.String(), statusText[i])}
		m.httpSeries[route][i].Store(s) // a race stores the same series twice: harmless
	}
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

// GraphQLResult counts one GraphQL response by its outcome code (the
// extensions.code of its first error, or "OK"): gqlhttp.Options.OnResult.
func (m *Metrics) GraphQLResult(code string) {
	if m == nil {
		return
	}
	m.graphqlCode(code).Inc()
}

func (m *Metrics) graphqlCode(code string) prometheus.Counter {
	if c, ok := m.graphqlCodes.Load(code); ok {
		return c.(prometheus.Counter)
	}
	if m.codeCount.Load() >= maxCodes {
		code = "OTHER"
		if c, ok := m.graphqlCodes.Load(code); ok {
			return c.(prometheus.Counter)
		}
	}
	c, loaded := m.graphqlCodes.LoadOrStore(code, m.graphql.WithLabelValues(code))
	if !loaded {
		m.codeCount.Add(1)
	}
	return c.(prometheus.Counter)
}

// SignIn counts one login attempt by outcome (auth.Observer).
func (m *Metrics) SignIn(outcome string) {
	if m == nil {
		return
	}
	m.signIns.WithLabelValues(outcome).Inc()
}

// ThrottleRefused counts one attempt refused by limit (auth.Observer).
func (m *Metrics) ThrottleRefused(limit string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(limit).Inc()
}

// KeyOpenFailed counts one stored API key that did not open, by reason
// (models.Encryption's OnOpenFailure).
func (m *Metrics) KeyOpenFailed(reason string) {
	if m == nil {
		return
	}
	m.openFailures.WithLabelValues(reason).Inc()
}

// RelayCall counts one relayed call (relay.Observer): apiType and
// provider are the credential's API and backend types ("" before a
// credential was known), endpoint the matched endpoint ("" if none),
// status what the client got; upstream is the time to the provider's
// response headers (0 when nothing came back), in and out the tokens read.
func (m *Metrics) RelayCall(apiType, provider, endpoint string, status int, upstream time.Duration, in, out int64) {
	if m == nil {
		return
	}
	if endpoint == "" {
		endpoint = "none"
	}
	m.relayCalls.WithLabelValues(label(apiType), endpoint, statusText[statusIndex(status)]).Inc()
	if provider == "" {
		return
	}
	p := label(provider)
	if upstream > 0 {
		m.relayUpstream.WithLabelValues(p).Observe(upstream.Seconds())
	}
	if in > 0 {
		m.relayTokens.WithLabelValues(p, "input").Add(float64(in))
	}
	if out > 0 {
		m.relayTokens.WithLabelValues(p, "output").Add(float64(out))
	}
}

// label lowercases an enum value (OPENAI → openai); "" is "none".
func label(v string) string {
	if v == "" {
		return "none"
	}
	return strings.ToLower(v)
}

// HashPool is what the metrics read of one pool of hashing slots, when
// scraped (auth.Hasher satisfies it).
type HashPool interface {
	Slots() int                                             // slots of the pool
	InUse() int                                             // slots taken now
	WaitStats() (waits, timeouts int64, wait time.Duration) // since start
}

// HashPools registers the hashing pools by name ("sign_in", "accounts"):
// slots, slots in use, hashes that waited for a slot, waits that ran out
// (RATE_LIMITED) and the time spent waiting. They are read at scrape time;
// hashing itself records nothing.
func (m *Metrics) HashPools(pools map[string]HashPool) {
	if m == nil {
		return
	}
	for name, p := range pools {
		labels := prometheus.Labels{"pool": name}
		wait := func(f func(int64, int64, time.Duration) float64) func() float64 {
			return func() float64 { return f(p.WaitStats()) }
		}
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "hash", Name: "slots",
				Help: "Argon2id hashes the pool runs at once.", ConstLabels: labels},
				func() float64 { return float64(p.Slots()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "hash", Name: "slots_in_use",
				Help: "Argon2id hashes running in the pool now.", ConstLabels: labels},
				func() float64 { return float64(p.InUse()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "hash", Name: "waits_total",
				Help: "Hashes that found every slot of the pool taken and waited.", ConstLabels: labels},
				wait(func(w, _ int64, _ time.Duration) float64 { return float64(w) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "hash", Name: "wait_timeouts_total",
				Help: "Waits that ran past CLOUDKEYS_HASH_WAIT and were answered RATE_LIMITED.", ConstLabels: labels},
				wait(func(_, t int64, _ time.Duration) float64 { return float64(t) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "hash", Name: "wait_seconds_total",
				Help: "Time hashes spent waiting for a slot of the pool.", ConstLabels: labels},
				wait(func(_, _ int64, d time.Duration) float64 { return d.Seconds() })),
		)
	}
}

// DatabasePool registers the statistics of the database pool (sql.DBStats:
// go_sql_* with db_name="cloudkeys"), read at scrape time.
func (m *Metrics) DatabasePool(db *sql.DB) {
	if m == nil {
		return
	}
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, namespace))
}

// AuditChainHead registers the audit chain's head, read from head at
// scrape time (so head should return what was last read, kept in memory,
// not query the database): cloudkeys_audit_chain_head_seq, the sequence
// number of the newest record, and cloudkeys_audit_chain_head{mac} 1, its
// MAC — what `cloudkeys audit verify --head SEQ:MAC` compares, to see that
// no newest rows were removed (a chain cut at its end still verifies).
func (m *Metrics) AuditChainHead(head func() (seq int64, mac string)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&auditHead{head: head,
		seq: prometheus.NewDesc(namespace+"_audit_chain_head_seq", "Sequence number of the newest record of the audit chain.", nil, nil),
		mac: prometheus.NewDesc(namespace+"_audit_chain_head", "Always 1: the MAC of the newest record of the audit chain.", []string{"mac"}, nil)})
}

type auditHead struct {
	head     func() (int64, string)
	seq, mac *prometheus.Desc
}

func (a *auditHead) Describe(ch chan<- *prometheus.Desc) { ch <- a.seq; ch <- a.mac }

func (a *auditHead) Collect(ch chan<- prometheus.Metric) {
	seq, mac := a.head()
	ch <- prometheus.MustNewConstMetric(a.seq, prometheus.GaugeValue, float64(seq))
	if mac != "" {
		ch <- prometheus.MustNewConstMetric(a.mac, prometheus.GaugeValue, 1, mac)
	}
}

// buildInfo is cloudkeys_build_info{version, revision, goversion} 1, from
// the build information Go records in the binary (as `cloudkeys version`
// prints it); "unknown" where it records none (go run, go test).
func buildInfo() prometheus.Collector {
	v := buildinfo.Read()
	version, revision, goVersion := v.Module, "unknown", "unknown"
	if v.Revision != "" {
		revision = v.Revision
		if v.Modified {
			revision += "-modified"
		}
	}
	if v.Go != "" {
		goVersion = v.Go
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "Always 1: the module version, VCS revision and Go version cloudkeys was built from.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}})
	g.Set(1)
	return g
}
