package relay

import (
	"strings"
	"testing"

	"cloudkeys/models"
)

// scanPieces feeds s to a fresh scanner in pieces of n bytes (0: whole).
func scanPieces(sse bool, api models.APIType, s string, n int) (in, out int64) {
	sc := newUsageScanner(sse)
	b := []byte(s)
	if n <= 0 {
		n = len(b)
	}
	for len(b) > 0 {
		k := min(n, len(b))
		sc.write(b[:k])
		b = b[k:]
	}
	return sc.t.tokens(api)
}

func TestUsageJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		api     models.APIType
		doc     string
		in, out int64
	}{
		{"openai chat", models.APIOpenAI, `{"id":"x","choices":[{"message":{"content":"a \"usage\": {} } ]"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3}}}`, 11, 7},
		{"openai responses", models.APIOpenAI, `{"object":"response","output":[{"content":[{"text":"usage"}]}],"usage":{"input_tokens":5,"output_tokens":9,"input_tokens_details":{"cached_tokens":1}}}`, 5, 9},
		{"usage first", models.APIOpenAI, "{\n  \"usage\" : { \"prompt_tokens\" : 2 , \"completion_tokens\" : 3 } ,\n \"x\": 1}", 2, 3},
		{"anthropic with cache", models.APIAnthropic, `{"type":"message","content":[{"type":"text","text":"{\"usage\":{\"input_tokens\":999}}"}],"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":2,"output_tokens":7}}`, 16, 7},
		{"openai ignores cache names", models.APIOpenAI, `{"usage":{"input_tokens":4,"cache_read_input_tokens":100,"output_tokens":1}}`, 4, 1},
		{"nested usage ignored", models.APIOpenAI, `{"choices":[{"usage":{"prompt_tokens":50}}],"data":{"usage":{"prompt_tokens":60}}}`, 0, 0},
		{"usage null", models.APIOpenAI, `{"usage":null,"x":"y"}`, 0, 0},
		{"usage not an object", models.APIOpenAI, `{"usage":[{"prompt_tokens":5}]}`, 0, 0},
		{"escaped key is not usage", models.APIOpenAI, `{"us\u0061ge":{"prompt_tokens":5}}`, 0, 0},
		{"string value usage", models.APIOpenAI, `{"a":"usage","b":{"prompt_tokens":5}}`, 0, 0},
		{"escaped backslashes", models.APIOpenAI, `{"a":"\\\\","usage":{"prompt_tokens":8,"completion_tokens":1}}`, 8, 1},
		{"negative clipped", models.APIOpenAI, `{"usage":{"prompt_tokens":-5,"completion_tokens":2}}`, 0, 2},
		{"wrong type kept others", models.APIOpenAI, `{"usage":{"prompt_tokens":"x","completion_tokens":2}}`, 0, 2},
		{"too long", models.APIOpenAI, `{"usage":{"prompt_tokens":1,"pad":"` + strings.Repeat("x", maxUsageBytes) + `"}}`, 0, 0},
		{"not json", models.APIOpenAI, `<html>usage</html>`, 0, 0},
		{"truncated", models.APIOpenAI, `{"usage":{"prompt_tokens":1`, 0, 0},
	} {
		for _, n := range []int{0, 1, 2, 3, 7, 64} {
			if in, out := scanPieces(false, tt.api, tt.doc, n); in != tt.in || out != tt.out {
				t.Errorf("%s (pieces of %d): %d/%d, want %d/%d", tt.name, n, in, out, tt.in, tt.out)
			}
		}
	}
}

func TestUsageSSE(t *testing.T) {
	t.Parallel()
	anthropic := "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":25,"cache_creation_input_tokens":4,"cache_read_input_tokens":6,"output_tokens":1}}}` + "\n\n" +
		"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
		"event: content_block_delta\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\"usage\":{\"output_tokens\":500}"}}` + "\n\n" +
		"event: message_delta\n" + `data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":10}}` + "\n\n" +
		"event: message_delta\n" + `data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}` + "\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	openAI := `data: {"id":"c","choices":[{"delta":{"content":"Hi"}}],"usage":null}` + "\n\n" +
		`data: {"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}` + "\n\n" +
		"data: [DONE]\n\n"
	for _, tt := range []struct {
		name    string
		api     models.APIType
		stream  string
		in, out int64
	}{
		{"anthropic: message_delta replaces, cache counts", models.APIAnthropic, anthropic, 35, 15},
		{"anthropic CRLF", models.APIAnthropic, strings.ReplaceAll(anthropic, "\n", "\r\n"), 35, 15},
		{"anthropic: message_delta with input replaces it", models.APIAnthropic,
			`data: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":6,"output_tokens":1}}}` + "\n\n" +
				`data: {"type":"message_delta","usage":{"input_tokens":30,"cache_read_input_tokens":0,"output_tokens":9}}` + "\n\n", 30, 9},
		{"openai with usage", models.APIOpenAI, openAI, 11, 7},
		{"openai without usage", models.APIOpenAI, "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\ndata: [DONE]\n\n", 0, 0},
		{"responses", models.APIOpenAI,
			"event: response.created\n" + `data: {"type":"response.created","response":{"id":"r","usage":null}}` + "\n\n" +
				"event: response.output_text.delta\n" + `data: {"type":"response.output_text.delta","delta":"Hi"}` + "\n\n" +
				"event: response.completed\n" + `data: {"type":"response.completed","response":{"id":"r","output":[{"content":[{"text":"usage"}]}],"usage":{"input_tokens":12,"output_tokens":8}}}` + "\n\n", 12, 8},
		{"no space after data:", models.APIOpenAI, `data:{"usage":{"prompt_tokens":3,"completion_tokens":4}}` + "\n", 3, 4},
		{"last line without newline", models.APIOpenAI, `data: {"usage":{"prompt_tokens":3,"completion_tokens":4}}`, 3, 4},
		{"not a data line", models.APIOpenAI, `event: {"usage":{"prompt_tokens":3}}` + "\n" + `: {"usage":{"prompt_tokens":3}}` + "\n" + ` data: {"usage":{"prompt_tokens":3}}` + "\n", 0, 0},
		{"nested deeper is not usage", models.APIOpenAI, `data: {"message":{"content":[{"usage":{"input_tokens":3}}]}}` + "\n", 0, 0},
		{"long line", models.APIOpenAI, `data: {"response":{"output":"` + strings.Repeat("y", 100<<10) + `","usage":{"input_tokens":1,"output_tokens":2}}}` + "\n", 1, 2},
	} {
		for _, n := range []int{0, 1, 2, 5, 13, 4096} {
			if tt.name == "long line" && n < 13 && n != 0 {
				continue // slow, and no different from 13
			}
			if in, out := scanPieces(true, tt.api, tt.stream, n); in != tt.in || out != tt.out {
				t.Errorf("%s (pieces of %d): %d/%d, want %d/%d", tt.name, n, in, out, tt.in, tt.out)
			}
		}
	}
}

// TestUsageScannerBounded: a stream never makes the scanner hold more than
// a usage object.
func TestUsageScannerBounded(t *testing.T) {
	t.Parallel()
	sc := newUsageScanner(true)
	line := []byte(`data: {"usage":{"prompt_tokens":1,"pad":"` + strings.Repeat("z", 1<<20) + `"}}` + "\n")
	for i := 0; i < len(line); i += 1000 {
		sc.write(line[i:min(i+1000, len(line))])
	}
	if c := cap(sc.doc.capBuf); c > 2*maxUsageBytes {
		t.Errorf("the scanner holds %d bytes", c)
	}
}

func BenchmarkUsageScanner(b *testing.B) {
	json := []byte(`{"id":"chatcmpl-fake","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"` +
		strings.Repeat("Hello from the fake provider. ", 30) + `"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
	var sse []byte
	for range 50 {
		sse = append(sse, `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}`+"\n\n"...)
	}
	sse = append(sse, `data: {"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`+"\n\ndata: [DONE]\n\n"...)
	for _, bb := range []struct {
		name string
		sse  bool
		body []byte
	}{{"json", false, json}, {"sse", true, sse}} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				sc := newUsageScanner(bb.sse)
				for i := 0; i < len(bb.body); i += 512 {
					sc.write(bb.body[i:min(i+512, len(bb.body))])
				}
				if in, _ := sc.t.tokens(models.APIOpenAI); in != 11 {
					b.Fatal(in)
				}
			}
		})
	}
}
