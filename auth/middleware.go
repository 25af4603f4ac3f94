package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Middleware records the request's bearer token and client address for the
// @auth directive and the resolvers. It refuses nothing itself: public
// fields stay public whatever the Authorization header says. The client
// address is the peer's, or, when the peer is one of trustedProxies, the
// first address in X-Forwarded-For (from the right) that is not a trusted
// proxy.
func Middleware(trustedProxies []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := &caller{token: bearerToken(r.Header.Get("Authorization")), addr: clientAddr(r, trustedProxies),
				ua: r.Header.Get("User-Agent")}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
		})
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header; a malformed header yields a value no token verifies.
func bearerToken(h string) string {
	if h == "" {
		return ""
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "invalid"
	}
	if token = strings.TrimSpace(token); token == "" {
		return "invalid"
	}
	return token
}

func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(strings.TrimSpace(hops[i]))
		if !ok {
			break // a garbled hop: trust nothing further left
		}
		hop = hop.Unmap()
		if !isTrusted(hop, trusted) {
			return hop.String()
		}
		peer = hop
	}
	return peer.String()
}

// parseHop reads one X-Forwarded-For entry: an address, or an address
// with a port ("203.0.113.1:51234", "[2001:db8::1]:443"), as some proxies
// write them.
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
