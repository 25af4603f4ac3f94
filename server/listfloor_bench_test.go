package server

// What the GraphQL layer alone costs the 20-row listing (BENCHMARKS.md,
// "Credentials and encryption"): cloudkeys' transport and gqlgen's
// executor answering { __typename } and the benchmark's cloudCredentials
// query from 20 credentials already in memory — no middleware, no @auth,
// no database, no decryption. Whatever the rest costs, the listing cannot
// be cheaper than this.
//
//	go test -run x -bench GraphQLLayer -benchmem ./server/

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"cloudkeys/config"
	"cloudkeys/graph"
	"cloudkeys/models"
	"cloudkeys/resolvers"
)

// inMemoryRoot answers cloudCredentials from a fixed list; every other
// resolver is the real one.
type inMemoryRoot struct {
	*resolvers.Resolver
	list []*models.CloudCredential
}

func (r inMemoryRoot) Query() graph.QueryResolver {
	return inMemoryQuery{r.Resolver.Query(), r.list}
}

type inMemoryQuery struct {
	graph.QueryResolver
	list []*models.CloudCredential
}

func (q inMemoryQuery) CloudCredentials(context.Context) ([]*models.CloudCredential, error) {
	return q.list, nil
}

func BenchmarkGraphQLLayer(b *testing.B) {
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	created := time.Date(2026, 11, 30, 7, 15, 30, 123456000, time.UTC)
	base := "https://api.openai.com"
	list := make([]*models.CloudCredential, 20)
	for i := range list {
		list[i] = &models.CloudCredential{ID: fmt.Sprintf("0b5c2f6e-8d1a-4c3b-9e7f-%012d", i),
			Name: fmt.Sprintf("credential %03d", i), BackendType: models.BackendOpenAI, APIType: models.APIOpenAI,
			BaseURL: &base, APIKey: fmt.Sprintf("sk-proj-BENCH%03d-abcdefghijklmnopqrstuvwxyz", i),
			CreatedAt: created, UpdatedAt: created}
	}
	es := graph.NewExecutableSchema(graph.Config{
		Resolvers: inMemoryRoot{&resolvers.Resolver{}, list},
		Directives: graph.DirectiveRoot{
			Auth: func(ctx context.Context, _ any, next graphql.Resolver, _ *models.Role) (any, error) { return next(ctx) },
		},
		Complexity: complexity(cfg.MaxCredentialsPerUser, cfg.RelayMaxKeysPerCredential),
	})
	h := graphQLServer(es, cfg, slog.New(slog.DiscardHandler), nil)
	for _, q := range []struct{ name, query string }{
		{"typename", `{ __typename }`},
		{"list20", `{ cloudCredentials { id name backendType apiType baseUrl apiKeyHint keyStatus createdAt updatedAt } }`},
	} {
		b.Run(q.name, func(b *testing.B) {
			body := []byte(fmt.Sprintf(`{"query":%q}`, q.query))
			b.ReportAllocs()
			cpu := ProcessCPU()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
