package gqlhttp

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cloudkeys/apperr"
)

// operationLimits is a gqlgen extension that refuses an operation, after
// validation and before execution, when
//
//   - it nests fields deeper than maxDepth (DEPTH_LIMIT_EXCEEDED),
//   - it has more than maxAliases aliases (ALIAS_LIMIT_EXCEEDED), or
//   - it asks for __schema or __type while introspection is off
//     (GRAPHQL_VALIDATION_FAILED), or
//   - it selects more fields, once fragments are expanded, than maxFields
//     (COMPLEXITY_LIMIT_EXCEEDED): every field costs at least 1, so such
//     an operation is over the complexity limit anyway, and refusing it
//     here keeps gqlgen's complexity calculation, which expands every
//     fragment spread anew, from walking a fragment bomb (fragments that
//     each spread the next twice: a few hundred tokens, 2^30 fields).
//
// Depth is the number of fields on the longest path from the operation's
// root to a leaf: { me { id } } is 2. An introspection field (__schema,
// __type) counts as one level whatever it selects: gqlparser's
// MaxIntrospectionDepth rule already bounds how deep introspection nests,
// and GraphiQL's own introspection query, about a dozen levels of ofType,
// must keep working under the default limit.
//
// An alias is a field whose response name differs from its name (a: me);
// aliases inside fragments count once per place the fragment is spread, as
// the fields they stand for are resolved once per place. Fragments are
// measured once each and reused, so a document that spreads fragments
// exponentially costs linear time here.
//
// A limit of 0 turns it off. The checks run before gqlgen's complexity
// limit (extensions run in the order they are added), so the complexity
// calculation never walks a document these limits refuse.
type operationLimits struct {
	maxDepth      int
	maxAliases    int
	maxFields     int
	introspection bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = operationLimits{}

func (operationLimits) ExtensionName() string                   { return "OperationLimits" }
func (operationLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l operationLimits) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	m := measurer{doc: opCtx.Doc, memo: map[string]shape{}, active: map[string]bool{}}
	s := m.selectionSet(opCtx.Operation.SelectionSet)
	switch {
	case s.introspects && !l.introspection:
		return limitError(apperr.ValidationFailed, "introspection is disabled on this server")
	case l.maxDepth > 0 && s.depth > l.maxDepth:
		return limitError(apperr.DepthLimit, fmt.Sprintf(
			"the operation nests fields %d deep, deeper than the server's limit of %d", s.depth, l.maxDepth))
	case l.maxAliases > 0 && s.aliases > l.maxAliases:
		return limitError(apperr.AliasLimit, fmt.Sprintf(
			"the operation has %s aliases, more than the server's limit of %d", countText(s.aliases), l.maxAliases))
	case l.maxFields > 0 && s.fields > l.maxFields:
		return limitError(apperr.ComplexityLimit, fmt.Sprintf(
			"the operation selects %s fields once its fragments are expanded, more than the complexity limit of %d allows",
			countText(s.fields), l.maxFields))
	}
	return nil
}

func limitError(code apperr.Code, msg string) *gqlerror.Error { return RequestError(code, msg) }

// shape is what operationLimits measures of a selection set.
type shape struct {
	depth       int
	aliases     int // saturates at maxCount
	fields      int // saturates at maxCount
	introspects bool
}

// maxCount caps alias and field counts, which fragments spread in fragments can make
// grow exponentially.
const maxCount = 1 << 30

func countText(n int) string {
	if n >= maxCount {
		return fmt.Sprintf("at least %d", maxCount)
	}
	return fmt.Sprint(n)
}

type measurer struct {
	doc    *ast.QueryDocument
	memo   map[string]shape // fragment name → its shape
	active map[string]bool  // fragments being measured (a cycle guard; validation already refuses cycles)
}

func (m *measurer) selectionSet(set ast.SelectionSet) shape {
	var s shape
	for _, sel := range set {
		var c shape
		switch sel := sel.(type) {
		case *ast.Field:
			c = m.selectionSet(sel.SelectionSet)
			if sel.Name == "__schema" || sel.Name == "__type" {
				c.depth, c.introspects = 0, true
			}
			c.depth++
			c.fields = min(c.fields+1, maxCount)
			if sel.Alias != "" && sel.Alias != sel.Name {
				c.aliases = min(c.aliases+1, maxCount)
			}
		case *ast.InlineFragment:
			c = m.selectionSet(sel.SelectionSet)
		case *ast.FragmentSpread:
			c = m.fragment(sel.Name)
		}
		s.depth = max(s.depth, c.depth)
		s.aliases = min(s.aliases+c.aliases, maxCount)
		s.fields = min(s.fields+c.fields, maxCount)
		s.introspects = s.introspects || c.introspects
	}
	return s
}

func (m *measurer) fragment(name string) shape {
	if s, ok := m.memo[name]; ok {
		return s
	}
	def := m.doc.Fragments.ForName(name)
	if def == nil || m.active[name] {
		return shape{}
	}
	m.active[name] = true
	s := m.selectionSet(def.SelectionSet)
	delete(m.active, name)
	m.memo[name] = s
	return s
}
