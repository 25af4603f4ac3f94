package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/argon2id"

	"cloudkeys/auth"
)

// serveJSON posts a GraphQL request straight to the handler (no network)
// and fails the benchmark on any GraphQL error.
func serveJSON(b *testing.B, h http.Handler, token, query string, vars map[string]any) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
		b.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
	}
}

// BenchmarkLogin compares a whole login (GraphQL request, user lookup,
// Argon2id verify, session insert, token signing) with one bare Argon2id
// verify at the same production parameters. SPEC §7: login ≤ 1.1× verify.
//
//	go test -run x -bench 'Login' -benchtime 40x -count 5 ./server/
func BenchmarkLogin(b *testing.B) {
	cfg := testConfig(b)
	cfg.Argon2 = auth.DefaultParams
	app := startApp(b, cfg)
	app.client(b).register("ada@example.com", "correct horse battery")
	hash := passwordHash(b, app, "ada@example.com")

	b.Run("argon2id-verify", func(b *testing.B) {
		for b.Loop() {
			ok, err := argon2id.ComparePasswordAndHash("correct horse battery", hash)
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("login", func(b *testing.B) {
		vars := map[string]any{"email": "ada@example.com", "password": "correct horse battery"}
		for b.Loop() {
			serveJSON(b, app.Handler, "", loginMutation, vars)
		}
	})
	_ = context.Background()
}
