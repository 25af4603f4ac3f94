package server

import (
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"cloudkeys/graph"
	"cloudkeys/resolvers"
)

// newGraphQLHandler returns the GraphQL endpoint: the executable schema
// with the @auth directive, cloudkeys' error presenter, the limits of the
// configuration, a parsed-query cache and automatic persisted queries.
func newGraphQLHandler(d Deps) *handler.Server {
	es := graph.NewExecutableSchema(graph.Config{
		Resolvers: &resolvers.Resolver{DB: d.DB, Auth: d.Auth, Log: d.Log, Probe: d.Probe},
		Directives: graph.DirectiveRoot{
			Auth: d.Auth.Directive,
		},
		Complexity: complexity(),
	})
	srv := handler.New(es)
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(d.Config.MaxTokens)
	if d.Config.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.Use(extension.FixedComplexityLimit(d.Config.MaxComplexity))
	srv.SetErrorPresenter(presentError(d.Log))
	srv.SetRecoverFunc(recoverPanic(d.Log))
	_ = time.Second
	return srv
}
