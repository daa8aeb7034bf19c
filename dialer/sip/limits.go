package sip

import (
	"sync"
	"time"
)

// pacer keeps a trunk within its max_cps as the carrier counts it: no sliding
// second may hold more than max_cps INVITEs. Two parts do it:
//
//   - reserve spaces Dial's slots 1/cps apart with no burst, so the engine is
//     paced evenly and idle time earns nothing;
//   - admit and sent keep a log of the last max_cps INVITEs as they actually
//     left, and hold a new one until a second has passed since the end of the
//     write max_cps sends back. The spacing alone is not enough: the time from
//     a slot to the datagram varies (goroutines, a loaded machine), and two
//     slots exactly 1/cps apart let max_cps+1 INVITEs reach the carrier within
//     one second once the first is late and the last is not.
//
// It is pure bookkeeping on times handed in by the caller, so tests drive it
// with a fake clock; the caller sleeps for the returned delay.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration // 0: unlimited
	next     time.Time     // earliest instant the next INVITE may go
	// log holds the last limit INVITEs, oldest at head once it is full.
	log  []*sendMark
	head int
}

// sendMark is one INVITE's write: it began at start and was done by end (zero
// while the write is under way).
type sendMark struct{ start, end time.Time }

// windowGuard is added to the second between an INVITE and the one max_cps
// later, so that timestamps of the same instant in the carrier's log (at
// millisecond resolution) never put both in one window.
const windowGuard = time.Millisecond

// pendingPoll is how soon admit is asked again while the INVITE it waits for
// is still being written (microseconds, except when a TCP connect is under way).
const pendingPoll = time.Millisecond

func newPacer(cps float64) *pacer {
	p := &pacer{}
	if cps > 0 {
		p.interval = time.Duration(float64(time.Second) / cps)
		// max_cps 2.5 allows 2 in any second; below 1, the spacing is stricter.
		p.log = make([]*sendMark, max(1, int(cps)))
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

// admit returns a mark for an INVITE that may be written now, or how long to
// wait before asking again. The caller writes it and then calls sent.
func (p *pacer) admit(now time.Time) (*sendMark, time.Duration) {
	if p.interval == 0 {
		return &sendMark{start: now}, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if oldest := p.log[p.head]; oldest != nil {
		if oldest.end.IsZero() {
			return nil, pendingPoll
		}
		if at := oldest.end.Add(time.Second + windowGuard); now.Before(at) {
			return nil, at.Sub(now)
		}
	}
	m := &sendMark{start: now}
	p.log[p.head] = m
	p.head = (p.head + 1) % len(p.log)
	return m, 0
}

// sent records that the INVITE of m has been written (or failed to be: it may
// have left all the same) by now.
func (p *pacer) sent(m *sendMark, now time.Time) {
	p.mu.Lock()
	m.end = now
	p.mu.Unlock()
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

// admitInvite waits until t's pacer lets an INVITE be written, and returns its
// mark for [pacer.sent]; false when stop or the originator's close comes first.
func (o *Originator) admitInvite(t *trunk, stop <-chan struct{}) (*sendMark, bool) {
	for {
		m, wait := t.pacer.admit(o.now())
		if m != nil {
			return m, true
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-stop:
			timer.Stop()
			return nil, false
		case <-o.rootCtx.Done():
			timer.Stop()
			return nil, false
		}
	}
}
