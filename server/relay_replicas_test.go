package server_test

// The relay across replicas, restarts and streams, end to end through the
// whole server: two replicas on one PostgreSQL share relay keys, their
// revocation, their owners' status, their rate limits and their usage;
// usage written by the meter survives a restart; streamed events pass one
// by one, a client that goes away ends the upstream call, and a stream the
// provider breaks ends the client's without hanging.

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloudkeys/config"
	"cloudkeys/relay/fakeprovider"
)

// replicaOf returns a relay environment for a second replica of e's app:
// another app on the same configuration (database, secrets, keys), the
// same fake provider and the same signed-in user, speaking to the new app.
func (e *relayEnv) replicaOf(t testing.TB, cfg *config.Config) *relayEnv {
	t.Helper()
	r := *e
	r.app = credApp(t, cfg)
	r.c = r.app.client(t).withToken(e.c.token)
	t.Cleanup(func() { r.app.wantLogsWithout(t, e.openAIKey, e.anthropicKey) })
	return &r
}

// usageCounts are the counters of a usage, without lastUsedAt.
type usageCounts struct{ requests, errors, input, output int64 }

func usageCountsOf(u usageJSON) usageCounts {
	return usageCounts{u.Requests, u.Errors, u.InputTokens, u.OutputTokens}
}

// okChatUsage is the usage of n successful non-streaming chat completions.
func okChatUsage(n int64) usageCounts {
	return usageCounts{n, 0, n * fakeprovider.InputTokens, n * fakeprovider.OutputTokens}
}

// bearerHeader is the header of a relay key as the OpenAI SDKs send it.
func bearerHeader(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

// wantChat calls POST chat/completions with secret and checks the
// status of the answer.
func (e *relayEnv) wantChat(t testing.TB, secret string, status int) relayAnswer {
	t.Helper()
	a := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o-mini", false, false), bearerHeader(secret)...)
	if a.status != status {
		t.Fatalf("%s: status %d, want %d: %s", e.app.URL, a.status, status, a.body)
	}
	return a
}

// TestRelayTwoReplicasOnPostgres: two replicas on one PostgreSQL database,
// as behind a load balancer. Whatever one does to relay keys and their
// owners, the other enforces on the next request; the per-minute limit and
// the usage counters are shared.
func TestRelayTwoReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	cfg := relayConfig(t)
	// A clock that stands still: the four calls of the rate limit fall in
	// one calendar minute whenever the test runs.
	useClock(cfg)
	usePostgres(t, cfg)
	a := newRelayEnv(t, cfg, fakeprovider.Options{})
	cfgB := *cfg // same database and secrets, its own process state
	b := a.replicaOf(t, &cfgB)
	sent := func() int { return len(a.fake.Requests()) }

	// A key made on A works on B (and on A).
	key, secret := a.c.createRelayKey(a.openAI.ID, nil)
	defer a.app.wantLogsWithout(t, secret)
	b.wantChat(t, secret, 200)
	a.wantChat(t, secret, 200)

	// Revoked on A: refused on B at the next request, nothing sent.
	var revoked relayKeyJSON
	a.c.must(`mutation($id: ID!) { revokeRelayKey(id: $id) { id revokedAt } }`, map[string]any{"id": key.ID}, "revokeRelayKey", &revoked)
	if revoked.RevokedAt == nil {
		t.Fatalf("revokeRelayKey: %+v", revoked)
	}
	n := sent()
	if typ, _ := b.wantChat(t, secret, 401).errorShape(t, false); typ == "" {
		t.Error("the 401 has no error type")
	}
	if sent() != n {
		t.Error("a revoked key's call reached the provider")
	}

	// A user disabled by an admin on A: their key is refused on B.
	var me userJSON
	a.c.must(`{ me { id isAdmin } }`, nil, "me", &me)
	if !me.IsAdmin {
		t.Fatal("the first account is not an admin")
	}
	bob, bobUser := a.app.user(t, "bob@example.com")
	bobCred := bob.createCred(map[string]any{"name": "bob's", "backendType": "OPENAI_COMPATIBLE", "apiKey": a.openAIKey, "baseUrl": a.fake.URL})
	_, bobSecret := bob.createRelayKey(bobCred.ID, nil)
	defer a.app.wantLogsWithout(t, bobSecret)
	b.wantChat(t, bobSecret, 200)
	a.c.must(`mutation($id: ID!) { updateUser(id: $id, input: {status: DISABLED}) { id status } }`,
		map[string]any{"id": bobUser.ID}, "updateUser", new(map[string]any))
	n = sent()
	b.wantChat(t, bobSecret, 401)
	a.wantChat(t, bobSecret, 401)
	if sent() != n {
		t.Error("a disabled user's key reached the provider")
	}

	// requestsPerMinute 3, counted in the database: A, B, A pass, the
	// fourth (on B) is 429 with Retry-After.
	limited, limitedSecret := a.c.createRelayKey(a.openAI.ID, map[string]any{"name": "limited", "requestsPerMinute": 3})
	defer a.app.wantLogsWithout(t, limitedSecret)
	n = sent()
	a.wantChat(t, limitedSecret, 200)
	b.wantChat(t, limitedSecret, 200)
	a.wantChat(t, limitedSecret, 200)
	over := b.wantChat(t, limitedSecret, 429)
	if s, err := strconv.Atoi(over.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After %q, want 1–60 seconds", over.header.Get("Retry-After"))
	}
	over.errorShape(t, false)
	if got := sent() - n; got != 3 {
		t.Errorf("the provider received %d calls of the limited key, want 3", got)
	}
	a.wantChat(t, limitedSecret, 429) // and on A too

	// Usage recorded by both replicas adds up, read on either.
	shared, sharedSecret := a.c.createRelayKey(a.openAI.ID, map[string]any{"name": "shared"})
	defer a.app.wantLogsWithout(t, sharedSecret)
	for i := range 5 {
		[]*relayEnv{a, b}[i%2].wantChat(t, sharedSecret, 200) // 3 on A, 2 on B
	}
	if err := a.app.Meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.app.Meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The limited key: 3 calls passed, 2 refused with 429 (errors).
	wantLimited := okChatUsage(3)
	wantLimited.requests, wantLimited.errors = 5, 2
	// The credential: 2 calls of the revoked key and its refusal (an error:
	// the key is known, so the refusal counts against it), the limited
	// key's 5, the shared key's 5. Bob's calls are his credential's.
	wantCred := okChatUsage(2 + 3 + 5)
	wantCred.requests, wantCred.errors = 13, 3
	for _, r := range []*relayEnv{a, b} {
		if got := usageCountsOf(r.keyUsage(t, shared.ID)); got != okChatUsage(5) {
			t.Errorf("%s: shared key usage %+v, want %+v", r.app.URL, got, okChatUsage(5))
		}
		if got := usageCountsOf(r.keyUsage(t, limited.ID)); got != wantLimited {
			t.Errorf("%s: limited key usage %+v, want %+v", r.app.URL, got, wantLimited)
		}
		u := r.credUsage(t, a.openAI.ID)
		if got := usageCountsOf(u); got != wantCred || u.LastUsedAt == nil {
			t.Errorf("%s: credential usage %+v, want %+v and lastUsedAt", r.app.URL, u, wantCred)
		}
	}
}

// relayDayJSON is one entry of usageByDay.
type relayDayJSON struct {
	Day          string `json:"day"`
	Requests     int64  `json:"requests"`
	Errors       int64  `json:"errors"`
	InputTokens  int64  `json:"inputTokens"`
	OutputTokens int64  `json:"outputTokens"`
}

func (d relayDayJSON) total() usageCounts {
	return usageCounts{d.Requests, d.Errors, d.InputTokens, d.OutputTokens}
}

// TestRelayUsageSurvivesRestart: the usage counted in memory is written
// when the app closes (it is not yet in the database before), and a new app
// on the same SQLite file reads it all, in totals and by day.
func TestRelayUsageSurvivesRestart(t *testing.T) {
	t.Parallel()
	cfg := relayConfig(t)
	cfg.RelayUsageFlush = time.Minute // the longest allowed: only Close writes
	clock := useClock(cfg)            // the day cannot change under the test
	e := newRelayEnv(t, cfg, fakeprovider.Options{})
	oKey, oSecret := e.c.createRelayKey(e.openAI.ID, nil)
	aKey, aSecret := e.c.createRelayKey(e.anthropic.ID, nil)
	defer e.app.wantLogsWithout(t, oSecret, aSecret)

	for range 3 {
		e.wantChat(t, oSecret, 200)
	}
	res := e.send(t, context.Background(), "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("gpt-4o", true, true), bearerHeader(oSecret)...)
	if data, _ := readEvents(t, res); res.StatusCode != 200 || fakeprovider.StreamedText(data) != fakeprovider.Text {
		t.Fatalf("stream: status %d, text %q", res.StatusCode, fakeprovider.StreamedText(data))
	}
	res.Body.Close()
	if a := e.call(t, "POST", "/relay/v1/chat/completions", fakeprovider.ChatBody("fail-500", false, false), bearerHeader(oSecret)...); a.status != 500 {
		t.Fatalf("fail-500: status %d", a.status)
	}
	for range 2 {
		res := e.send(t, context.Background(), "POST", "/relay/v1/messages", fakeprovider.MessagesBody("claude-3-5-haiku-latest", true), "x-api-key", aSecret)
		readEvents(t, res)
		res.Body.Close()
	}
	wantO := okChatUsage(4)
	wantO.requests, wantO.errors = 5, 1
	wantA := usageCounts{2, 0, 2 * fakeprovider.AnthropicInput, 2 * fakeprovider.OutputTokens}

	if n := e.app.count(t, "SELECT COUNT(*) FROM relay_usage"); n != 0 {
		t.Fatalf("%d usage rows written before Close; the test means Close to write them", n)
	}
	e.app.srv.Close()
	if err := e.app.App.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// The same SQLite file, keys and secrets; the access token still works.
	restarted := e.replicaOf(t, cfg)
	if got := usageCountsOf(restarted.keyUsage(t, oKey.ID)); got != wantO {
		t.Errorf("OpenAI key usage after the restart %+v, want %+v", got, wantO)
	}
	if got := usageCountsOf(restarted.keyUsage(t, aKey.ID)); got != wantA {
		t.Errorf("Anthropic key usage after the restart %+v, want %+v", got, wantA)
	}
	u := restarted.credUsage(t, e.openAI.ID)
	if got := usageCountsOf(u); got != wantO || u.LastUsedAt == nil {
		t.Errorf("credential usage after the restart %+v, want %+v and lastUsedAt", u, wantO)
	}

	// By day: three entries, newest first, today's holding the counts.
	today := clock.Now().UTC()
	wantDays := []string{today.Format(time.DateOnly), today.AddDate(0, 0, -1).Format(time.DateOnly), today.AddDate(0, 0, -2).Format(time.DateOnly)}
	checkDays := func(what string, days []relayDayJSON, want usageCounts) {
		t.Helper()
		if len(days) != 3 {
			t.Fatalf("%s: usageByDay(days: 3) has %d entries: %+v", what, len(days), days)
		}
		for i, d := range days {
			w := usageCounts{}
			if i == 0 {
				w = want
			}
			if d.Day != wantDays[i] || d.total() != w {
				t.Errorf("%s: day %d is %+v, want %s with %+v", what, i, d, wantDays[i], w)
			}
		}
	}
	var keys []struct {
		ID         string         `json:"id"`
		UsageByDay []relayDayJSON `json:"usageByDay"`
	}
	restarted.c.must(`{ relayKeys { id usageByDay(days: 3) { day requests errors inputTokens outputTokens } } }`, nil, "relayKeys", &keys)
	seen := 0
	for _, k := range keys {
		switch k.ID {
		case oKey.ID:
			checkDays("OpenAI key", k.UsageByDay, wantO)
			seen++
		case aKey.ID:
			checkDays("Anthropic key", k.UsageByDay, wantA)
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("relayKeys lists %d of the 2 keys", seen)
	}
	var cred struct {
		UsageByDay []relayDayJSON `json:"usageByDay"`
	}
	restarted.c.must(`query($id: ID!) { cloudCredential(id: $id) { usageByDay(days: 3) { day requests errors inputTokens outputTokens } } }`,
		map[string]any{"id": e.anthropic.ID}, "cloudCredential", &cred)
	checkDays("Anthropic credential", cred.UsageByDay, wantA)
}

// e2eStream is one protocol's streaming call.
type e2eStream struct {
	name, path string
	body       func(model string) any
	header     func(secret string) []string
	text       string // in the data of a text event
}

var e2eStreams = []e2eStream{
	{"OpenAI", "/relay/v1/chat/completions", func(m string) any { return fakeprovider.ChatBody(m, true, true) }, bearerHeader, `"content":`},
	{"Anthropic", "/relay/v1/messages", func(m string) any { return fakeprovider.MessagesBody(m, true) },
		func(s string) []string { return []string{"x-api-key", s} }, `"text_delta"`},
}

// streamEnv is a relay env and a relay key of the case's credential.
func (sc e2eStream) env(t *testing.T, fo fakeprovider.Options) (*relayEnv, relayKeyJSON, string) {
	e := newRelayEnv(t, nil, fo)
	cred := e.openAI
	if sc.name == "Anthropic" {
		cred = e.anthropic
	}
	key, secret := e.c.createRelayKey(cred.ID, nil)
	t.Cleanup(func() { e.app.wantLogsWithout(t, secret) })
	return e, key, secret
}

// callLine waits (at most 5 s) for the log line of the relay key's call.
func (e *relayEnv) callLine(t testing.TB, keyID string) string {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		for line := range strings.SplitSeq(e.app.Logs(), "\n") {
			if strings.Contains(line, `msg="relayed call"`) && strings.Contains(line, "relay_key_id="+keyID) {
				return line
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no log line of the call of relay key %s within 5 s", keyID)
		}
	}
}

// TestRelayStreamingEndToEnd: streams through the whole server (gateway,
// middleware, forwarder).
func TestRelayStreamingEndToEnd(t *testing.T) {
	t.Parallel()
	for _, sc := range e2eStreams {
		// Each event reaches the client as the provider sends it: the text
		// events arrive spread over the stream, each before the provider
		// sends the next, not together at the end.
		t.Run(sc.name+"/events arrive as sent", func(t *testing.T) {
			t.Parallel()
			const delay, events = 150 * time.Millisecond, 5
			e, _, secret := sc.env(t, fakeprovider.Options{EventDelay: delay, Events: events})
			res := e.send(t, context.Background(), "POST", sc.path, sc.body("gpt-4o"), sc.header(secret)...)
			data, at := readEvents(t, res)
			res.Body.Close()
			if res.StatusCode != 200 || fakeprovider.StreamedText(data) != fakeprovider.Text {
				t.Fatalf("status %d, text %q", res.StatusCode, fakeprovider.StreamedText(data))
			}
			// One data line per event the provider sent (OpenAI's [DONE] is
			// not counted by the fake): data[i] is the fake's event i.
			sentAt := e.fake.Last().Sent()
			if len(data) < len(sentAt) {
				t.Fatalf("%d events received, %d sent", len(data), len(sentAt))
			}
			var text []int
			for i, d := range data {
				if strings.Contains(d, sc.text) {
					text = append(text, i)
				}
			}
			if len(text) != events {
				t.Fatalf("%d text events, want %d: %q", len(text), events, data)
			}
			first, last := at[text[0]], at[text[len(text)-1]]
			if spread, least := last.Sub(first), 3*(events-1)*delay/4; spread < least {
				t.Errorf("the text events arrived within %v of each other, want at least %v (the provider spread them over %v)",
					spread, least, (events-1)*delay)
			}
			for _, i := range text[:len(text)-1] {
				if !at[i].Before(sentAt[i+1]) {
					t.Errorf("text event %d arrived %v after the provider sent the next one", i, at[i].Sub(sentAt[i+1]))
				}
			}
		})

		// A client that goes away after the first event ends the upstream
		// request; the call counts as one request, no error, aborted.
		t.Run(sc.name+"/client disconnect cancels upstream", func(t *testing.T) {
			t.Parallel()
			e, key, secret := sc.env(t, fakeprovider.Options{EventDelay: 100 * time.Millisecond, Events: 100})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := e.send(t, ctx, "POST", sc.path, sc.body("gpt-4o"), sc.header(secret)...)
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			br := bufio.NewReader(res.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("before the first event: %v", err)
				}
				if strings.HasPrefix(line, "data: ") {
					break
				}
			}
			up := e.fake.Last()
			cancel()
			res.Body.Close()
			gone := time.Now()
			select {
			case <-up.Canceled:
				t.Logf("the provider's request was cancelled %v after the client went away", time.Since(gone))
			case <-time.After(5 * time.Second):
				t.Fatal("the provider's request was not cancelled within 5 s of the client going away")
			}
			select {
			case <-up.Done:
			case <-time.After(5 * time.Second):
				t.Fatal("the provider's handler did not finish within 5 s of the cancellation")
			}
			if n := len(up.Sent()); n >= 100 {
				t.Errorf("the provider sent the whole stream (%d events)", n)
			}
			if line := e.callLine(t, key.ID); !strings.Contains(line, "aborted=true") || !strings.Contains(line, "status=200") {
				t.Errorf("log line of the call: %s", line)
			}
			want := usageCounts{requests: 1}
			if sc.name == "Anthropic" {
				want.input, want.output = fakeprovider.AnthropicInput, 1 // message_start's counts
			}
			if got := usageCountsOf(e.keyUsage(t, key.ID)); got != want {
				t.Errorf("usage %+v, want %+v", got, want)
			}
		})

		// A stream the provider breaks after two text events ends the
		// client's stream, broken (not as a complete answer), at once; the
		// call counts as a request (the provider answered 200: not an
		// error) and is logged aborted.
		t.Run(sc.name+"/broken stream", func(t *testing.T) {
			t.Parallel()
			e, key, secret := sc.env(t, fakeprovider.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res := e.send(t, ctx, "POST", sc.path, sc.body("broken-stream"), sc.header(secret)...)
			defer res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			var data []string
			s := bufio.NewScanner(res.Body)
			for s.Scan() {
				if d, ok := strings.CutPrefix(s.Text(), "data: "); ok {
					data = append(data, d)
				}
			}
			switch err := s.Err(); {
			case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
				t.Fatal("the client's stream hung after the provider broke it")
			case err == nil:
				t.Error("a broken stream read as a complete one")
			}
			if got := fakeprovider.StreamedText(data); got != strings.Join(fakeprovider.Chunks[:2], "") {
				t.Errorf("streamed text %q, want the two events sent before the break", got)
			}
			if line := e.callLine(t, key.ID); !strings.Contains(line, "aborted=true") {
				t.Errorf("log line of the call: %s", line)
			}
			want := usageCounts{requests: 1}
			if sc.name == "Anthropic" {
				want.input, want.output = fakeprovider.AnthropicInput, 1
			}
			if got := usageCountsOf(e.keyUsage(t, key.ID)); got != want {
				t.Errorf("usage %+v, want %+v", got, want)
			}
		})
	}
}
