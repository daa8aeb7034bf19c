package media

import (
	"fmt"
	"sync"
)

// ContinuousLeg is a Leg whose written packets form one RTP stream whatever
// writes them: a hold tone played again and again, then an agent's bridge, then
// an apology. Each writer numbers its packets from a random start (RFC 3550);
// written as they are, a receiver's SRTP replay check drops every packet that
// seems older than the last (half of the jumps), so the person hears nothing.
// ContinuousLeg rebases each new source (SSRC, or a marker bit: a new prompt)
// to continue the sequence and timestamps without a gap, as the bridge does for
// successive customers.
type ContinuousLeg struct {
	Leg
	mu  sync.Mutex
	out outStream
}

// NewContinuousLeg wraps leg; reads, the codec and Close go to leg unchanged.
func NewContinuousLeg(leg Leg) *ContinuousLeg {
	return &ContinuousLeg{Leg: leg, out: newOutStream(leg.Codec().ClockRate, PromptFrame)}
}

// WriteRTP implements Leg: pkt's sequence number, timestamp and SSRC are
// rewritten in place before it goes to the wrapped leg.
func (c *ContinuousLeg) WriteRTP(pkt []byte) error {
	v, err := parseRTP(pkt)
	if err != nil {
		return fmt.Errorf("continuous leg: %w", err)
	}
	c.mu.Lock()
	if v.marker() {
		c.out.newSegment() // a prompt's first packet: a new source even with the same SSRC
	}
	seq, ts, first := c.out.next(v.ssrc(), v.seq(), v.timestamp(), 0)
	rewriteRTPHeader(pkt, first || v.marker(), v.payloadType(), seq, ts, c.out.ssrc)
	c.mu.Unlock()
	return c.Leg.WriteRTP(pkt)
}
