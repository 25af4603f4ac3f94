package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Workplace rule: tests send traffic only to loopback addresses on this
// machine. Two things make sure of it, whatever the code under test does:
//
//   - every test client resolves names through fakeDNS, a DNS server on
//     127.0.0.1 (Go does not special-case .invalid: without it a lookup of
//     x.invalid would go to the nameserver in /etc/resolv.conf);
//   - every test client carries a safety net in its dialer's Control hook,
//     after the guard: an attempt to connect to anything but loopback fails
//     the test and is refused before connect(2).

// testKey is the API key every test sends; no message may contain it.
const testKey = "sk-test-SECRET-0123456789abcdef"

// newClient returns a Client wired to a loopback fake DNS server that
// knows names, with the loopback-only safety net installed.
func newClient(t *testing.T, opts Options, names map[string][]netip.Addr) *Client {
	t.Helper()
	c := New(opts)
	c.dialer.Resolver = fakeDNS(t, names).resolver()
	c.beforeConnect = func(ap netip.AddrPort) error {
		if !ap.Addr().Unmap().IsLoopback() {
			t.Errorf("safety net: the client tried to connect to %v, which is not loopback", ap)
			return errors.New("test safety net: refusing a non-loopback address")
		}
		return nil
	}
	t.Cleanup(c.transport.CloseIdleConnections)
	return c
}

// test runs c.Test and checks the invariants every result must keep.
func test(t *testing.T, c *Client, p Protocol, baseURL string) Result {
	t.Helper()
	return testCtx(t, context.Background(), c, p, baseURL)
}

func testCtx(t *testing.T, ctx context.Context, c *Client, p Protocol, baseURL string) Result {
	t.Helper()
	r := c.Test(ctx, p, baseURL, testKey)
	if strings.Contains(r.Message, testKey) || strings.Contains(r.Message, "SECRET") {
		t.Errorf("message contains the API key: %q", r.Message)
	}
	if r.Message == "" {
		t.Error("empty message")
	}
	if r.OK && (r.HTTPStatus == nil || *r.HTTPStatus/100 != 2) {
		t.Errorf("OK with status %v", r.HTTPStatus)
	}
	return r
}

// provider is a fake provider on loopback that records what it receives.
type provider struct {
	*httptest.Server
	conns atomic.Int32 // TCP connections accepted
	hits  atomic.Int32 // requests served

	mu   sync.Mutex
	reqs []*http.Request // clones of the requests served
}

func newProvider(t *testing.T, h http.HandlerFunc) *provider {
	t.Helper()
	p := &provider{}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Clone(context.Background()))
		p.mu.Unlock()
		h(w, r)
	}))
	p.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	p.Start()
	t.Cleanup(p.Close)
	return p
}

func (p *provider) last(t *testing.T) *http.Request {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) == 0 {
		t.Fatal("the provider received no request")
	}
	return p.reqs[len(p.reqs)-1]
}

// port returns the provider's port as a string.
func (p *provider) port() string {
	_, port, _ := net.SplitHostPort(p.Listener.Addr().String())
	return port
}

// status returns a handler answering code with body.
func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

// dnsServer is a minimal authoritative DNS server on 127.0.0.1 over UDP:
// it answers A and AAAA queries for the names it knows and NXDOMAIN for
// every other name.
type dnsServer struct {
	conn    net.PacketConn
	names   map[string][]netip.Addr
	queries atomic.Int32
}

func fakeDNS(t *testing.T, names map[string][]netip.Addr) *dnsServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: conn, names: make(map[string][]netip.Addr)}
	for name, addrs := range names {
		s.names[strings.ToLower(strings.TrimSuffix(name, "."))] = addrs
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.queries.Add(1)
			if resp := s.answer(buf[:n]); resp != nil {
				_, _ = conn.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

// resolver returns a pure-Go resolver that sends every query to s,
// whatever /etc/resolv.conf says.
func (s *dnsServer) resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", addr)
		},
	}
}

func (s *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		if l == 0 {
			i++
			break
		}
		if l&0xc0 != 0 || i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	question := q[12 : i+4]
	addrs, known := s.names[strings.ToLower(strings.Join(labels, "."))]

	var answers [][]byte
	for _, a := range addrs {
		if (qtype == 1 && a.Is4()) || (qtype == 28 && a.Is6()) {
			rr := []byte{0xc0, 12} // pointer to the question's name
			rr = binary.BigEndian.AppendUint16(rr, qtype)
			rr = binary.BigEndian.AppendUint16(rr, 1) // class IN
			rr = binary.BigEndian.AppendUint32(rr, 60)
			data := a.AsSlice()
			rr = binary.BigEndian.AppendUint16(rr, uint16(len(data)))
			answers = append(answers, append(rr, data...))
		}
	}
	flags := uint16(0x8000 | 0x0400 | 0x0080)         // response, authoritative, recursion available
	flags |= binary.BigEndian.Uint16(q[2:4]) & 0x0100 // echo "recursion desired"
	if !known {
		flags |= 3 // NXDOMAIN
	}
	resp := append([]byte{}, q[0:2]...) // ID
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
	resp = binary.BigEndian.AppendUint16(resp, 0)
	resp = binary.BigEndian.AppendUint16(resp, 0)
	resp = append(resp, question...)
	for _, rr := range answers {
		resp = append(resp, rr...)
	}
	return resp
}

func loopback4() []netip.Addr { return []netip.Addr{netip.MustParseAddr("127.0.0.1")} }

func fmtStatus(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}
