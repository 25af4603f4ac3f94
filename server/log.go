package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

type requestIDKey struct{}

// RequestID returns the request's ID ("" outside a request), which
// logRequests gives every request; the logger adds it to every record.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
