package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"cloudkeys/models"
	"cloudkeys/playground"
	"cloudkeys/schema"
)

// routes lists every route of the server. Paths under /relay/ go to the
// relay before the ServeMux, which would answer a path with dot segments
// or doubled slashes with a redirect to its cleaned form: the relay refuses
// such paths itself (404), and never follows or issues redirects.
func routes(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d)
	relay := http.NotFoundHandler()
	if d.Relay != nil {
		relay = allowRelayCORS(d.Config.CORSOrigins)(d.Relay)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/relay/") {
			relay.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// addRoutes lists the routes of the ServeMux.
func addRoutes(mux *http.ServeMux, d Deps) {
	mux.Handle("/graphql", allowCORS(d.Config.CORSOrigins)(newGraphQLHandler(d)))
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(d))
	if d.Config.Introspection {
		mux.Handle("GET /schema.graphql", handleSchema())
	}
	if d.Config.Playground {
		pg := playground.Handler("/graphql")
		mux.Handle("GET /{$}", pg)
		mux.Handle("GET /playground/", pg)
	}
}

// handleHealthz answers while the process runs.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// handleReadyz answers 200 while the database answers, 503 otherwise.
func handleReadyz(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := models.Ping(ctx, d.DB); err != nil {
			d.Log.WarnContext(ctx, "readiness check failed", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("database unavailable\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
}

// handleSchema serves the SDL of the API.
func handleSchema() http.Handler {
	sdl := []byte(schema.SDL())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(sdl)
	})
}
