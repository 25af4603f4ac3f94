package server

import (
	"log/slog"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"

	"cloudkeys/config"
	"cloudkeys/gqlhttp"
	"cloudkeys/graph"
	"cloudkeys/resolvers"
)

// newGraphQLHandler returns the GraphQL endpoint: the executable schema
// with the @auth directive and its field costs, served by graphQLServer.
func newGraphQLHandler(d Deps) *handler.Server {
	cfg := d.Config
	es := graph.NewExecutableSchema(graph.Config{
		Resolvers: &resolvers.Resolver{DB: d.DB, Auth: d.Auth, Probe: d.Probe, Audit: d.Audit,
			MaxCredentials: cfg.MaxCredentialsPerUser, MaxRelayKeys: cfg.RelayMaxKeysPerCredential, Now: cfg.Now},
		Directives: graph.DirectiveRoot{
			Auth: d.Auth.Directive,
		},
		Complexity: complexity(cfg.MaxCredentialsPerUser, cfg.RelayMaxKeysPerCredential),
	})
	var onResult func(string)
	if d.Metrics != nil {
		onResult = d.Metrics.GraphQLResult
	}
	srv := graphQLServer(es, cfg, d.Log, onResult)
	if d.Tracing != nil {
		srv.Use(d.Tracing.GraphQL())
	}
	return srv
}

// graphQLServer serves es over HTTP with gqlhttp, the configured limits and
// cloudkeys' error presenter; onResult (nil: none) is told each response's
// outcome code.
func graphQLServer(es graphql.ExecutableSchema, cfg *config.Config, log *slog.Logger, onResult func(string)) *handler.Server {
	srv := gqlhttp.New(es, gqlhttp.Options{
		MaxBodyBytes: cfg.MaxBodyBytes, Timeout: cfg.RequestTimeout, MaxTokens: cfg.MaxTokens,
		MaxDepth: cfg.MaxDepth, MaxAliases: cfg.MaxAliases, MaxComplexity: cfg.MaxComplexity,
		Introspection: cfg.Introspection, OnResult: onResult,
	})
	srv.SetErrorPresenter(presentError(log))
	srv.SetRecoverFunc(recoverPanic(log))
	return srv
}
