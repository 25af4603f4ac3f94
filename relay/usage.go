package relay

import (
	"bytes"
	"io"

	"cloudkeys/models"
)

// Token counts are read from the provider's answer as its bytes pass to the
// client (countingBody). Nothing is buffered but a usage object itself
// (bounded by maxUsageBytes): a JSON answer goes through one incremental
// scanner (docScanner); a stream is cut into lines as it passes, and only
// its data lines that mention "usage" go through the scanner, one JSON
// document per line. The usage objects looked at are:
//
//   - JSON answers: the top-level "usage" (OpenAI chat/completions,
//     completions, embeddings: prompt_tokens/completion_tokens; OpenAI
//     responses: input_tokens/output_tokens; Anthropic messages:
//     input_tokens + cache_creation_input_tokens + cache_read_input_tokens,
//     output_tokens).
//   - Streams: a chunk's top-level "usage" (OpenAI's last chunk when the
//     client set stream_options.include_usage; Anthropic's message_delta),
//     and "message.usage" / "response.usage" (Anthropic's message_start,
//     OpenAI's response.completed).
//
// A count replaces the one read before, field by field: a stream's later
// usage is cumulative (Anthropic's message_delta carries the output so far,
// not an increment, and replaces message_start's; OpenAI's last chunk the
// totals).

// maxUsageBytes bounds the usage object kept; a longer one is skipped.
const maxUsageBytes = 8 << 10

// tally is the counts read so far.
type tally struct {
	input, output, cacheCreation, cacheRead int64
}

// field is where the count named key goes, in either protocol's names;
// nil for any other member.
func (t *tally) field(key []byte) *int64 {
	switch string(key) {
	case "prompt_tokens", "input_tokens": // OpenAI chat/completions; Anthropic, OpenAI responses
		return &t.input
	case "completion_tokens", "output_tokens":
		return &t.output
	case "cache_creation_input_tokens":
		return &t.cacheCreation
	case "cache_read_input_tokens":
		return &t.cacheRead
	}
	return nil
}

// apply reads a usage object — a whole JSON object, as docScanner hands it
// over — member by member (it is small and flat; this is cheaper than
// encoding/json), and keeps the counts it names: a count replaces the one
// read before. Members that are not counts (nested details, null, a
// number that is not an integer) are skipped.
func (t *tally) apply(obj []byte) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return
		}
		end, esc, ok := scanString(obj, i)
		if !ok {
			return
		}
		key := obj[i+1 : end-1]
		if i = skipSpace(obj, end); i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipSpace(obj, i+1)
		vEnd, ok := skipValue(obj, i)
		if !ok {
			return
		}
		if dst := t.field(key); dst != nil && !esc {
			if n, ok := parseCount(obj[i:vEnd]); ok {
				*dst = n
			}
		}
		if i = skipSpace(obj, vEnd); i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

// parseCount reads a non-negative JSON integer (a negative one is 0).
func parseCount(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		return 0, true
	}
	return n, true
}

// tokens returns the input and output counts; Anthropic reports cache
// writes and reads apart from input_tokens, and they count as input.
func (t *tally) tokens(api models.APIType) (in, out int64) {
	in = t.input
	if api == models.APIAnthropic {
		in += t.cacheCreation + t.cacheRead
	}
	return in, t.output
}

// what a key names: the value that follows it.
const (
	keyOther  = iota
	keyUsage  // "usage": capture the object
	keyParent // "message" or "response" at the top: look for "usage" inside
)

// docScanner finds the usage objects of one JSON document fed in pieces:
// "usage" at the top level, or inside the top-level "message" or
// "response" object. It tracks only strings, escapes and nesting, and
// keeps the bytes of a usage object (bounded) until it closes.
type docScanner struct {
	t *tally

	depth     int
	inStr     bool
	esc       bool
	strIsKey  bool    // the current string is a key at a depth that matters
	expectKey bool    // the next string at this depth is a key
	obj       [3]bool // obj[d]: the container at depth d (1, 2) is an object
	key       [8]byte
	keyLen    int // -1: not a key of interest (too long, or escaped)
	pending   int // what the last key names (key*), until its value starts
	inParent  bool
	capturing bool
	capDepth  int
	capOver   bool
	capBuf    []byte
}

func (s *docScanner) reset() {
	*s = docScanner{t: s.t, capBuf: s.capBuf[:0]}
}

func (s *docScanner) keep(p []byte) {
	if !s.capturing || s.capOver {
		return
	}
	if len(s.capBuf)+len(p) > maxUsageBytes {
		s.capOver = true
		return
	}
	s.capBuf = append(s.capBuf, p...)
}

func (s *docScanner) keyBytes(p []byte) {
	if !s.strIsKey || s.keyLen < 0 {
		return
	}
	if s.keyLen+len(p) > len(s.key) {
		s.keyLen = -1
		return
	}
	s.keyLen += copy(s.key[s.keyLen:], p)
}

func (s *docScanner) endKey() {
	s.pending = keyOther
	if s.keyLen < 0 {
		return
	}
	switch k := string(s.key[:s.keyLen]); {
	case k == "usage":
		s.pending = keyUsage
	case s.depth == 1 && (k == "message" || k == "response"):
		s.pending = keyParent
	}
}

func (s *docScanner) feed(p []byte) {
	for i := 0; i < len(p); {
		if s.inStr {
			if s.esc {
				s.esc = false
				s.keep(p[i : i+1])
				i++
				continue
			}
			seg := p[i:]
			n := bytes.IndexByte(seg, '"')
			if n < 0 {
				n = len(seg)
			}
			if b := bytes.IndexByte(seg[:n], '\\'); b >= 0 {
				n = b
			}
			s.keyBytes(seg[:n])
			s.keep(seg[:n])
			i += n
			if i == len(p) {
				return
			}
			c := p[i]
			s.keep(p[i : i+1])
			i++
			if c == '\\' {
				s.esc = true
				if s.strIsKey {
					s.keyLen = -1
				}
				continue
			}
			s.inStr = false
			if s.strIsKey {
				s.endKey()
			}
			continue
		}
		c := p[i]
		s.keep(p[i : i+1])
		i++
		switch c {
		case '"':
			s.inStr = true
			s.strIsKey = s.expectKey && (s.depth == 1 || (s.depth == 2 && s.inParent))
			s.keyLen = 0
			s.expectKey = false
		case ',':
			if s.depth == 1 || s.depth == 2 {
				s.expectKey = s.obj[s.depth]
			}
			s.pending = keyOther
		case '{', '[':
			if c == '{' && s.pending == keyUsage && !s.capturing {
				s.capturing, s.capDepth, s.capOver = true, s.depth, false
				s.capBuf = append(s.capBuf[:0], '{')
			}
			s.depth++
			if s.depth == 2 {
				s.inParent = c == '{' && s.pending == keyParent
			}
			if s.depth <= 2 {
				s.obj[s.depth] = c == '{'
			}
			s.expectKey = c == '{'
			s.pending = keyOther
		case '}', ']':
			s.depth = max(s.depth-1, 0)
			if s.capturing && s.depth == s.capDepth {
				s.capturing = false
				if !s.capOver {
					s.t.apply(s.capBuf)
				}
			}
			s.expectKey = false
			s.pending = keyOther
		}
	}
}

// usageScanner reads the counts of one answer: a JSON document, or a
// server-sent-event stream.
type usageScanner struct {
	t   tally
	doc docScanner
	sse bool

	// The stream's line state.
	line   int  // lineStart, lineData, lineSkip
	prefix int  // bytes of "data:" matched at the start of the line
	fed    bool // part of the current data line went to doc already
}

const (
	lineStart = iota
	lineData
	lineSkip
)

var (
	dataPrefix = "data:"
	usageWord  = []byte(`"usage"`)
)

func newUsageScanner(sse bool) *usageScanner {
	s := &usageScanner{sse: sse}
	s.doc.t = &s.t
	return s
}

func (s *usageScanner) write(p []byte) {
	if !s.sse {
		s.doc.feed(p)
		return
	}
	for len(p) > 0 {
		switch s.line {
		case lineStart:
			for s.prefix < len(dataPrefix) && len(p) > 0 && p[0] == dataPrefix[s.prefix] {
				s.prefix++
				p = p[1:]
			}
			switch {
			case s.prefix == len(dataPrefix):
				s.line, s.prefix, s.fed = lineData, 0, false
				s.doc.reset()
			case len(p) == 0:
				// The prefix may go on in the next read.
			case p[0] == '\n':
				s.prefix = 0
				p = p[1:]
			default:
				s.line, s.prefix = lineSkip, 0
			}
		case lineSkip:
			nl := bytes.IndexByte(p, '\n')
			if nl < 0 {
				return
			}
			s.line, p = lineStart, p[nl+1:]
		case lineData:
			nl := bytes.IndexByte(p, '\n')
			if nl < 0 {
				// A line longer than this read: scan it as it comes.
				s.doc.feed(p)
				s.fed = true
				return
			}
			if line := p[:nl]; s.fed || bytes.Contains(line, usageWord) {
				s.doc.feed(line)
			}
			s.line, p = lineStart, p[nl+1:]
		}
	}
}

// countingBody passes a provider's response body through, showing every
// byte to the scanner (nil: not counted), and notes a read that failed
// before the end.
type countingBody struct {
	io.ReadCloser
	scan   *usageScanner
	broken bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && b.scan != nil {
		b.scan.write(p[:n])
	}
	if err != nil && err != io.EOF {
		b.broken = true
	}
	return n, err
}
