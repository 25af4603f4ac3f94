package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"cloudkeys/config"
	"cloudkeys/models"
)

// What the session check costs an authenticated request (SPEC §7: token
// verify + user load ≤ 40 µs). Run with
//
//	go test -run '^$' -bench 'Request|SessionLookup' -benchmem ./server/
//
// The handler is called in-process (no sockets), so the difference between
// the two request benchmarks is the @auth work: the JWT verify, the one
// query that loads the user with its session, and resolving `me`.

func benchBackends(b *testing.B, bench func(b *testing.B, cfg *config.Config)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.LogLevel = "warn" // no per-request log line in the measurement
			if backend == "postgres" {
				usePostgres(b, cfg)
			}
			bench(b, cfg)
		})
	}
}

func BenchmarkRequest(b *testing.B) {
	benchBackends(b, func(b *testing.B, cfg *config.Config) {
		app := startApp(b, cfg)
		admin, _ := app.adminClient(b)
		serve := func(b *testing.B, query, token string) {
			body := []byte(`{"query":"` + query + `"}`)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				rec := httptest.NewRecorder()
				app.Handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		}
		b.Run("anonymous_typename", func(b *testing.B) { serve(b, "{ __typename }", "") })
		b.Run("authenticated_me", func(b *testing.B) { serve(b, "{ me { id } }", admin.token) })
	})
}

func BenchmarkSessionLookup(b *testing.B) {
	benchBackends(b, func(b *testing.B, cfg *config.Config) {
		app := startApp(b, cfg)
		_, u := app.adminClient(b)
		var sessionID string
		if err := app.DB.Raw("SELECT id FROM sessions WHERE user_id = ?", u.ID).Scan(&sessionID).Error; err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		check := models.NewSessionCheck(app.DB)
		b.Run("UserByID", func(b *testing.B) {
			for b.Loop() {
				if _, err := models.UserByID(ctx, app.DB, u.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("UserForSession", func(b *testing.B) {
			for b.Loop() {
				if _, err := check.UserForSession(ctx, u.ID, sessionID, time.Now().UTC()); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
