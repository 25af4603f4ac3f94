// Package server is cloudkeys' HTTP surface and nothing else: NewServer
// takes every dependency already built (package app builds them) and
// returns the handler — routes (routes.go), the middleware chain, the
// GraphQL endpoint with its error presenter and field costs, the
// playground and the health checks. It reads no file and no environment.
//
// What may import it: app (which wires it) and tests.
package server

import (
	"log/slog"
	"net/http"

	"gorm.io/gorm"

	"cloudkeys/audit"
	"cloudkeys/auth"
	"cloudkeys/config"
	"cloudkeys/metrics"
	"cloudkeys/probe"
	"cloudkeys/traces"
)

// Deps is everything the HTTP handler needs.
type Deps struct {
	Config *config.Config
	Log    *slog.Logger
	DB     *gorm.DB
	Auth   *auth.Service
	Probe  *probe.Client
	Audit  *audit.Log
	// Relay serves every path under /relay/ (package relay's Gateway).
	Relay http.Handler
	// Metrics records each request and GraphQL outcome; nil: metrics off.
	Metrics *metrics.Metrics
	// Tracing puts requests and GraphQL operations in spans; nil: off,
	// and no middleware at all is installed for it.
	Tracing *traces.Tracing
}

// NewServer returns the whole HTTP surface of cloudkeys.
func NewServer(d Deps) http.Handler {
	var h http.Handler = routes(d)
	h = withDeadlines(d.Config.RequestTimeout, d.Config.RelayMaxDuration)(h)
	h = auth.Middleware(d.Config.TrustedProxies)(h)
	h = oneAuthorization(h)
	h = securityHeaders(h)
	h = logRequests(d.Log, d.Metrics)(h)
	if d.Tracing != nil {
		h = d.Tracing.Handler(h, spanName)
	}
	return h
}
