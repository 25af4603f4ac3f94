package relay

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"cloudkeys/models"
)

// The endpoints the relay forwards, by API type (SPEC §8). Anything else —
// another path, or a known path with another method — is 404 and nothing is
// sent.
const (
	epChatCompletions = "POST chat/completions"
	epCompletions     = "POST completions"
	epEmbeddings      = "POST embeddings"
	epResponses       = "POST responses"
	epMessages        = "POST messages"
	epCountTokens     = "POST messages/count_tokens"
	epModels          = "GET models"
	epModel           = "GET models/{id}"
)

var endpoints = map[models.APIType][]string{
	models.APIOpenAI:    {epChatCompletions, epCompletions, epEmbeddings, epResponses, epModels, epModel},
	models.APIAnthropic: {epMessages, epCountTokens, epModels, epModel},
}

// route is a request matched against the allow-list.
type route struct {
	endpoint string   // one of the ep* names
	modelID  string   // the {id} of models/{id}, decoded
	segments []string // the decoded path segments after /v1/
}

// match checks rest — the still-escaped path after /v1/ — and finds its
// endpoint. A "." or ".." segment (also encoded: %2E), an empty segment (a
// doubled or trailing slash), an encoded slash (%2F) or an undecodable
// escape never matches. The model ID of models/{id} may contain "/"
// (meta-llama/Llama-3-8b): it is the rest of the path.
func match(api models.APIType, method, rest string) (route, bool) {
	if method != http.MethodGet && method != http.MethodPost {
		return route{}, false
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		if s == "" || strings.Contains(s, "%2F") || strings.Contains(s, "%2f") {
			return route{}, false
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == "." || d == ".." || strings.Contains(d, "/") {
			return route{}, false
		}
		segs[i] = d
	}
	ep, id := endpointOf(method, segs)
	if ep == "" || !slices.Contains(endpoints[api], ep) {
		return route{}, false
	}
	return route{endpoint: ep, modelID: id, segments: segs}, true
}

// endpointOf names the endpoint of method and the decoded path segments
// ("" if none), with the model ID of models/{id}.
func endpointOf(method string, segs []string) (endpoint, id string) {
	one := func(s string) bool { return len(segs) == 1 && segs[0] == s }
	two := func(s, t string) bool { return len(segs) == 2 && segs[0] == s && segs[1] == t }
	if method == http.MethodGet {
		switch {
		case one("models"):
			return epModels, ""
		case len(segs) == 2 && segs[0] == "models":
			return epModel, segs[1]
		case len(segs) > 2 && segs[0] == "models":
			return epModel, strings.Join(segs[1:], "/")
		}
		return "", ""
	}
	switch {
	case two("chat", "completions"):
		return epChatCompletions, ""
	case one("completions"):
		return epCompletions, ""
	case one("embeddings"):
		return epEmbeddings, ""
	case one("responses"):
		return epResponses, ""
	case one("messages"):
		return epMessages, ""
	case two("messages", "count_tokens"):
		return epCountTokens, ""
	}
	return "", ""
}

var errBaseURL = errors.New("relay: the base URL is not an absolute http(s) URL without user info")

// parseBaseURL checks a credential's base URL (cloudkeys checked it when it
// was stored; this is the last line).
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.Hostname() == "" || u.User != nil {
		return nil, errBaseURL
	}
	return u, nil
}

// upstreamURL joins the base URL's path with /v1/ and the checked segments
// (each escaped again, so the provider gets exactly what was matched), and
// merges the query (mergeQuery).
func upstreamURL(base *url.URL, segs []string, clientQuery string) *url.URL {
	u := *base
	var b strings.Builder
	b.WriteString(strings.TrimRight(base.EscapedPath(), "/"))
	b.WriteString("/v1")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	u.RawPath = b.String()
	u.Path, _ = url.PathUnescape(u.RawPath) // every part is a valid escape
	u.RawQuery = mergeQuery(base.RawQuery, clientQuery)
	u.Fragment, u.RawFragment = "", ""
	return &u
}

// mergeQuery keeps the base URL's query as it is and adds the client's
// parameters — except one whose name the base URL's query already has (the
// credential's owner set it: an api-version, a gateway's token), and one
// that does not decode or holds a ';' (which some servers split on).
func mergeQuery(base, client string) string {
	if client == "" {
		return base
	}
	fixed, _ := url.ParseQuery(base)
	var b strings.Builder
	b.WriteString(base)
	for pair := range strings.SplitSeq(client, "&") {
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || name == "" {
			continue
		}
		if _, err := url.QueryUnescape(v); err != nil {
			continue
		}
		if _, ok := fixed[name]; ok {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}
