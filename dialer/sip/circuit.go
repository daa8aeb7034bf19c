package sip

import (
	"fmt"
	"sync"
	"time"
)

// CircuitState is the health of a trunk as seen by the originator.
type CircuitState int

// Circuit states. Calls go only to closed trunks.
const (
	// CircuitClosed: the trunk takes calls.
	CircuitClosed CircuitState = iota
	// CircuitOpen: the trunk failed repeatedly, or failed a probe burst, and takes
	// no calls until RecoverAfter probes in a row are answered.
	CircuitOpen
	// CircuitHalfOpen: an OPTIONS probe is in flight on an open trunk.
	CircuitHalfOpen
	// CircuitHeld: the carrier asked to be left alone (503 with Retry-After) or
	// refused service for a while (402): no calls until the hold ends, and no
	// probe ends it early, since an OPTIONS answer says nothing of either.
	CircuitHeld
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
	case CircuitHeld:
		return "held"
	}
	return "unknown"
}

// MarshalText writes the state's name, so JSON shows "open" rather than 1.
func (s CircuitState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name, as another node publishes its trunks.
func (s *CircuitState) UnmarshalText(b []byte) error {
	for _, st := range []CircuitState{CircuitClosed, CircuitOpen, CircuitHalfOpen, CircuitHeld} {
		if st.String() == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("unknown circuit state %q", b)
}

// circuit is one trunk's breaker: faultsToOpen consecutive faults, the first
// of which is no older than window, open it, and so does a failed probe burst
// (trip); recoverAfter answered probes in a row close it.
type circuit struct {
	mu           sync.Mutex
	faultsToOpen int
	window       time.Duration
	recoverAfter int
	onChange     func(CircuitState)

	state CircuitState
	// forced keeps the circuit open: a supervisor took the trunk out of service.
	forced     bool
	faults     int
	goodProbes int // answered probes in a row while open
	streakFrom time.Time
	lastErr    string
	changedAt  time.Time
	// heldUntil is when a hold ends; a probe that would close the circuit
	// before then holds it instead.
	heldUntil time.Time
	// alarm is the last refusal of service (402, 403, credentials, a server
	// error) since the trunk last carried a call; "" when none.
	alarm      string
	alarmSince time.Time
}

// circuitSnapshot is what TrunkStatus shows of a circuit.
type circuitSnapshot struct {
	state      CircuitState
	forced     bool
	faults     int
	lastErr    string
	changedAt  time.Time
	heldUntil  time.Time
	alarm      string
	alarmSince time.Time
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

// trip opens the circuit, or keeps open one that faults opened or a recovery
// probe holds half-open: the trunk failed its probe burst. False if the trunk
// is out of service: a supervisor's decision, which a probe does not overrule.
// A trunk's dials time out together when its link dies, so faults often open
// the circuit while the burst that will prove it dead is still waiting.
func (c *circuit) trip(now time.Time, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forced {
		return false
	}
	c.lastErr = reason
	c.goodProbes = 0
	c.setLocked(CircuitOpen, now)
	return true
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
	c.goodProbes = 0
	if out {
		c.lastErr = "taken out of service"
	}
	c.setLocked(CircuitOpen, now)
}

// endProbe counts an answered probe, closing the circuit at recoverAfter in a
// row, or reopens it and restarts the count; it reports whether it closed.
func (c *circuit) endProbe(now time.Time, err error) (closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != CircuitHalfOpen {
		return false
	}
	if err != nil {
		c.lastErr = err.Error()
		c.goodProbes = 0
		c.setLocked(CircuitOpen, now)
		return false
	}
	c.goodProbes++
	if c.goodProbes < max(c.recoverAfter, 1) {
		c.setLocked(CircuitOpen, now)
		return false
	}
	c.faults, c.goodProbes = 0, 0
	if now.Before(c.heldUntil) {
		// The trunk answers again, but its hold is the carrier's word.
		c.setLocked(CircuitHeld, now)
		return false
	}
	c.setLocked(CircuitClosed, now)
	return true
}

// hold keeps the trunk from new calls until until (a longer hold already in
// place stays); it reports whether the circuit changed state. An open circuit
// stays open (its probes find the hold) and a trunk out of service stays so.
func (c *circuit) hold(now, until time.Time, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until.After(c.heldUntil) {
		c.heldUntil = until
	}
	c.lastErr = reason
	if c.forced || c.state != CircuitClosed {
		return false
	}
	c.setLocked(CircuitHeld, now)
	return true
}

// releaseHold closes a held circuit whose hold has ended; true if it did.
func (c *circuit) releaseHold(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != CircuitHeld || now.Before(c.heldUntil) {
		return false
	}
	c.faults = 0
	c.setLocked(CircuitClosed, now)
	return true
}

// raiseAlarm records a refusal of service; true if the alarm is new or says
// something new.
func (c *circuit) raiseAlarm(now time.Time, what string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alarm == what {
		return false
	}
	if c.alarm == "" {
		c.alarmSince = now
	}
	c.alarm = what
	return true
}

// clearAlarm ends the alarm: the trunk carried a call to a person; true if
// there was one.
func (c *circuit) clearAlarm() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alarm == "" {
		return false
	}
	c.alarm, c.alarmSince = "", time.Time{}
	return true
}

func (c *circuit) current() CircuitState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *circuit) snapshot() circuitSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return circuitSnapshot{state: c.state, forced: c.forced, faults: c.faults, lastErr: c.lastErr, changedAt: c.changedAt,
		heldUntil: c.heldUntil, alarm: c.alarm, alarmSince: c.alarmSince}
}

func (c *circuit) outOfService() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.forced
}
