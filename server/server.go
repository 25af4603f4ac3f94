// Package server wires cloudkeys together: Open builds every dependency
// from the configuration, NewServer the HTTP handler — routes, middleware
// chain, GraphQL endpoint, playground and health checks.
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
}

// NewServer returns the whole HTTP surface of cloudkeys.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d)
	var h http.Handler = mux
	h = auth.Middleware(d.Config.TrustedProxies)(h)
	h = securityHeaders(h)
	h = logRequests(d.Log)(h)
	return h
}
