package scalar

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
)

// MaxCount is the largest Count: 2^53 − 1, the largest integer every JSON
// reader (JavaScript's number included) holds exactly.
const MaxCount = 1<<53 - 1

// MarshalCount writes the Count scalar, a non-negative integer up to
// MaxCount, as a JSON number (GraphQL's Int is 32-bit, too small for token
// counts). Values outside the range are clamped: a counter never goes
// below 0, and one past 2^53 − 1 would be read wrong by JavaScript.
func MarshalCount(n int64) graphql.Marshaler {
	n = min(max(n, 0), MaxCount)
	return graphql.WriterFunc(func(w io.Writer) {
		var buf [20]byte
		w.Write(strconv.AppendInt(buf[:0], n, 10))
	})
}

// UnmarshalCount reads a Count argument: an integer 0 to MaxCount.
func UnmarshalCount(v any) (int64, error) {
	var n int64
	switch v := v.(type) {
	case int:
		n = int64(v)
	case int64:
		n = v
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return 0, fmt.Errorf("Count must be an integer")
		}
		n = i
	default:
		return 0, fmt.Errorf("Count must be an integer, not %T", v)
	}
	if n < 0 || n > MaxCount {
		return 0, fmt.Errorf("Count must be between 0 and %d", int64(MaxCount))
	}
	return n, nil
}
