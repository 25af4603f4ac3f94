package probe

import (
	"context"
	"errors"
	"net"
)

// DialContext dials addr through the client's SSRF guard (after DNS
// resolution, on the exact address connected), with the same
// CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS rule: the relay's upstream connections
// use it, so there is one guard, not two.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.dialContext(ctx, network, addr)
}

// IsRefused reports whether err is (or wraps) the guard's refusal of an
// address.
func IsRefused(err error) bool {
	_, ok := errors.AsType[*refusedError](err)
	return ok
}
