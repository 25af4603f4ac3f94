package server

import (
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"cloudkeys/config"
	"cloudkeys/graph"
	"cloudkeys/resolvers"
)

// Sizes of the in-memory caches: parsed and validated documents, and APQ
// hashes → query text. Both are LRU, so a client sending endless distinct
// documents only evicts older entries.
const (
	queryCacheSize = 1000
	apqCacheSize   = 1000
)

// newGraphQLHandler returns the GraphQL endpoint: the executable schema
// with the @auth directive and its field costs, served by graphQLServer.
func newGraphQLHandler(d Deps) *handler.Server {
	cfg := d.Config
	es := graph.NewExecutableSchema(graph.Config{
		Resolvers: &resolvers.Resolver{DB: d.DB, Auth: d.Auth, Log: d.Log, Probe: d.Probe,
			MaxCredentials: cfg.MaxCredentialsPerUser},
		Directives: graph.DirectiveRoot{
			Auth: d.Auth.Directive,
		},
		Complexity: complexity(cfg.MaxCredentialsPerUser),
	})
	return graphQLServer(es, d.Config, d.Log)
}

// graphQLServer serves es with cloudkeys' own GraphQL-over-HTTP transport
// (transport.go; none of gqlgen's), the configured limits, cloudkeys' error
// presenter, a parsed-query cache and automatic persisted queries.
func graphQLServer(es graphql.ExecutableSchema, cfg *config.Config, log *slog.Logger) *handler.Server {
	srv := handler.New(es)
	srv.AddTransport(transport{maxBody: cfg.MaxBodyBytes, timeout: cfg.RequestTimeout, tokenLimit: cfg.MaxTokens})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))
	srv.SetParserTokenLimit(cfg.MaxTokens)
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		// Validation errors would otherwise suggest the schema's names
		// ("Did you mean \"resetUserPassword\"?"): introspection by typo.
		srv.SetDisableSuggestion(true)
		srv.SetValidationRulesFn(rulesWithoutSuggestions)
	}
	// Operation-context extensions run in the order added: the cheap,
	// memoized limits before gqlgen's complexity calculation.
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](apqCacheSize)})
	srv.Use(operationLimits{maxDepth: cfg.MaxDepth, maxAliases: cfg.MaxAliases,
		maxFields: cfg.MaxComplexity, introspection: cfg.Introspection})
	if cfg.MaxComplexity > 0 {
		srv.Use(extension.FixedComplexityLimit(cfg.MaxComplexity))
	}
	srv.SetErrorPresenter(presentError(log))
	srv.SetRecoverFunc(recoverPanic(log))
	return srv
}

// rulesWithoutSuggestions are gqlparser's default validation rules with
// each rule that suggests names ("Did you mean …?") swapped for its variant
// that does not. gqlgen's SetDisableSuggestion swaps only the first two;
// unknown arguments, types, enum values and input fields would still
// suggest the schema's.
func rulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for _, quiet := range []core.Rule{
		rules.FieldsOnCorrectTypeRuleWithoutSuggestions,
		rules.ScalarLeafsRuleWithoutSuggestions,
		rules.KnownArgumentNamesRuleWithoutSuggestions,
		rules.KnownTypeNamesRuleWithoutSuggestions,
		rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
	} {
		r.RemoveRule(strings.TrimSuffix(quiet.Name, "WithoutSuggestions"))
		r.AddRule(quiet.Name, quiet.RuleFunc)
	}
	return r
}
