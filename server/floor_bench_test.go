package server_test

// SPEC §7's yardstick for the credential listing: the real server's
// cloudCredentials (20 rows, authenticated) against a hand-written floor
// doing the same work — net/http, database/sql and the standard library's
// crypto only — on the same SQLite file, in the same process, in the same
// run (BENCHMARKS.md, "Against a hand-written floor"). Not part of
// `go test`:
//
//	go test -run '^$' -bench FloorRatio -benchtime 1x -count 3 ./server/

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	_ "github.com/mattn/go-sqlite3"

	"cloudkeys/server"
)

// BenchmarkFloorRatio serves the same cloudCredentials query from the real
// handler (app.Open's, every middleware, gqlgen, GORM, the encryption
// plugin) and from floorHandler, both behind httptest servers on
// 127.0.0.1 over one SQLite file with one user and 20 credentials, checks
// once that both answer the same JSON, then drives each with floorWorkers
// keep-alive clients in alternating rounds of floorPerRound requests and
// reports both throughputs and real/floor (SPEC §7: at least 0.7).
func BenchmarkFloorRatio(b *testing.B) {
	const (
		floorWorkers  = 8
		floorRounds   = 8
		floorPerRound = 5000
		floorWarmup   = 500
	)
	cfg := testConfig(b)
	cfg.LogLevel = "info" // `cloudkeys serve`'s default: one line per request
	app := credApp(b, cfg)
	c, _ := app.user(b, "floor@example.com")
	for i := range 20 {
		c.createCred(openAIInput(fmt.Sprintf("credential %03d", i), apiKey(b)))
	}
	fh := newFloorHandler(b, app, filepath.Join(cfg.DataDir, "cloudkeys.db"))

	body := gqlBody(benchList)
	sides := []*floorSide{{name: "real", h: app.Handler}, {name: "floor", h: fh}}
	var answers [2]any
	for i, s := range sides {
		s.labels = pprof.WithLabels(context.Background(), pprof.Labels("side", s.name))
		srv := httptest.NewServer(s.labelled(s.h))
		b.Cleanup(srv.Close)
		s.url = srv.URL + "/graphql"
		s.tr = &http.Transport{MaxIdleConns: floorWorkers, MaxIdleConnsPerHost: floorWorkers}
		b.Cleanup(s.tr.CloseIdleConnections)
		s.hc = &http.Client{Transport: s.tr, Timeout: 10 * time.Second}
		status, raw := s.post(b, body, c.token)
		checkAnswer(b, status, raw, 20)
		if err := json.Unmarshal(raw, &answers[i]); err != nil {
			b.Fatalf("%s: %v", s.name, err)
		}
	}
	if !reflect.DeepEqual(answers[0], answers[1]) {
		b.Fatalf("the floor's answer differs from the real server's:\nreal:  %v\nfloor: %v", answers[0], answers[1])
	}

	for _, s := range sides {
		s.load(b, body, c.token, floorWorkers, floorWarmup)
	}
	for b.Loop() {
		var (
			reqs [2]int64
			wall [2]time.Duration
			cpu  [2]time.Duration
		)
		for r := range floorRounds {
			order := []int{0, 1}
			if r%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				cpu0, start := server.ProcessCPU(), time.Now()
				sides[i].load(b, body, c.token, floorWorkers, floorPerRound)
				wall[i] += time.Since(start)
				cpu[i] += server.ProcessCPU() - cpu0
				reqs[i] += floorPerRound
			}
		}
		rate := func(i int) float64 { return float64(reqs[i]) / wall[i].Seconds() }
		b.ReportMetric(rate(0), "real-req/s")
		b.ReportMetric(rate(1), "floor-req/s")
		b.ReportMetric(rate(0)/rate(1), "ratio")
		b.ReportMetric(float64(cpu[0].Microseconds())/float64(reqs[0]), "real-cpu-us/req")
		b.ReportMetric(float64(cpu[1].Microseconds())/float64(reqs[1]), "floor-cpu-us/req")
	}
}

// floorSide is one of the two servers and its clients' connection pool.
// Its server's and its clients' goroutines carry the profiler label
// side=real or side=floor, so that one CPU profile of a run tells the two
// apart (go tool pprof -tagfocus side=floor …).
type floorSide struct {
	name, url string
	h         http.Handler
	labels    context.Context
	tr        *http.Transport
	hc        *http.Client
}

// labelled sets the side's label on the connection's goroutine (it stays
// there for the connection's later requests, reading and writing
// included); the handler is called as it is.
func (s *floorSide) labelled(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pprof.SetGoroutineLabels(s.labels)
		h.ServeHTTP(w, r)
	})
}

func (s *floorSide) post(b *testing.B, body []byte, token string) (int, []byte) {
	pprof.SetGoroutineLabels(s.labels) // the connection it dials inherits it
	defer pprof.SetGoroutineLabels(context.Background())
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.hc.Do(req)
	if err != nil {
		b.Fatalf("%s: %v", s.name, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		b.Fatalf("%s: %v", s.name, err)
	}
	return res.StatusCode, raw
}

// load sends n requests from workers concurrent keep-alive clients and
// fails on any error or non-200 answer.
func (s *floorSide) load(b *testing.B, body []byte, token string, workers, n int) {
	var left, failed atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			pprof.SetGoroutineLabels(s.labels)
			for left.Add(-1) >= 0 {
				req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := s.hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%s: %d of %d requests failed", s.name, failed.Load(), n)
	}
}

// floorHandler answers the benchmark's cloudCredentials query (and only
// it) doing what the real server must do for it, by hand: the bearer
// token's HS256 JWT verified in full (on every request: it keeps no cache
// of verified tokens, the real server does), the session check (the
// query of models.SessionCheck, prepared), the user's rows in the
// listing's order, each API key opened (JWE A256KW + A256GCM, bound to
// the row's ID), each hint computed, and the JSON written into one buffer.
type floorHandler struct {
	secret           []byte
	issuer, audience string
	kek              map[string]cipher.Block // kid → key-encryption cipher, built once
	db               *sql.DB
	check, list      *sql.Stmt
	query            []byte // the one request body it answers
}

// floorSessionCheck is models.sessionCheckQuery (unexported), verbatim.
const floorSessionCheck = `SELECT users.id, users.email, users.password_hash, users.is_admin, users.status,
  users.created_at, users.updated_at, users.approved_at, users.approved_by
FROM users JOIN sessions ON sessions.user_id = users.id
WHERE users.id = ? AND sessions.id = ? AND sessions.revoked_at IS NULL AND sessions.expires_at > ?`

// floorList is the statement GORM builds for models.Credentials.
const floorList = `SELECT id, name, backend_type, api_type, base_url, api_key_jwe, created_at, updated_at
FROM cloud_credentials WHERE user_id = ? ORDER BY name, id`

func newFloorHandler(b *testing.B, app *testApp, dbPath string) *floorHandler {
	b.Helper()
	f := &floorHandler{secret: app.Config.JWTSecret, issuer: app.Config.JWTIssuer, audience: app.Config.JWTAudience,
		kek: map[string]cipher.Block{}, query: gqlBody(benchList)}
	if len(f.secret) == 0 {
		b.Fatal("no JWT secret in the app's configuration")
	}
	// The key material: the app's keyring as a JWK Set (what
	// encryption-keys.json holds).
	set, err := app.Keys().JSON()
	if err != nil {
		b.Fatal(err)
	}
	var jwks struct {
		Keys []struct{ Kty, Kid, Alg, K string } `json:"keys"`
	}
	if err := json.Unmarshal(set, &jwks); err != nil {
		b.Fatal(err)
	}
	for _, k := range jwks.Keys {
		secret, err := base64.RawURLEncoding.DecodeString(k.K)
		if err != nil || k.Kty != "oct" || k.Alg != "A256KW" || len(secret) != 32 {
			b.Fatalf("unexpected key %q", k.Kid)
		}
		if f.kek[k.Kid], err = aes.NewCipher(secret); err != nil {
			b.Fatal(err)
		}
	}
	// Its own pool on the same file, with the DSN and pool size models.Open
	// gives GORM's.
	f.db, err = sql.Open("sqlite3", "file:"+dbPath+"?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL")
	if err != nil {
		b.Fatal(err)
	}
	f.db.SetMaxOpenConns(16)
	f.db.SetMaxIdleConns(16)
	b.Cleanup(func() { f.db.Close() })
	if f.check, err = f.db.Prepare(floorSessionCheck); err != nil {
		b.Fatal(err)
	}
	if f.list, err = f.db.Prepare(floorList); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *floorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/graphql" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || !bytes.Equal(body, f.query) {
		http.Error(w, "the floor answers one query", http.StatusBadRequest)
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	sub, sid, ok := f.verify(strings.TrimSpace(token), now)
	if !ok || !floorIsUUID(sub) || !floorIsUUID(sid) {
		http.Error(w, "invalid access token", http.StatusUnauthorized)
		return
	}
	ctx := r.Context()
	var (
		id, email, hash, status string
		admin                   bool
		created, updated        time.Time
		approvedAt              sql.NullTime
		approvedBy              sql.NullString
	)
	err = f.check.QueryRowContext(ctx, sub, sid, now).Scan(&id, &email, &hash, &admin, &status, &created, &updated, &approvedAt, &approvedBy)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && status != "APPROVED") {
		http.Error(w, "session ended", http.StatusUnauthorized)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rows, err := f.list.QueryContext(ctx, id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer rows.Close()
	out := make([]byte, 0, 8<<10)
	out = append(out, `{"data":{"cloudCredentials":[`...)
	for n := 0; rows.Next(); n++ {
		var (
			cid, name, backend, apiType, jwe string
			baseURL                          sql.NullString
			createdAt, updatedAt             time.Time
		)
		if err := rows.Scan(&cid, &name, &backend, &apiType, &baseURL, &jwe, &createdAt, &updatedAt); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		hint, keyStatus := "", "NEEDS_REENTRY"
		if key, ok := f.open(jwe, cid); ok {
			hint, keyStatus = floorHint(string(key)), "OK"
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"id":`...)
		out = floorString(out, cid)
		out = append(out, `,"name":`...)
		out = floorString(out, name)
		out = append(out, `,"backendType":`...)
		out = floorString(out, backend)
		out = append(out, `,"apiType":`...)
		out = floorString(out, apiType)
		out = append(out, `,"baseUrl":`...)
		if baseURL.Valid {
			out = floorString(out, baseURL.String)
		} else {
			out = append(out, "null"...)
		}
		out = append(out, `,"apiKeyHint":`...)
		out = floorString(out, hint)
		out = append(out, `,"keyStatus":"`...)
		out = append(out, keyStatus...)
		out = append(out, `","createdAt":"`...)
		out = createdAt.UTC().AppendFormat(out, "2006-01-02T15:04:05.000Z")
		out = append(out, `","updatedAt":"`...)
		out = updatedAt.UTC().AppendFormat(out, "2006-01-02T15:04:05.000Z")
		out = append(out, `"}`...)
	}
	if err := rows.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out = append(out, "]}}"...)
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// verify checks an access token as auth.Tokens does, with the standard
// library: header alg HS256 and typ at+jwt, the HMAC-SHA256 signature,
// iss, aud, exp (required) not past and iat/nbf not in the future beyond
// 30 s of skew, sub and sid present. It returns sub and sid.
func (f *floorHandler) verify(token string, now time.Time) (sub, sid string, ok bool) {
	if len(token) > 4096 || strings.Count(token, ".") != 2 {
		return "", "", false
	}
	enc := base64.RawURLEncoding
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	sig, err := enc.DecodeString(s64)
	if err != nil {
		return "", "", false
	}
	mac := hmac.New(sha256.New, f.secret)
	mac.Write([]byte(token[:len(h64)+1+len(p64)]))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return "", "", false
	}
	hb, err := enc.DecodeString(h64)
	if err != nil {
		return "", "", false
	}
	var h struct{ Alg, Typ string }
	if json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" {
		return "", "", false
	}
	if typ := strings.ToLower(h.Typ); typ != "at+jwt" && typ != "application/at+jwt" {
		return "", "", false
	}
	pb, err := enc.DecodeString(p64)
	if err != nil {
		return "", "", false
	}
	var c struct {
		Iss, Sub, Sid string
		Aud           json.RawMessage
		Exp, Iat, Nbf *float64
	}
	if json.Unmarshal(pb, &c) != nil || c.Iss != f.issuer || c.Sub == "" || c.Sid == "" || c.Exp == nil {
		return "", "", false
	}
	var auds []string
	if len(c.Aud) > 0 && c.Aud[0] == '"' {
		auds = make([]string, 1)
		err = json.Unmarshal(c.Aud, &auds[0])
	} else {
		err = json.Unmarshal(c.Aud, &auds)
	}
	found := false
	for _, a := range auds {
		found = found || a == f.audience
	}
	if err != nil || !found {
		return "", "", false
	}
	const skew = 30
	t := float64(now.Unix())
	if t >= *c.Exp+skew || (c.Iat != nil && *c.Iat > t+skew) || (c.Nbf != nil && *c.Nbf > t+skew) {
		return "", "", false
	}
	return c.Sub, c.Sid, true
}

// open decrypts a compact JWE sealed with A256KW + A256GCM and bound to
// binding (its "cid" header), with the standard library.
func (f *floorHandler) open(sealed, binding string) ([]byte, bool) {
	parts := strings.Split(sealed, ".")
	if len(parts) != 5 {
		return nil, false
	}
	enc := base64.RawURLEncoding
	hb, err := enc.DecodeString(parts[0])
	if err != nil {
		return nil, false
	}
	var h struct {
		Alg, Enc, Kid, Cid string
		Zip, Crit          json.RawMessage
	}
	if json.Unmarshal(hb, &h) != nil || h.Alg != "A256KW" || h.Enc != "A256GCM" || h.Zip != nil || h.Crit != nil {
		return nil, false
	}
	kek, ok := f.kek[h.Kid]
	if !ok || h.Cid != binding {
		return nil, false
	}
	wrapped, err1 := enc.DecodeString(parts[1])
	iv, err2 := enc.DecodeString(parts[2])
	ct, err3 := enc.DecodeString(parts[3])
	tag, err4 := enc.DecodeString(parts[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(wrapped) != 40 || len(iv) != 12 || len(tag) != 16 {
		return nil, false
	}
	cek, ok := floorUnwrap(kek, wrapped)
	if !ok {
		return nil, false
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, false
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, false
	}
	plaintext, err := gcm.Open(nil, iv, append(ct, tag...), []byte(parts[0]))
	return plaintext, err == nil
}

// floorUnwrap is the AES key unwrap of RFC 3394 §2.2.2 (index form): it
// returns the n×64-bit key wrapped in (n+1)×64 bits, or ok false when the
// integrity check value is not A6A6A6A6A6A6A6A6.
func floorUnwrap(kek cipher.Block, wrapped []byte) ([]byte, bool) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, false
	}
	n := len(wrapped)/8 - 1
	a := binary.BigEndian.Uint64(wrapped[:8])
	r := append([]byte(nil), wrapped[8:]...)
	var blk [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(blk[:8], a^uint64(n*j+i))
			copy(blk[8:], r[(i-1)*8:i*8])
			kek.Decrypt(blk[:], blk[:])
			a = binary.BigEndian.Uint64(blk[:8])
			copy(r[(i-1)*8:i*8], blk[8:])
		}
	}
	var got [8]byte
	binary.BigEndian.PutUint64(got[:], a)
	if subtle.ConstantTimeCompare(got[:], []byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}) != 1 {
		return nil, false
	}
	return r, true
}

// floorHint is models.CloudCredential.APIKeyHint for an opened key.
func floorHint(key string) string {
	r := []rune(key)
	switch {
	case len(r) < 8:
		return "…"
	case len(r) < 16:
		return "…" + string(r[len(r)-4:])
	default:
		return string(r[:3]) + "…" + string(r[len(r)-4:])
	}
}

// floorString appends s as a JSON string: quotes, backslashes and control
// characters escaped, everything else (valid UTF-8) as it is.
func floorString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, "\ufffd"...) // invalid UTF-8
			}
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// floorIsUUID accepts the hyphenated hexadecimal form of a UUID.
func floorIsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if s[i] != '-' {
				return false
			}
		case (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') && (s[i] < 'A' || s[i] > 'F'):
			return false
		}
	}
	return true
}
