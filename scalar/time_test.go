package scalar

import (
	"bytes"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalTime writes what gqlgen's graphql.MarshalTime writes, byte for byte.
func TestMarshalTimeMatchesGqlgen(t *testing.T) {
	for _, tm := range []time.Time{
		{},
		time.Date(2026, 11, 30, 6, 33, 26, 0, time.UTC),
		time.Date(2026, 11, 30, 6, 33, 26, 123456000, time.UTC),
		time.Date(2026, 11, 30, 6, 33, 26, 100, time.UTC),
		time.Date(2026, 11, 30, 6, 33, 26, 5e8, time.FixedZone("", -(9*3600+30*60))),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", 14*3600)),
		time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-42, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(),
	} {
		var got, want bytes.Buffer
		MarshalTime(tm).MarshalGQL(&got)
		graphql.MarshalTime(tm).MarshalGQL(&want)
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%v: got %s, gqlgen writes %s", tm, got.Bytes(), want.Bytes())
		}
	}
}

func TestUnmarshalTimeMatchesGqlgen(t *testing.T) {
	for _, v := range []any{nil, "", "2026-11-30T06:33:26Z", "2026-11-30T06:33:26.5+01:00", "2026-11-30 06:33:26", "yesterday", 42} {
		got, gotErr := UnmarshalTime(v)
		want, wantErr := graphql.UnmarshalTime(v)
		if !got.Equal(want) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%v: got %v, %v; gqlgen: %v, %v", v, got, gotErr, want, wantErr)
		}
	}
}
