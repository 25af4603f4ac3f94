package probe

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// TestGuard: the exported Guard, which the relay dials through, keeps the
// Client's rules: private addresses refused unless allowed, metadata
// always, and the before-connect hook runs after the guard and can only
// refuse more.
func TestGuard(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(200, modelList))
	addr := p.Listener.Addr().String()
	ctx := context.Background()

	var hooked []netip.AddrPort
	hook := func(ap netip.AddrPort) error {
		hooked = append(hooked, ap)
		if !ap.Addr().Unmap().IsLoopback() {
			t.Errorf("safety net: a connection to %v was attempted", ap)
			return errors.New("test safety net: refusing a non-loopback address")
		}
		return nil
	}

	strict := NewGuard(false)
	strict.SetBeforeConnect(hook)
	if conn, err := strict.DialContext(ctx, "tcp", addr); err == nil {
		conn.Close()
		t.Error("loopback dialled without AllowPrivate")
	} else if !IsRefused(err) {
		t.Errorf("not a refusal: %v", err)
	}
	// The Control hook alone refuses too, past the IP-literal shortcut.
	if conn, err := strict.dialer.DialContext(ctx, "tcp", addr); err == nil {
		conn.Close()
		t.Error("the Control hook let loopback through")
	} else if !IsRefused(err) {
		t.Errorf("not a refusal: %v", err)
	}

	lenient := NewGuard(true)
	lenient.SetBeforeConnect(hook)
	for _, a := range []string{"169.254.169.254:80", "[fd00:ec2::254]:80", "[::ffff:a9fe:a9fe]:80"} {
		if conn, err := lenient.DialContext(ctx, "tcp", a); err == nil {
			conn.Close()
			t.Errorf("%s dialled", a)
		} else if !IsRefused(err) {
			t.Errorf("%s: not a refusal: %v", a, err)
		}
	}
	if len(hooked) != 0 {
		t.Errorf("the hook ran for refused addresses: %v", hooked)
	}
	if n := p.conns.Load(); n != 0 {
		t.Errorf("the provider received %d connections", n)
	}

	conn, err := lenient.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("loopback with AllowPrivate: %v", err)
	}
	conn.Close()
	if len(hooked) != 1 || hooked[0].String() != addr {
		t.Errorf("hook saw %v, want %s", hooked, addr)
	}

	// The hook can refuse an address the guard passes.
	lenient.SetBeforeConnect(func(netip.AddrPort) error { return errors.New("no") })
	if conn, err := lenient.DialContext(ctx, "tcp", addr); err == nil {
		conn.Close()
		t.Error("the hook's refusal was ignored")
	} else if IsRefused(err) {
		t.Errorf("the hook's refusal reads as the guard's: %v", err)
	}
}
