package scalar

import (
	"bytes"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// timeShape is the one shape of a written Time: RFC 3339, UTC, milliseconds.
var timeShape = regexp.MustCompile(`^"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"$`)

func marshal(t time.Time) string {
	var b bytes.Buffer
	MarshalTime(t).MarshalGQL(&b)
	return b.String()
}

// Every Time is written with exactly three fractional digits in UTC,
// truncated (never rounded up), and the zero time is null.
func TestMarshalTimeOnePrecision(t *testing.T) {
	east := time.FixedZone("", 14*3600)
	west := time.FixedZone("", -(9*3600 + 30*60))
	for _, c := range []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, `null`},
		{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), `"2026-12-03T12:00:00.000Z"`},                            // whole seconds (a JWT's exp)
		{time.Date(2026, 11, 30, 6, 33, 26, 123456000, time.UTC), `"2026-11-30T06:33:26.123Z"`},                  // microseconds (the database)
		{time.Date(2026, 11, 30, 6, 33, 26, 100, time.UTC), `"2026-11-30T06:33:26.000Z"`},                        // nanoseconds
		{time.Date(2026, 11, 30, 6, 33, 26, 5e8, time.UTC), `"2026-11-30T06:33:26.500Z"`},                        // trailing zeros kept
		{time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), `"2026-12-31T23:59:59.999Z"`},                 // truncated, not rounded into next year
		{time.Date(2026, 12, 3, 12, 0, 0, 0, east), `"2026-12-02T22:00:00.000Z"`},                                // converted to UTC
		{time.Date(2026, 11, 30, 6, 33, 26, 5e8, west), `"2026-11-30T16:03:26.500Z"`},                            //
		{time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), `"0001-01-01T00:00:00.000Z"`},                                 // not zero: 1 ns after it
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), `"9999-12-31T23:59:59.999Z"`},                 //
		{time.Date(2026, 12, 3, 12, 0, 0, 0, time.FixedZone("CET", 3600)).Local(), `"2026-12-03T11:00:00.000Z"`}, // any location
	} {
		if got := marshal(c.in); got != c.want {
			t.Errorf("%v: wrote %s, want %s", c.in, got, c.want)
		}
	}
	now := time.Now()
	got := marshal(now)
	if !timeShape.MatchString(got) {
		t.Errorf("time.Now() written as %s", got)
	}
	if want := `"` + FormatTime(now) + `"`; got != want {
		t.Errorf("MarshalTime %s, FormatTime %s", got, want)
	}
}

// The written strings sort as the instants do, whatever their zone.
func TestMarshalTimeSortsAsInstants(t *testing.T) {
	base := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var times []time.Time
	for i, d := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond, time.Second, 10 * time.Second, time.Hour, 240 * time.Hour, 9000 * time.Hour} {
		tm := base.Add(d)
		if i%2 == 1 {
			tm = tm.In(time.FixedZone("", -5*3600))
		}
		times = append(times, tm)
	}
	var written []string
	for _, tm := range times {
		written = append(written, marshal(tm))
	}
	if !slices.IsSorted(written) {
		t.Errorf("written in order of time, the strings do not sort: %q", written)
	}
	for _, w := range written {
		if len(w) != len(`"2026-12-03T12:00:00.000Z"`) {
			t.Errorf("%s: not the fixed length", w)
		}
	}
}

// What MarshalTime writes reads back as the same instant, at millisecond
// precision; what gqlgen reads, UnmarshalTime reads (in UTC).
func TestUnmarshalTime(t *testing.T) {
	tm := time.Date(2026, 11, 30, 6, 33, 26, 123456789, time.FixedZone("", 3600))
	w := marshal(tm)
	back, err := UnmarshalTime(w[1 : len(w)-1])
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(tm.Truncate(time.Millisecond)) || back.Location() != time.UTC {
		t.Errorf("read back %v, want %v in UTC", back, tm.Truncate(time.Millisecond))
	}
	for _, v := range []any{nil, "", "2026-11-30T06:33:26Z", "2026-11-30T06:33:26.5+01:00", "2026-11-30T06:33:26.123456789-09:30",
		"2026-11-30 06:33:26", "yesterday", 42} {
		got, gotErr := UnmarshalTime(v)
		want, wantErr := graphql.UnmarshalTime(v)
		if !got.Equal(want) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%v: got %v, %v; gqlgen: %v, %v", v, got, gotErr, want, wantErr)
		}
		if gotErr == nil && !got.IsZero() && got.Location() != time.UTC {
			t.Errorf("%v: read in %v, want UTC", v, got.Location())
		}
	}
}

func BenchmarkMarshalTime(b *testing.B) {
	tm := time.Date(2026, 11, 30, 6, 33, 26, 123456000, time.UTC)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		MarshalTime(tm).MarshalGQL(&buf)
	}
}
