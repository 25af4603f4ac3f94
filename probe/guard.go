package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// addrClass names a kind of address the guard refuses.
type addrClass struct {
	// phrase completes "the base URL's host is (or resolves to) …".
	phrase string
	// always marks classes that AllowPrivate does not lift: nobody runs a
	// model server on the cloud metadata service or a multicast group.
	always bool
}

var (
	classLoopback    = &addrClass{phrase: "a loopback address"}
	classUnspecified = &addrClass{phrase: "an unspecified address (0.0.0.0 or ::, which reaches this host)"}
	classPrivate     = &addrClass{phrase: "a private network address"}
	classLinkLocal   = &addrClass{phrase: "a link-local address"}
	classUniqueLocal = &addrClass{phrase: "a unique-local (private) IPv6 address"}
	classShared      = &addrClass{phrase: "a carrier-grade NAT address (100.64.0.0/10)"}
	classReserved    = &addrClass{phrase: "a reserved address that is not globally routable"}
	classMetadata    = &addrClass{phrase: "a cloud metadata service address", always: true}
	classMulticast   = &addrClass{phrase: "a multicast address", always: true}
	classBroadcast   = &addrClass{phrase: "the broadcast address", always: true}
	classInvalid     = &addrClass{phrase: "an address the guard cannot check", always: true}
)

// blocked lists the non-public ranges, most specific first: classify
// returns the class of the first prefix that contains the address. IPv4
// prefixes only ever see plain IPv4 addresses (classify unmaps
// ::ffff:a.b.c.d first).
var blocked = []struct {
	prefix netip.Prefix
	class  *addrClass
}{
	// Cloud metadata services (AWS, GCP, Azure, Oracle, DigitalOcean use
	// 169.254.169.254; AWS IPv6 fd00:ec2::254; Alibaba 100.100.100.200;
	// Azure's WireServer 168.63.129.16, which is a public address).
	{netip.MustParsePrefix("169.254.169.254/32"), classMetadata},
	{netip.MustParsePrefix("100.100.100.200/32"), classMetadata},
	{netip.MustParsePrefix("168.63.129.16/32"), classMetadata},
	{netip.MustParsePrefix("fd00:ec2::254/128"), classMetadata},

	// IPv4 (IANA IPv4 Special-Purpose Address Registry).
	{netip.MustParsePrefix("0.0.0.0/32"), classUnspecified},
	{netip.MustParsePrefix("0.0.0.0/8"), classReserved},
	{netip.MustParsePrefix("127.0.0.0/8"), classLoopback},
	{netip.MustParsePrefix("10.0.0.0/8"), classPrivate},
	{netip.MustParsePrefix("172.16.0.0/12"), classPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), classPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), classShared},
	{netip.MustParsePrefix("169.254.0.0/16"), classLinkLocal},
	{netip.MustParsePrefix("192.0.0.0/24"), classReserved},    // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), classReserved},    // TEST-NET-1
	{netip.MustParsePrefix("198.51.100.0/24"), classReserved}, // TEST-NET-2
	{netip.MustParsePrefix("203.0.113.0/24"), classReserved},  // TEST-NET-3
	{netip.MustParsePrefix("192.88.99.0/24"), classReserved},  // deprecated 6to4 relay anycast
	{netip.MustParsePrefix("198.18.0.0/15"), classReserved},   // benchmarking; also "fake-IP" proxies
	{netip.MustParsePrefix("224.0.0.0/4"), classMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), classBroadcast},
	{netip.MustParsePrefix("240.0.0.0/4"), classReserved},

	// IPv6 (IANA IPv6 Special-Purpose Address Registry).
	{netip.MustParsePrefix("::/128"), classUnspecified},
	{netip.MustParsePrefix("::1/128"), classLoopback},
	{netip.MustParsePrefix("64:ff9b:1::/48"), classPrivate}, // local-use NAT64 (inside ::/8)
	{netip.MustParsePrefix("::/8"), classReserved},          // IPv4-compatible and other legacy forms
	{netip.MustParsePrefix("100::/64"), classReserved},      // discard-only
	{netip.MustParsePrefix("2001::/23"), classReserved},     // IETF protocol assignments, Teredo, benchmarking
	{netip.MustParsePrefix("2001:db8::/32"), classReserved},
	{netip.MustParsePrefix("fc00::/7"), classUniqueLocal},
	{netip.MustParsePrefix("fe80::/10"), classLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), classPrivate}, // deprecated site-local
	{netip.MustParsePrefix("ff00::/8"), classMulticast},
}

var (
	// globalUnicast6 is the only IPv6 space allocated for global unicast;
	// everything outside it (bar NAT64 below) is refused.
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	// Prefixes that carry an IPv4 address inside an IPv6 one: the embedded
	// address is what the packet eventually reaches.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052: low 32 bits
	siit      = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765: low 32 bits
	sixToFour = netip.MustParsePrefix("2002::/16")       // RFC 3056: bits 16–47
)

// classify reports what kind of non-public address a is, or nil when a is
// a public unicast address.
func classify(a netip.Addr) *addrClass {
	if !a.IsValid() {
		return classInvalid
	}
	// A zone only scopes a link-local address; netip.Prefix.Contains never
	// matches a zoned address, so drop it before comparing.
	a = a.WithZone("").Unmap()

	if a.Is6() {
		if v4, ok := embeddedIPv4(a); ok {
			if c := classify(v4); c != nil {
				return c
			}
			if nat64.Contains(a) {
				return nil // well-known NAT64 to a public IPv4 address
			}
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(a) {
			return b.class
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return classReserved
	}
	return nil
}

// embeddedIPv4 extracts the IPv4 address carried by a NAT64, SIIT or 6to4
// address.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a), siit.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// refusedError is returned by the dialer when the guard refuses an address.
type refusedError struct {
	addr  netip.Addr
	class *addrClass
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("probe: SSRF guard refused to connect to %s: %s", e.addr, e.class.phrase)
}

// Guard is the SSRF guard of every outbound call cloudkeys makes to a
// base URL: the connection test's (Client) and the relay's. It refuses
// loopback, private, link-local, unique-local, CGNAT and other non-public
// addresses unless private targets are allowed, and cloud metadata,
// multicast and broadcast addresses always. The check runs at dial time on
// the exact address about to be connected, after name resolution, so a
// name that resolves to a refused address (or resolves differently on a
// second lookup) cannot slip past. A Client's methods (check, control,
// dialContext) are this Guard's, seen through the Client's own fields.
//
// A Guard is safe for concurrent use.
type Guard struct {
	allowPrivate bool
	dialer       *net.Dialer
	// beforeConnect, when set, runs after the guard has passed an address
	// that is about to be connected; it can only refuse more.
	beforeConnect func(netip.AddrPort) error
}

// NewGuard returns a guard; allowPrivate is
// CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS (it never lifts the refusal of cloud
// metadata, multicast or broadcast addresses).
func NewGuard(allowPrivate bool) *Guard {
	g := &Guard{allowPrivate: allowPrivate}
	g.dialer = &net.Dialer{Control: g.control}
	return g
}

// DialContext connects to addr as net.Dialer.DialContext does, through the
// guard: an http.Transport's DialContext. A refusal is an error for which
// IsRefused is true; nothing is sent to a refused address.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return g.dialContext(ctx, network, addr)
}

// SetBeforeConnect installs f to run after the guard has passed an address
// that is about to be connected, before connect(2). It can only refuse
// more, never let through what the guard refuses. Production leaves it
// unset; tests install a loopback-only safety net with it, so that no test
// ever connects beyond this machine whatever the code under test does. Set
// it before the first dial.
func (g *Guard) SetBeforeConnect(f func(netip.AddrPort) error) { g.beforeConnect = f }

// guard is the Client's view of its guard: the same rules, on the Client's
// own setting, dialer and test hook (which tests set after New).
func (c *Client) guard() Guard {
	return Guard{allowPrivate: c.allowPrivate, dialer: c.dialer, beforeConnect: c.beforeConnect}
}

// check refuses a when it is not a public address, unless the client
// allows private targets and a's class is one that setting lifts.
func (c *Client) check(a netip.Addr) error {
	g := c.guard()
	return g.check(a)
}

// control is the Client's net.Dialer Control hook (Guard.control).
func (c *Client) control(network, address string, rc syscall.RawConn) error {
	g := c.guard()
	return g.control(network, address, rc)
}

// dialContext dials through the Client's guard (Guard.dialContext).
func (c *Client) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	g := c.guard()
	return g.dialContext(ctx, network, addr)
}

// check refuses a when it is not a public address, unless the guard
// allows private targets and a's class is one that setting lifts.
func (g *Guard) check(a netip.Addr) error {
	class := classify(a)
	if class == nil || (g.allowPrivate && !class.always) {
		return nil
	}
	return &refusedError{addr: a, class: class}
}

// control is the net.Dialer Control hook. It runs after name resolution,
// on the exact address about to be connected and before connect(2) is
// called, so no packet is sent to a refused address and a name that
// resolves differently on a second lookup (DNS rebinding) cannot slip past.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || (network != "tcp4" && network != "tcp6") {
		return &refusedError{class: classInvalid}
	}
	if err := g.check(ap.Addr()); err != nil {
		return err
	}
	if g.beforeConnect != nil {
		return g.beforeConnect(ap)
	}
	return nil
}

// dialContext refuses IP literals before a socket is even opened (so the
// answer does not depend on, say, IPv6 being available), then dials
// through the guarded dialer, whose Control hook is the check that counts.
func (g *Guard) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			if err := g.check(ip); err != nil {
				return nil, err
			}
		}
	}
	return g.dialer.DialContext(ctx, network, addr)
}
