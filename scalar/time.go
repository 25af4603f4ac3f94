// Package scalar marshals cloudkeys' custom GraphQL scalars; gqlgen.yml
// binds them here.
package scalar

import (
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// TimeLayout is how every Time value is written: RFC 3339 in UTC with
// exactly three fractional digits (milliseconds) and "Z", e.g.
// 2026-12-03T12:00:00.000Z — 24 characters for every year from 0000 to 9999.
//
// Why this one precision:
//   - it is what JavaScript's Date holds and what its toISOString writes, so
//     a browser client that parses a value and writes it back gets the same
//     string, and can compare the server's strings with its own;
//   - the length is fixed (no trailing zeros dropped, no offset), so the
//     strings sort as the instants do, and a column of them lines up;
//   - every common parser reads it (JavaScript's Date, Go's time.RFC3339,
//     Python's datetime.fromisoformat from 3.11, and 3.7–3.10 too, which
//     need exactly 3 or 6 digits).
//
// Values are truncated, never rounded: a time is never shown later than it
// happened (an expiry never later than the real one, a createdAt never in
// the future). The database keeps microseconds; nothing a client sends back
// is compared with a written Time at a finer precision than it was given
// (cursors are opaque and carry the full stored value).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// MarshalTime writes the Time scalar in TimeLayout, quoted; the zero time is
// null. It formats straight into one buffer, quotes included, where gqlgen's
// graphql.MarshalTime builds the formatted string and then a quoted copy of
// it with strconv.Quote: fewer allocations and no escaping scan (the text
// holds nothing JSON must escape). A 20-row cloudCredentials listing writes
// 40 of them (BENCHMARKS.md).
func MarshalTime(t time.Time) graphql.Marshaler {
	if t.IsZero() {
		return graphql.Null
	}
	return graphql.WriterFunc(func(w io.Writer) {
		w.Write(AppendTime(make([]byte, 0, 32), t))
	})
}

// AppendTime appends t in TimeLayout, quoted, to b.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout) // .000 truncates to milliseconds
	return append(b, '"')
}

// FormatTime returns t as the Time scalar writes it, without quotes.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// UnmarshalTime reads a Time argument: any RFC 3339 value, with any number
// of fractional digits (or none) and any offset, as gqlgen's
// graphql.UnmarshalTime reads it, returned in UTC. Its precision is kept
// (the domain decides what it stores).
func UnmarshalTime(v any) (time.Time, error) {
	t, err := graphql.UnmarshalTime(v)
	if err != nil || t.IsZero() {
		return t, err
	}
	return t.UTC(), nil
}
