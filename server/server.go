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

	"cloudkeys/auth"
	"cloudkeys/config"
	"cloudkeys/probe"
)

// Deps is everything the HTTP handler needs.
type Deps struct {
	Config *config.Config
	Log    *slog.Logger
	DB     *gorm.DB
	Auth   *auth.Service
	Probe  *probe.Client
	// Relay serves every path under /relay/ (package relay's Gateway).
	Relay http.Handler
}

// NewServer returns the whole HTTP surface of cloudkeys.
func NewServer(d Deps) http.Handler {
	var h http.Handler = routes(d)
	h = withDeadlines(d.Config.RequestTimeout, d.Config.RelayMaxDuration)(h)
	h = auth.Middleware(d.Config.TrustedProxies)(h)
	h = oneAuthorization(h)
	h = securityHeaders(h)
	h = logRequests(d.Log)(h)
	return h
}
