package fakeprovider

// What a test sends the fake (or a relay in front of it) and reads back:
// request bodies in each protocol's shape, and the data lines of a stream.

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"time"
)

// ChatBody is an OpenAI chat/completions request for model; stream asks
// for a stream, includeUsage for its usage chunk.
func ChatBody(model string, stream, includeUsage bool) map[string]any {
	b := map[string]any{"model": model, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}
	if stream {
		b["stream"] = true
		if includeUsage {
			b["stream_options"] = map[string]any{"include_usage": true}
		}
	}
	return b
}

// MessagesBody is an Anthropic messages request for model.
func MessagesBody(model string, stream bool) map[string]any {
	b := map[string]any{"model": model, "max_tokens": 64, "messages": []any{map[string]any{"role": "user", "content": "hi"}}}
	if stream {
		b["stream"] = true
	}
	return b
}

// ReadData reads a stream's data lines until it ends, noting when each
// arrived.
func ReadData(r io.Reader) (data []string, at []time.Time, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data, at = append(data, line), append(at, time.Now())
		}
	}
	return data, at, sc.Err()
}

// StreamedText joins the text of an OpenAI or Anthropic stream's data
// lines.
func StreamedText(data []string) string {
	var b strings.Builder
	for _, d := range data {
		var ev struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Delta struct {
				Text string `json:"text"`
			} `json:"delta"`
		}
		if json.Unmarshal([]byte(d), &ev) != nil {
			continue
		}
		for _, c := range ev.Choices {
			b.WriteString(c.Delta.Content)
		}
		b.WriteString(ev.Delta.Text)
	}
	return b.String()
}
