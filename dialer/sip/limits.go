package sip

import (
	"sync"
	"time"
)

// pacer spaces INVITEs on one trunk at exactly 1/cps apart, with no burst:
// carriers count calls per second over sliding windows, so a burst that an
// average-rate bucket allows would be rejected (or billed) by them.
//
// It is pure bookkeeping on times handed in by the caller, so tests drive it
// with a fake clock; the caller sleeps for the returned delay.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration // 0: unlimited
	next     time.Time     // earliest instant the next INVITE may go
}

func newPacer(cps float64) *pacer {
	p := &pacer{}
	if cps > 0 {
		p.interval = time.Duration(float64(time.Second) / cps)
	}
	return p
}

// reserve books the next send slot at or after now and returns how long the
// caller must wait for it. The slot is not given back if the caller gives up:
// the limit stays exact at the price of a slightly slower rate after a cancel.
func (p *pacer) reserve(now time.Time) time.Duration {
	if p.interval == 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := p.next
	if slot.Before(now) {
		slot = now
	}
	p.next = slot.Add(p.interval)
	return slot.Sub(now)
}

// channels counts calls in progress on one trunk against its cap; it refuses
// rather than queues so that the engine's capacity accounting stays exact.
type channels struct {
	mu     sync.Mutex
	max    int // 0: unlimited
	inUse  int
	joined int // total ever acquired, for tests and metrics
}

// tryAcquire takes a channel unless the trunk is at its limit, or at ramp (a
// recovering trunk's cap; 0: none).
func (c *channels) tryAcquire(ramp int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.inUse >= c.max {
		return false
	}
	if ramp > 0 && c.inUse >= ramp {
		return false
	}
	c.inUse++
	c.joined++
	return true
}

func (c *channels) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inUse > 0 {
		c.inUse--
	}
}

func (c *channels) load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inUse
}
