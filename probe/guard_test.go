package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want *addrClass // nil: public, allowed
	}{
		// Public.
		{"8.8.8.8", nil},
		{"1.1.1.1", nil},
		{"104.18.32.7", nil},
		{"172.15.255.255", nil}, // just below 172.16/12
		{"172.32.0.0", nil},     // just above
		{"100.63.255.255", nil}, // just below 100.64/10
		{"100.128.0.0", nil},    // just above
		{"169.253.255.255", nil},
		{"2606:4700:4700::1111", nil},
		{"2a00:1450:4001:80b::200e", nil},
		{"64:ff9b::808:808", nil}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", nil},  // 6to4 of 8.8.8.8

		// Loopback and unspecified.
		{"127.0.0.1", classLoopback},
		{"127.255.255.254", classLoopback},
		{"::1", classLoopback},
		{"0.0.0.0", classUnspecified},
		{"::", classUnspecified},
		{"0.1.2.3", classReserved},

		// Private and friends.
		{"10.0.0.1", classPrivate},
		{"10.255.255.255", classPrivate},
		{"172.16.0.1", classPrivate},
		{"172.31.255.255", classPrivate},
		{"192.168.1.1", classPrivate},
		{"100.64.0.1", classShared},
		{"100.127.255.255", classShared},
		{"169.254.0.1", classLinkLocal},
		{"fe80::1", classLinkLocal},
		{"fe80::1%eth0", classLinkLocal},
		{"febf::1", classLinkLocal},
		{"fc00::1", classUniqueLocal},
		{"fd12:3456:789a::1", classUniqueLocal},
		{"fec0::1", classPrivate},
		{"64:ff9b:1::a00:1", classPrivate},

		// Metadata services.
		{"169.254.169.254", classMetadata},
		{"fd00:ec2::254", classMetadata},
		{"100.100.100.200", classMetadata},
		{"168.63.129.16", classMetadata},
		{"::ffff:169.254.169.254", classMetadata},

		// Multicast, broadcast, reserved.
		{"224.0.0.1", classMulticast},
		{"239.255.255.250", classMulticast},
		{"ff02::1", classMulticast},
		{"255.255.255.255", classBroadcast},
		{"240.0.0.1", classReserved},
		{"192.0.2.1", classReserved},
		{"198.51.100.1", classReserved},
		{"203.0.113.1", classReserved},
		{"198.18.0.1", classReserved},
		{"192.0.0.1", classReserved},
		{"2001:db8::1", classReserved},
		{"2001::1", classReserved}, // Teredo
		{"100::1", classReserved},
		{"::127.0.0.1", classReserved}, // deprecated IPv4-compatible
		{"4000::1", classReserved},     // outside 2000::/3

		// IPv4 inside IPv6.
		{"::ffff:127.0.0.1", classLoopback},
		{"::ffff:10.0.0.1", classPrivate},
		{"::ffff:0.0.0.0", classUnspecified},
		{"::ffff:0:7f00:1", classLoopback},    // SIIT
		{"::ffff:0:808:808", classReserved},   // SIIT of a public address: not for dialing
		{"64:ff9b::7f00:1", classLoopback},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", classMetadata}, // NAT64 of 169.254.169.254
		{"64:ff9b::c0a8:101", classPrivate},   // NAT64 of 192.168.1.1
		{"2002:7f00:1::1", classLoopback},     // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::", classMetadata},   // 6to4 of 169.254.169.254
		{"2002:a00:1:1::1", classPrivate},     // 6to4 of 10.0.0.1
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if got := classify(a); got != tt.want {
			t.Errorf("classify(%s) = %v, want %v", tt.addr, phrase(got), phrase(tt.want))
		}
	}
	if got := classify(netip.Addr{}); got != classInvalid {
		t.Errorf("classify(zero Addr) = %v", phrase(got))
	}
}

func phrase(c *addrClass) string {
	if c == nil {
		return "public"
	}
	return c.phrase
}

func TestAllowPrivateLiftsOnlySomeClasses(t *testing.T) {
	t.Parallel()
	strict, lenient := New(Options{}), New(Options{AllowPrivate: true})
	tests := []struct {
		addr    string
		lenient bool // allowed with AllowPrivate
	}{
		{"127.0.0.1", true}, {"::1", true}, {"0.0.0.0", true}, {"10.1.2.3", true},
		{"192.168.0.10", true}, {"100.64.0.1", true}, {"169.254.10.10", true},
		{"fd12::1", true}, {"fe80::1", true},
		{"169.254.169.254", false}, {"fd00:ec2::254", false}, {"100.100.100.200", false},
		{"::ffff:169.254.169.254", false}, {"224.0.0.1", false}, {"255.255.255.255", false},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if strict.check(a) == nil {
			t.Errorf("%s allowed without AllowPrivate", a)
		}
		if err := lenient.check(a); (err == nil) != tt.lenient {
			t.Errorf("%s with AllowPrivate: %v, want allowed=%v", a, err, tt.lenient)
		}
	}
	if err := strict.check(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("public address refused: %v", err)
	}
}

// TestGuardRefuses: with AllowPrivate off, every one of these base URLs is
// refused before any connection. Those that point at loopback use a live
// fake provider's port, which must see no connection at all. The others
// are refused before connect(2) by the guard; were the guard broken, the
// tests' safety net would refuse them instead and fail the test.
func TestGuardRefuses(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(200, modelList))
	port := p.port()
	names := map[string][]netip.Addr{
		// Public-looking names that resolve to refused addresses: only the
		// dial-time check can catch these.
		"rebind.example.test":   loopback4(),
		"dual.example.test":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"metadata.example.test": {netip.MustParseAddr("169.254.169.254")},
		"internal.example.test": {netip.MustParseAddr("10.0.0.1")},
		"localhost":             loopback4(), // in case /etc/hosts lacks it
	}
	tests := []struct {
		baseURL string
		class   *addrClass
	}{
		{"http://127.0.0.1:" + port, classLoopback},
		{"http://127.0.0.1:" + port + "/openai/", classLoopback},
		{"http://[::1]:" + port, classLoopback},
		{"http://[::ffff:127.0.0.1]:" + port, classLoopback},
		{"http://[::ffff:7f00:1]:" + port, classLoopback},
		{"http://[64:ff9b::7f00:1]:" + port, classLoopback},
		{"http://[2002:7f00:1::]:" + port, classLoopback},
		{"http://0.0.0.0:" + port, classUnspecified},
		{"http://localhost:" + port, classLoopback},
		{"http://LocalHost:" + port, classLoopback},
		{"http://rebind.example.test:" + port, classLoopback},
		{"http://dual.example.test:" + port, classLoopback},
		{"http://10.0.0.1", classPrivate},
		{"http://10.0.0.1:" + port, classPrivate},
		{"http://192.168.1.1:8080", classPrivate},
		{"http://172.16.5.4", classPrivate},
		{"http://100.64.0.1", classShared},
		{"http://[fd12::1]/", classUniqueLocal},
		{"http://[fe80::1%25lo]:" + port, classLinkLocal},
		{"http://169.254.169.254/latest/meta-data", classMetadata},
		{"http://[fd00:ec2::254]/", classMetadata},
		{"http://100.100.100.200/", classMetadata},
		{"http://[::ffff:169.254.169.254]/", classMetadata},
		{"http://metadata.example.test/", classMetadata},
		{"http://internal.example.test/", classPrivate},
		{"https://224.0.0.1/", classMulticast},
	}
	for _, proto := range []Protocol{OpenAI, Anthropic} {
		c := newClient(t, Options{}, names)
		for _, tt := range tests {
			r := test(t, c, proto, tt.baseURL)
			format := msgSSRF
			if tt.class.always {
				format = msgSSRFAlways
			}
			want := fmt.Sprintf(format, tt.class.phrase)
			if r.OK || r.HTTPStatus != nil || r.Message != want {
				t.Errorf("%s: got ok=%v status=%s %q\nwant %q", tt.baseURL, r.OK, fmtStatus(r.HTTPStatus), r.Message, want)
			}
			if !strings.Contains(r.Message, "CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS") {
				t.Errorf("%s: the message does not name the setting: %q", tt.baseURL, r.Message)
			}
		}
	}
	if n := p.conns.Load(); n != 0 {
		t.Errorf("the loopback provider received %d connections", n)
	}
}

// TestMetadataRefusedEvenWhenPrivateAllowed: AllowPrivate is for local model
// servers, never for the instance metadata service.
func TestMetadataRefusedEvenWhenPrivateAllowed(t *testing.T) {
	t.Parallel()
	c := newClient(t, Options{AllowPrivate: true}, map[string][]netip.Addr{
		"metadata.example.test": {netip.MustParseAddr("169.254.169.254")},
		"alibaba.example.test":  {netip.MustParseAddr("100.100.100.200")},
	})
	for _, u := range []string{
		"http://169.254.169.254/",
		"http://[fd00:ec2::254]/",
		"http://[::ffff:a9fe:a9fe]/",
		"http://metadata.example.test/",
		"http://alibaba.example.test/",
	} {
		r := test(t, c, OpenAI, u)
		if r.OK || r.HTTPStatus != nil || !strings.HasPrefix(r.Message, "Refused by the SSRF guard") ||
			!strings.Contains(r.Message, "cloud metadata") || !strings.Contains(r.Message, "not even with CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS=true") {
			t.Errorf("%s: got %+v", u, r)
		}
	}
}

// TestControlHookRefusesBeforeConnect dials through the guarded dialer
// directly, past the IP-literal shortcut in dialContext, to show that the
// Control hook alone keeps a connection from being made.
func TestControlHookRefusesBeforeConnect(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(200, modelList))
	c := newClient(t, Options{}, map[string][]netip.Addr{"rebind.example.test": loopback4()})
	for _, addr := range []string{
		p.Listener.Addr().String(),
		"localhost:" + p.port(),
		"rebind.example.test:" + p.port(),
	} {
		conn, err := c.dialer.DialContext(context.Background(), "tcp", addr)
		if err == nil {
			conn.Close()
			t.Errorf("%s: dial succeeded", addr)
			continue
		}
		var refused *refusedError
		if !errors.As(err, &refused) || refused.class != classLoopback {
			t.Errorf("%s: got %v, want a loopback refusal", addr, err)
		}
	}
	if n := p.conns.Load(); n != 0 {
		t.Errorf("the provider received %d connections", n)
	}
}
