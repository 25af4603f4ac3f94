package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"cloudkeys/metrics"
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

// routeOf names the route of a path for metrics and span names: one of a
// fixed set (metrics.Route), never the path itself, so that no client can
// make a new series or span name by sending a new path. It follows the
// routes above; a path no route serves is RouteOther, and one of a route
// switched off (the playground in production) keeps its route's name.
func routeOf(path string) metrics.Route {
	switch {
	case path == "/graphql":
		return metrics.RouteGraphQL
	case strings.HasPrefix(path, "/relay/"):
		return metrics.RouteRelay
	case path == "/healthz":
		return metrics.RouteHealthz
	case path == "/readyz":
		return metrics.RouteReadyz
	case path == "/schema.graphql":
		return metrics.RouteSchema
	case path == "/" || strings.HasPrefix(path, "/playground/"):
		return metrics.RoutePlayground
	}
	return metrics.RouteOther
}

// routeTemplates are the span names' routes (semantic conventions:
// "{method} {http.route}").
var routeTemplates = map[metrics.Route]string{
	metrics.RouteGraphQL: "/graphql", metrics.RouteRelay: "/relay/*", metrics.RouteHealthz: "/healthz",
	metrics.RouteReadyz: "/readyz", metrics.RouteSchema: "/schema.graphql", metrics.RoutePlayground: "/",
}

// spanName is the name of a request's server span: "POST /graphql"; the
// method alone for a path no route serves.
func spanName(r *http.Request) string {
	if t, ok := routeTemplates[routeOf(r.URL.Path)]; ok {
		return r.Method + " " + t
	}
	return r.Method
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
