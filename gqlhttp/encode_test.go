package gqlhttp

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// encodeResponse writes what encoding/json wrote before it (members in the
// order errors, data, extensions, each omitted when empty), byte for byte,
// except that it leaves <, > and & unescaped, and never re-encodes data.
func TestEncodeResponseMatchesEncodingJSON(t *testing.T) {
	fieldErr := &gqlerror.Error{Message: "cloud credential not found", Path: ast.Path{ast.PathName("cloudCredential")},
		Extensions: map[string]any{"code": "NOT_FOUND"}}
	for name, resp := range map[string]*graphql.Response{
		"data":                 {Data: []byte(`{"cloudCredentials":[{"name":"<b>a & b</b>","id":"x"}]}`)},
		"request error":        {Errors: gqlerror.List{{Message: "bad", Extensions: map[string]any{"code": "BAD_REQUEST"}}}},
		"field error":          {Errors: gqlerror.List{fieldErr}, Data: []byte(`{"cloudCredential":null}`)},
		"null data":            {Errors: gqlerror.List{fieldErr}, Data: []byte(`null`)},
		"extensions":           {Data: []byte(`{"a":1}`), Extensions: map[string]any{"x": "<y>"}},
		"errors and extension": {Errors: gqlerror.List{fieldErr}, Extensions: map[string]any{"retryAfter": 3}},
		"nothing":              {},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := encodeResponse(resp)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(struct {
				Errors     gqlerror.List   `json:"errors,omitempty"`
				Data       json.RawMessage `json:"data,omitempty"`
				Extensions map[string]any  `json:"extensions,omitempty"`
			}{resp.Errors, resp.Data, resp.Extensions}); err != nil {
				t.Fatal(err)
			}
			if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
				t.Fatalf("got  %s\nwant %s", got, w)
			}
		})
	}
}
