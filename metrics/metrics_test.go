package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNilIsOff(t *testing.T) {
	var m *Metrics
	m.HTTPRequest(RouteGraphQL, 200, time.Millisecond)
	m.GraphQLResult("OK")
	m.SignIn("succeeded")
	m.ThrottleRefused("sign_in")
	m.KeyOpenFailed("not_a_jwe")
	m.RelayCall("OPENAI", "GROQ", "POST chat/completions", 200, time.Millisecond, 1, 2)
	m.HashPools(nil)
	m.DatabasePool(nil)
	m.AuditChainHead(func() (int64, string) { return 0, "" })
}

func TestLabelsStayInTheirSets(t *testing.T) {
	m := New()
	m.HTTPRequest(Route(200), 0, time.Millisecond)
	m.HTTPRequest(RouteRelay, 999, time.Millisecond)
	m.HTTPRequest(RouteRelay, 529, time.Millisecond)
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("other", "other")); got != 1 {
		t.Errorf("route and status out of range: %v", got)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("relay", "other")); got != 1 {
		t.Errorf("status 999: %v", got)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("relay", "529")); got != 1 {
		t.Errorf("status 529: %v", got)
	}
	for i := range maxCodes + 10 {
		m.GraphQLResult(fmt.Sprintf("CODE_%d", i))
	}
	if n := testutil.CollectAndCount(m.graphql); n > maxCodes+1 {
		t.Errorf("%d code series, want at most %d", n, maxCodes+1)
	}
	if got := testutil.ToFloat64(m.graphql.WithLabelValues("OTHER")); got < 10 {
		t.Errorf("OTHER = %v", got)
	}
	m.RelayCall("OPENAI", "", "", 401, 0, 0, 0)
	if got := testutil.ToFloat64(m.relayCalls.WithLabelValues("openai", "none", "401")); got != 1 {
		t.Errorf("relay refusal: %v", got)
	}
}

// TestRecordingAllocatesNothing: once a route and status, or a code, has
// been seen, counting a request allocates nothing.
func TestRecordingAllocatesNothing(t *testing.T) {
	m := New()
	m.HTTPRequest(RouteGraphQL, 200, time.Millisecond)
	m.GraphQLResult("OK")
	if n := testing.AllocsPerRun(1000, func() { m.HTTPRequest(RouteGraphQL, 200, time.Millisecond) }); n != 0 {
		t.Errorf("HTTPRequest allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { m.GraphQLResult("OK") }); n != 0 {
		t.Errorf("GraphQLResult allocates %v times", n)
	}
}

func BenchmarkHTTPRequest(b *testing.B) {
	m := New()
	for b.Loop() {
		m.HTTPRequest(RouteGraphQL, 200, time.Millisecond)
	}
}
