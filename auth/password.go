package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"

	"cloudkeys/apperr"
)

// Password length bounds, in characters.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// ValidatePassword checks a new password's length; field names the input.
func ValidatePassword(field, password string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen || n > MaxPasswordLen {
		return apperr.Invalidf(field, "password must be %d to %d characters long", MinPasswordLen, MaxPasswordLen)
	}
	if strings.ContainsRune(password, 0) {
		// Many clients and libraries end a string at NUL: the password
		// typed elsewhere would not be this one.
		return apperr.Invalidf(field, "password must not contain a NUL character")
	}
	return nil
}

// Params are the Argon2id parameters new hashes are made with.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32
	KeyLength   uint32
}

// DefaultParams are the production parameters (SPEC §3): 64 MiB, t=1, p=2.
var DefaultParams = Params{MemoryKiB: 64 * 1024, Iterations: 1, Parallelism: 2, SaltLength: 16, KeyLength: 32}

func (p Params) argon2id() *argon2id.Params {
	return &argon2id.Params{Memory: p.MemoryKiB, Iterations: p.Iterations, Parallelism: p.Parallelism,
		SaltLength: p.SaltLength, KeyLength: p.KeyLength}
}

// weaker reports whether a stored hash's parameters fall short of p.
func (p Params) weaker(stored *argon2id.Params) bool {
	return stored.Memory < p.MemoryKiB || stored.Iterations < p.Iterations ||
		stored.Parallelism < p.Parallelism || stored.SaltLength < p.SaltLength || stored.KeyLength < p.KeyLength
}

// Hasher hashes and verifies passwords with Argon2id. Each hash holds
// MemoryKiB of memory while it runs, so at most a fixed number run at once:
// the rest wait up to a bounded time, then fail with RATE_LIMITED rather
// than let a burst of logins exhaust the process's memory.
//
// The slots are split in two pools so that creating accounts cannot starve
// signing in: the Hasher's own slots serve login and changePassword;
// Accounts() serves register, createUser and resetUserPassword. Each pool
// has half of the concurrency, at least one (so a concurrency of 1 runs up
// to 2 hashes at once).
type Hasher struct {
	params   Params
	slots    chan struct{}
	wait     time.Duration
	dummy    string
	runs     *atomic.Int64
	accounts *Hasher
	// What this pool's waits were, for metrics (WaitStats): hashes that
	// waited for a slot, waits that ran out, and the time spent waiting.
	waits, timeouts, waitNanos atomic.Int64
}

// NewHasher returns a Hasher making hashes with p, running at most
// concurrency hashes at once (split between the two pools) and queueing a
// hash at most wait. It computes the dummy hash that unknown emails are
// verified against, with p.
func NewHasher(p Params, concurrency int, wait time.Duration) (*Hasher, error) {
	if concurrency < 1 {
		return nil, errors.New("argon2id: concurrency must be at least 1")
	}
	if p.MemoryKiB < 8*uint32(p.Parallelism) || p.Iterations < 1 || p.Parallelism < 1 || p.SaltLength < 8 || p.KeyLength < 16 {
		return nil, fmt.Errorf("argon2id: parameters too weak (m=%d KiB, t=%d, p=%d, salt %d, key %d)",
			p.MemoryKiB, p.Iterations, p.Parallelism, p.SaltLength, p.KeyLength)
	}
	dummy, err := argon2id.CreateHash("cloudkeys dummy password", p.argon2id())
	if err != nil {
		return nil, err
	}
	accounts := max(1, concurrency/2)
	signIn := max(1, concurrency-accounts)
	h := &Hasher{params: p, slots: make(chan struct{}, signIn), wait: wait, dummy: dummy, runs: new(atomic.Int64)}
	h.accounts = &Hasher{params: p, slots: make(chan struct{}, accounts), wait: wait, dummy: dummy, runs: h.runs}
	h.accounts.accounts = h.accounts
	return h, nil
}

// Accounts returns the Hasher of the account-creation pool (register,
// createUser, resetUserPassword): the same parameters, slots of its own.
func (h *Hasher) Accounts() *Hasher { return h.accounts }

// Slots returns how many hashes the Hasher's pool runs at once.
func (h *Hasher) Slots() int { return cap(h.slots) }

// InUse returns how many hashes of the Hasher's pool are running now.
func (h *Hasher) InUse() int { return len(h.slots) }

// WaitStats returns, since the start, how many hashes of the Hasher's pool
// found every slot taken and waited, how many of those waits ran out
// (RATE_LIMITED), and the time spent waiting. Metrics read them when
// scraped; a hash that finds a free slot records nothing.
func (h *Hasher) WaitStats() (waits, timeouts int64, wait time.Duration) {
	return h.waits.Load(), h.timeouts.Load(), time.Duration(h.waitNanos.Load())
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

var errBusy = &apperr.Error{Code: apperr.RateLimited, RetryAfter: time.Second,
	Message: "the server is busy checking passwords; try again in a moment"}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	start := time.Now()
	h.waits.Add(1)
	defer func() { h.waitNanos.Add(int64(time.Since(start))) }()
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-t.C:
		h.timeouts.Add(1)
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Runs returns how many hashes and verifications have started so far.
func (h *Hasher) Runs() int64 { return h.runs.Load() }

// Hash returns the Argon2id PHC string of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	h.runs.Add(1)
	return argon2id.CreateHash(password, h.params.argon2id())
}

// Verify reports whether password matches encoded, and whether encoded was
// made with parameters weaker than the Hasher's (so it should be re-hashed).
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	h.runs.Add(1)
	ok, stored, err := argon2id.CheckHash(password, encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password hash: %w", err)
	}
	return ok, ok && h.params.weaker(stored), nil
}

// VerifyDummy spends the time of one Verify, for an email that has no
// account, so that the answer's timing does not tell whether it exists.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}
