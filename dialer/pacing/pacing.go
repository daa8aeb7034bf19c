package pacing

import "time"

// Channel names the way a contact is reached ("sip", "whatsapp"). Answer probability, ring
// time, talk time and wrap-up time are learned separately for each channel.
type Channel string

// AgentState is what an agent is doing, as far as pacing cares.
type AgentState uint8

// Agent states. An agent who is logging off finishes the current call and wrap-up and then
// leaves, so pacing never counts on them again.
const (
	AgentReady AgentState = iota
	AgentTalking
	AgentWrapUp
	AgentPaused
	AgentLoggingOff
)

// String returns the state's lower-case name.
func (s AgentState) String() string {
	switch s {
	case AgentReady:
		return "ready"
	case AgentTalking:
		return "talking"
	case AgentWrapUp:
		return "wrap-up"
	case AgentPaused:
		return "paused"
	case AgentLoggingOff:
		return "logging-off"
	}
	return "unknown"
}

// Agent is one logged-in agent.
type Agent struct {
	State AgentState
	// Since is when the agent entered State: for AgentTalking when the call was bridged,
	// for AgentWrapUp when the call ended.
	Since time.Time
	// Channel is the channel of the agent's current or last call.
	Channel Channel
}

// Dial is a call placed and not yet answered, failed or rung out.
type Dial struct {
	Start   time.Time
	Channel Channel
}

// Snapshot is the state of one campaign at the moment of a decision. Decide reads it only
// during the call and keeps no reference to its slices, so the caller may reuse them.
type Snapshot struct {
	Agents []Agent
	Dials  []Dial
	// Waiting counts people who answered and are waiting for an agent.
	Waiting int
	// Holding counts lines busy with calls that need no agent (a machine being detected,
	// the abandon prompt); they count against MaxInFlight only.
	Holding int
	// Channel is the channel new dials will use (DialChannel picks it from the
	// ladder's routes): its answer rate and ring times are the forecast's.
	Channel Channel
}

// Route is one call channel of a campaign's ladder, in the order the ladder tries
// them, and whether it can take calls now.
type Route struct {
	Channel Channel
	Down    bool
}

// DialChannel is the channel new dials go to: the first route that is up. A
// channel that goes down sends its contacts on to the next rung at once, so from
// that moment new dials are the next channel's, and the forecast must use that
// channel's answer rate and ring time, not wait for failed dials to teach it.
// With every route down it is the first (its contacts wait for it), and "" with
// no route at all.
func DialChannel(routes []Route) Channel {
	for _, r := range routes {
		if !r.Down {
			return r.Channel
		}
	}
	if len(routes) > 0 {
		return routes[0].Channel
	}
	return ""
}

// ObservationKind says what happened to a dial or a call.
type ObservationKind uint8

// Observation kinds. The first four end a dial; Duration is then the time since the dial
// started. TalkEnded and WrapEnded carry the talk or wrap-up time in Duration.
const (
	Human ObservationKind = iota + 1
	Machine
	NoAnswer
	Failed
	Connected
	Abandoned
	TalkEnded
	WrapEnded
)

// String returns the kind's lower-case name.
func (k ObservationKind) String() string {
	switch k {
	case Human:
		return "human"
	case Machine:
		return "machine"
	case NoAnswer:
		return "no-answer"
	case Failed:
		return "failed"
	case Connected:
		return "connected"
	case Abandoned:
		return "abandoned"
	case TalkEnded:
		return "talk-ended"
	case WrapEnded:
		return "wrap-ended"
	}
	return "unknown"
}

// Observation is one event a pacer learns from: what became of a dial or a call (not
// the attempt's outcome, campaigns.Outcome). Observations must be reported in time order.
type Observation struct {
	At       time.Time
	Kind     ObservationKind
	Channel  Channel
	Duration time.Duration
}

// Pacer decides how many new dials to place. Decide is called on every event and at least
// every 250 ms; Observe is called for every observation before the Decide that follows it.
// Implementations are not safe for concurrent use.
type Pacer interface {
	Decide(now time.Time, s Snapshot) int
	Observe(o Observation)
}

// RingTimer is a Pacer that also chooses how long a new dial on a channel rings before it
// is given up. A zero RingTimeout leaves it to the caller's default.
type RingTimer interface {
	Pacer
	RingTimeout(ch Channel) time.Duration
}
