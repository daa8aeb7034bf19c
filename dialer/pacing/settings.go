package pacing

import (
	"fmt"
	"time"
)

// Mode is how a campaign dials.
type Mode uint8

// Modes. Preview never dials automatically: the agent takes the next contact. Progressive
// keeps one line per free agent. Predictive dials ahead of agents from a forecast.
const (
	Preview Mode = iota
	Progressive
	Predictive
)

// String returns the mode's name as ParseMode accepts it.
func (m Mode) String() string {
	switch m {
	case Preview:
		return "preview"
	case Progressive:
		return "progressive"
	case Predictive:
		return "predictive"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "preview", "progressive" or "predictive".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Preview, Progressive, Predictive} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("pacing: unknown mode %q", s)
}

// Defaults applied to zero Settings fields.
const (
	DefaultTargetAbandon = 0.03
	DefaultPatience      = 2 * time.Second
	// DefaultMinRingTimeout is the shortest ring the predictive pacer chooses unless told
	// otherwise. Regulators set such a floor for automated dialling: the US Telemarketing
	// Sales Rule and Ofcom's policy on abandoned calls both ask for 15 seconds before an
	// unanswered call is given up.
	DefaultMinRingTimeout = 15 * time.Second
)

// Settings are the supervisor's controls of a campaign. The limits win over every pacer.
type Settings struct {
	Mode Mode
	// TargetAbandon is the highest acceptable abandoned/answered ratio; 0 means
	// DefaultTargetAbandon.
	TargetAbandon float64
	// MaxRatio caps dials ringing or waiting per active (not paused, not logging off)
	// agent; 0 means no cap.
	MaxRatio float64
	// MaxInFlight caps lines in use (ringing, waiting, holding); 0 means no cap.
	MaxInFlight int
	// Paused stops all new dials.
	Paused bool
	// Patience is how long a person who answered waits for an agent before the call counts
	// as abandoned; 0 means DefaultPatience.
	Patience time.Duration
	// RingTimeout is how long a new dial rings before it is given up. 0 lets the predictive
	// pacer choose it from the ring times it has learned (see Controller.RingTimeout); the
	// other modes then ring for as long as the caller's default.
	RingTimeout time.Duration
	// MinRingTimeout is the shortest ring the predictive pacer may choose; 0 means
	// DefaultMinRingTimeout.
	MinRingTimeout time.Duration
}

func (s Settings) withDefaults() Settings {
	if s.TargetAbandon <= 0 {
		s.TargetAbandon = DefaultTargetAbandon
	}
	if s.Patience <= 0 {
		s.Patience = DefaultPatience
	}
	if s.MinRingTimeout <= 0 {
		s.MinRingTimeout = DefaultMinRingTimeout
	}
	return s
}

// Limit applies the supervisor's limits to a pacer's wish to place n new dials and returns
// how many may be placed.
func (s Settings) Limit(snap Snapshot, n int) int {
	if s.Paused || n <= 0 {
		return 0
	}
	if s.MaxInFlight > 0 {
		n = min(n, s.MaxInFlight-len(snap.Dials)-snap.Waiting-snap.Holding)
	}
	if s.MaxRatio > 0 {
		active := 0
		for i := range snap.Agents {
			switch snap.Agents[i].State {
			case AgentReady, AgentTalking, AgentWrapUp:
				active++
			}
		}
		n = min(n, int(s.MaxRatio*float64(active))-len(snap.Dials)-snap.Waiting)
	}
	return max(n, 0)
}

// ReadyAgents counts the agents in s who are ready for a call now.
func ReadyAgents(s Snapshot) int {
	n := 0
	for i := range s.Agents {
		if s.Agents[i].State == AgentReady {
			n++
		}
	}
	return n
}

// ProgressiveDials returns how many dials keep exactly one line (ringing or answered and
// waiting) per ready agent. No person can then answer without an agent to take the call.
func ProgressiveDials(s Snapshot) int {
	return max(ReadyAgents(s)-len(s.Dials)-s.Waiting, 0)
}
