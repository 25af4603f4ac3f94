package gqlhttp

import (
	"mime"
	"strconv"
	"strings"
)

// negotiate picks the response media type from the request's Accept
// headers, or reports false when they allow neither type cloudkeys writes
// (the caller answers 406, the RECOMMENDED choice of spec § Body).
//
// Quality values and precedence follow RFC 9110 § 12.5.1: each of our two
// types takes the q of the most specific range that matches it (the type
// itself, then application/*, then */*), and q=0 excludes it. A range with
// a charset other than UTF-8 does not match. The type with the higher q
// wins; at equal q, application/graphql-response+json, the spec's preferred
// type. A client that names neither type, only wildcards (curl's */*, a
// browser's default), or sends no Accept at all, gets application/json:
// such a client has not said it understands the newer type, and
// application/json is the one whose status codes every legacy client
// expects (spec § Accept, § Legacy Watershed; README.md, "GraphQL over HTTP").
func negotiate(accept []string) (string, bool) {
	header := strings.TrimSpace(strings.Join(accept, ","))
	if header == "" {
		return mediaJSON, true
	}
	gr, js := match{}, match{}
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mt, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue // a malformed range matches nothing
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		switch mt {
		case mediaGraphQLResponse:
			gr.see(3, q)
		case mediaJSON:
			js.see(3, q)
		case "application/*":
			gr.see(2, q)
			js.see(2, q)
		case "*/*":
			gr.see(1, q)
			js.see(1, q)
		}
	}
	switch {
	case gr.q <= 0 && js.q <= 0:
		return "", false
	case gr.specificity < 3 && js.specificity < 3 && js.q > 0:
		return mediaJSON, true // wildcards only
	case gr.q >= js.q:
		return mediaGraphQLResponse, true
	default:
		return mediaJSON, true
	}
}

// match is the most specific Accept range seen for one media type.
type match struct {
	specificity int // 0: none; 1: */*; 2: application/*; 3: the type itself
	q           float64
}

func (m *match) see(specificity int, q float64) {
	switch {
	case specificity > m.specificity:
		m.specificity, m.q = specificity, q
	case specificity == m.specificity:
		m.q = max(m.q, q)
	}
}
