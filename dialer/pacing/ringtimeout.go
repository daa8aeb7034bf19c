package pacing

import "time"

// RingTimeout returns how long a new dial on ch should ring before it is given up: the
// supervisor's Settings.RingTimeout when set; in predictive mode, once the channel's ring
// times are known, the one the pacer has chosen; otherwise 0, for the caller's default.
//
// The predictive pacer's choice is the ring after which waiting on a line yields people
// more slowly than giving it up for a fresh dial does: it maximizes people answered per
// second of line, not less than Settings.MinRingTimeout.
func (c *Controller) RingTimeout(ch Channel) time.Duration {
	if c.settings.RingTimeout > 0 {
		return c.settings.RingTimeout
	}
	if c.settings.Mode != Predictive {
		return 0
	}
	m := c.models[ch]
	if m == nil || !m.warm() || m.cutoff <= 0 {
		return 0
	}
	return time.Duration(m.cutoff * float64(time.Second))
}
