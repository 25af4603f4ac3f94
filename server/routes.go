package server

import (
	"context"
	"net/http"
	"time"

	"cloudkeys/models"
	"cloudkeys/playground"
	"cloudkeys/schema"
)

// addRoutes lists every route of the server.
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
