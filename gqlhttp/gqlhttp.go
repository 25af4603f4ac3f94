// Package gqlhttp serves a gqlgen executable schema over HTTP as the GraphQL
// over HTTP specification asks: its own transport (transport.go, replacing
// gqlgen's stock ones), Accept negotiation (accept.go), limits on the
// document (limits.go) and on the request, a parsed-query cache and
// automatic persisted queries. It knows nothing of cloudkeys: no schema, no
// rule about who may do what; its refusals carry apperr codes, and their
// HTTP statuses come from apperr's one table.
//
// What may import it: the HTTP layer (server). It imports only gqlgen,
// gqlparser and apperr.
package gqlhttp

import (
	"fmt"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"cloudkeys/apperr"
)

// Sizes of the in-memory caches: parsed and validated documents, and APQ
// hashes → query text. Both are LRU, so a client sending endless distinct
// documents only evicts older entries.
const (
	queryCacheSize = 1000
	apqCacheSize   = 1000
)

// Options are the limits of the GraphQL endpoint. A limit of 0 turns it off.
type Options struct {
	MaxBodyBytes  int64         // bytes of a POST body (413)
	Timeout       time.Duration // per request (TIMEOUT)
	MaxTokens     int           // parser tokens of a document (TOKEN_LIMIT_EXCEEDED)
	MaxDepth      int           // nesting of fields (DEPTH_LIMIT_EXCEEDED)
	MaxAliases    int           // aliases (ALIAS_LIMIT_EXCEEDED)
	MaxComplexity int           // gqlgen's complexity (COMPLEXITY_LIMIT_EXCEEDED)
	// Introspection allows __schema and __type; without it validation
	// errors suggest no names of the schema either.
	Introspection bool
	// OnResult, if set, is called once per GraphQL response written
	// (refusals of the transport included) with its outcome: ResultCode.
	// It must be cheap and safe for concurrent use (metrics).
	OnResult func(code string)
}

// New serves es with this package's transport (none of gqlgen's), the
// limits of o, a parsed-query cache and automatic persisted queries. The
// caller sets the error presenter and recover function.
func New(es graphql.ExecutableSchema, o Options) *handler.Server {
	srv := handler.New(es)
	srv.AddTransport(transport{maxBody: o.MaxBodyBytes, timeout: o.Timeout, tokenLimit: o.MaxTokens, onResult: o.OnResult})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))
	srv.SetParserTokenLimit(o.MaxTokens)
	if o.Introspection {
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
	srv.Use(operationLimits{maxDepth: o.MaxDepth, maxAliases: o.MaxAliases,
		maxFields: o.MaxComplexity, introspection: o.Introspection})
	if o.MaxComplexity > 0 {
		srv.Use(extension.FixedComplexityLimit(o.MaxComplexity))
	}
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

// tokenLimitPrefix starts gqlparser's message for a document over the token
// limit (parser.ParseQueryWithTokenLimit); a test pins it.
const tokenLimitPrefix = "exceeded token limit of "

// NameTokenLimit returns the error a presenter shows for e when e is
// gqlparser's token-limit refusal, which says only "exceeded token limit of
// N" under the generic parse code: the same refusal under its own code.
// For any other error it returns nil.
func NameTokenLimit(e *gqlerror.Error) *gqlerror.Error {
	if CodeOf(e) != apperr.ParseFailed || !strings.HasPrefix(e.Message, tokenLimitPrefix) {
		return nil
	}
	return RequestError(apperr.TokenLimit, fmt.Sprintf("the document is too long: it has more than %s tokens, the server's limit",
		strings.TrimPrefix(e.Message, tokenLimitPrefix)))
}
