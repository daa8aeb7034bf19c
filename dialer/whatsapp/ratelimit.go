package whatsapp

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Clock is the time source of a [TokenBucket]; tests give a fake one so that the rate
// can be checked without timing anything.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TokenBucket holds requests to a rate: it refills rate tokens a second up to burst and
// each request takes one. Waiters reserve their token when they ask (the bucket may go
// negative), so they leave in the order they asked and the rate holds under
// concurrency. It keeps no package-level state; the client has one per phone number.
type TokenBucket struct {
	clock Clock
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewTokenBucket returns a full bucket. It panics on a non-positive rate or burst, which
// is a programming error ([Config] supplies defaults).
func NewTokenBucket(clock Clock, perSecond float64, burst int) *TokenBucket {
	if perSecond <= 0 || burst <= 0 {
		panic(fmt.Sprintf("whatsapp: token bucket rate %g and burst %d must be positive", perSecond, burst))
	}
	if clock == nil {
		clock = SystemClock{}
	}
	return &TokenBucket{clock: clock, rate: perSecond, burst: float64(burst), tokens: float64(burst), last: clock.Now()}
}

// Reserve takes one token and returns how long the caller must wait before using it
// (zero when a token was available).
func (b *TokenBucket) Reserve() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// cancel gives back a token reserved by a waiter that gave up, so one cancelled send
// does not slow the next.
func (b *TokenBucket) cancel() {
	b.mu.Lock()
	b.tokens = min(b.burst, b.tokens+1)
	b.mu.Unlock()
}

// Wait blocks until the caller may send one request, or ctx ends.
func (b *TokenBucket) Wait(ctx context.Context) error {
	d := b.Reserve()
	if d <= 0 {
		return nil
	}
	select {
	case <-b.clock.After(d):
		return nil
	case <-ctx.Done():
		b.cancel()
		return fmt.Errorf("whatsapp rate limit wait: %w", ctx.Err())
	}
}
