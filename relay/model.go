package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"cloudkeys/models"
)

// requestModels returns the string values of every top-level "model" member
// of a JSON request body, in order (a body may repeat the key, and parsers
// disagree on which one counts), and whether a "model" member holds
// anything but a string. ok is false when body is not a JSON object as far
// as the scan can tell; it is exact only for valid JSON, so allowedModels
// checks json.Valid first.
//
// The key is matched exactly, escapes decoded: encoding/json's
// case-insensitive field matching would let {"model":"x","Model":"y"} read
// as y here while the provider uses x.
func requestModels(body []byte) (vals []string, nonString, ok bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return nil, false, true
	}
	for i < len(body) {
		if body[i] != '"' {
			return vals, nonString, false
		}
		end, esc, good := scanString(body, i)
		if !good {
			return vals, nonString, false
		}
		isModel := string(body[i+1:end-1]) == "model"
		if esc {
			var k string
			isModel = json.Unmarshal(body[i:end], &k) == nil && k == "model"
		}
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != ':' {
			return vals, nonString, false
		}
		i = skipSpace(body, i+1)
		vEnd, good := skipValue(body, i)
		if !good {
			return vals, nonString, false
		}
		if isModel {
			var s string
			if body[i] == '"' && json.Unmarshal(body[i:vEnd], &s) == nil {
				vals = append(vals, s)
			} else {
				nonString = true
			}
		}
		i = skipSpace(body, vEnd)
		if i >= len(body) {
			return vals, nonString, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return vals, nonString, true
		default:
			return vals, nonString, false
		}
	}
	return vals, nonString, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString finds the end (one past the closing quote) of the string that
// starts at b[i] == '"', and whether it holds an escape.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	j := i + 1
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return 0, esc, false
		}
		q += j
		n := 0 // backslashes right before the quote
		for k := q - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		if !esc && bytes.IndexByte(b[j:q], '\\') >= 0 {
			esc = true
		}
		if n%2 == 0 {
			return q + 1, esc, true
		}
		j = q + 1
	}
}

// skipValue returns the end of the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _, ok := scanString(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j, j > i
}

// maxModelLog bounds Outcome.Model: the model is the client's text.
const maxModelLog = 200

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// maxModelList bounds the one answer the relay reads whole: GET models
// under allowedModels, rewritten to the allowed entries.
const maxModelList = 4 << 20

var errModelList = errors.New("relay: the provider's model list cannot be filtered")

// filterModels keeps only the allowed entries of a model list, in either
// protocol's shape ({"object":"list","data":[…]} or Anthropic's
// {"data":[…],"has_more":…,"first_id":…,"last_id":…}). Anthropic's page
// bounds are set to the first and last entry kept (when one is), so that
// a client paging with after_id=last_id skips nothing allowed. A list that
// does not parse, or is larger than maxModelList, is not passed on at all.
func filterModels(res *http.Response, allowed models.ModelList) error {
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxModelList+1))
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("%w: %w", errModelList, err)
	}
	if len(raw) > maxModelList {
		return fmt.Errorf("%w: over %d bytes", errModelList, maxModelList)
	}
	var list map[string]json.RawMessage
	var entries []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || json.Unmarshal(list["data"], &entries) != nil {
		return errModelList
	}
	type entry struct {
		ID string `json:"id"`
	}
	kept := make([]json.RawMessage, 0, len(allowed))
	var first, last string
	for _, e := range entries {
		var m entry
		if json.Unmarshal(e, &m) == nil && allowed.Allows(m.ID) {
			if len(kept) == 0 {
				first = m.ID
			}
			kept, last = append(kept, e), m.ID
		}
	}
	list["data"], _ = json.Marshal(kept)
	if len(kept) > 0 {
		if _, ok := list["first_id"]; ok {
			list["first_id"], _ = json.Marshal(first)
		}
		if _, ok := list["last_id"]; ok {
			list["last_id"], _ = json.Marshal(last)
		}
	}
	body, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("%w: %w", errModelList, err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	return nil
}
