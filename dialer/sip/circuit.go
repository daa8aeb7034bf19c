package sip

import (
	"sync"
	"time"
)

// CircuitState is the health of a trunk as seen by the originator.
type CircuitState int

// Circuit states. Calls go only to closed trunks.
const (
	// CircuitClosed: the trunk takes calls.
	CircuitClosed CircuitState = iota
	// CircuitOpen: the trunk failed repeatedly and takes no calls until a probe answers.
	CircuitOpen
	// CircuitHalfOpen: an OPTIONS probe is in flight on an open trunk.
	CircuitHalfOpen
)

// String returns closed, open or half-open.
func (s CircuitState) String() string {
	switch s {
	case CircuitClosed:
		return "closed"
	case CircuitOpen:
		return "open"
	case CircuitHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// MarshalText writes the state's name, so JSON shows "open" rather than 1.
func (s CircuitState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// circuit is one trunk's breaker: faultsToOpen consecutive faults, the first
// of which is no older than window, open it; a success closes the streak.
type circuit struct {
	mu           sync.Mutex
	faultsToOpen int
	window       time.Duration
	onChange     func(CircuitState)

	state CircuitState
	// forced keeps the circuit open: a supervisor took the trunk out of service.
	forced     bool
	faults     int
	streakFrom time.Time
	lastErr    string
	changedAt  time.Time
}

func (c *circuit) setLocked(s CircuitState, now time.Time) {
	if c.state == s {
		return
	}
	c.state = s
	c.changedAt = now
	if c.onChange != nil {
		c.onChange(s)
	}
}

// fault records a trunk fault and reports whether it opened the circuit.
func (c *circuit) fault(now time.Time, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = err.Error()
	}
	if c.faults == 0 || now.Sub(c.streakFrom) > c.window {
		c.faults = 0
		c.streakFrom = now
	}
	c.faults++
	if c.state == CircuitClosed && c.faults >= c.faultsToOpen {
		c.setLocked(CircuitOpen, now)
		return true
	}
	return false
}

// success records a response that proves the trunk works; it does not close
// an open circuit (only a probe does) so late answers cannot flap it.
func (c *circuit) success() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = 0
}

// beginProbe moves an open circuit to half-open; false if it was not open.
func (c *circuit) beginProbe(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != CircuitOpen || c.forced {
		return false
	}
	c.setLocked(CircuitHalfOpen, now)
	return true
}

// force takes the trunk out of service (open, not probed) or puts it back: open,
// so that the next probe closes it once the trunk answers.
func (c *circuit) force(out bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forced = out
	if out {
		c.lastErr = "taken out of service"
	}
	c.setLocked(CircuitOpen, now)
}

// endProbe closes the circuit when the probe was answered, or reopens it.
func (c *circuit) endProbe(now time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != CircuitHalfOpen {
		return
	}
	if err != nil {
		c.lastErr = err.Error()
		c.setLocked(CircuitOpen, now)
		return
	}
	c.faults = 0
	c.setLocked(CircuitClosed, now)
}

func (c *circuit) current() CircuitState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *circuit) snapshot() (state CircuitState, forced bool, faults int, lastErr string, changedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.forced, c.faults, c.lastErr, c.changedAt
}
