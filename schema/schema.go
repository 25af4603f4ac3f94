// Package schema embeds the GraphQL schema files, the single source of
// truth of the API: gqlgen generates graph/ from them, and the server
// serves them as /schema.graphql.
package schema

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.graphql
var files embed.FS

// SDL returns the schema: every schema file, in name order, each preceded by
// a comment naming it.
func SDL() string {
	names, _ := fs.Glob(files, "*.graphql")
	sort.Strings(names)
	var b strings.Builder
	for i, name := range names {
		src, _ := files.ReadFile(name)
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("# schema/" + name + "\n\n")
		b.Write(src)
	}
	return b.String()
}
