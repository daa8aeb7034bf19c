package dialer

import (
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
)

// The call inside a run is one state machine: step takes where a call stands and
// what just happened to it, and answers where it goes and what the run must do
// about it, as data. step reads no clock and does no I/O (times come in the
// events); run.go turns channel updates into callEvents and carries out the
// effects (run.apply). The model is dialer/whatsapp/state.go.

// callState is where a call stands in its run.
type callState uint8

// A call's states. A call found to be an answering machine is hung up in one of
// three states, one per AMD action: the state says which outcome its end records.
const (
	callDialing          callState = iota + 1 // placed, nothing heard yet
	callRinging                               // the far end rings
	callScreening                             // answered, audio being screened for an answering machine
	callWaiting                               // answered, queued for the next free agent
	callConnected                             // put through to an agent
	callAbandoning                            // no agent within the patience: safe-harbour message, then hung up
	callMachine                               // a machine: being hung up, the contact moved as for a machine
	callMachineNext                           // a machine: being hung up, the contact moved to the next rung
	callVoicemail                             // a machine: the campaign's message being left, then hung up
	callResuming                              // its trunk dropped the connected call: calling back on WhatsApp, the agent kept
	callResumed                               // the WhatsApp call back is through to the same agent
	callCanceling                             // its agent gave up the call back before the answer: being hung up
	callResumeAbandoning                      // the call back's agent vanished: safe-harbour message, then hung up
	callQueued                                // a person's own call (inbound), answered, on hold in the queue for an agent
	callMissing                               // an inbound caller nobody took: the apology playing, then hung up
	callEnded                                 // the outcome is recorded; the run forgets the call
)

var callStateNames = [...]string{"", "dialing", "ringing", "screening", "waiting", "connected", "abandoning",
	"machine", "machine_next", "voicemail", "resuming", "resumed", "canceling", "resume_abandoning", "queued", "missing", "ended"}

func (s callState) String() string {
	if int(s) < len(callStateNames) && s != 0 {
		return callStateNames[s]
	}
	return "unknown"
}

// callEventKind is what can happen to a call.
type callEventKind uint8

// What the run feeds step.
const (
	evPlaced          callEventKind = iota + 1 // the channel's Place returned the leg
	evRinging                                  // the leg rings
	evAnswered                                 // the leg answered (see callEvent's agent, reserved, amd)
	evScreened                                 // answering-machine detection decided (see human, amdAction)
	evAgentFree                                // an agent was reserved for the waiting call (agent)
	evPatienceExpired                          // the waiting person's patience (less the prompt's lead) ran out
	evAgentLost                                // the connected agent's audio went away
	evAttemptEnded                             // the channel's attempt ended (outcome: the channel's, for an unanswered one)
	evPlaceFailed                              // Place failed, or the call could not be placed at all (outcome)
	evStopping                                 // the engine stops: the call is cut short
	evTrunkDropped                             // the leg ended because its trunk went down under it (HangupBy trunk)
	evResumeRefused                            // the call back on WhatsApp could not be placed (gate, no channel, storage)
	evAgentHangup                              // the call's agent hung up
	evInboundAnswered                          // a person's own call was answered by us (see callEvent's agent)
)

var callEventNames = [...]string{"", "placed", "ringing", "answered", "screened", "agent_free", "patience_expired",
	"agent_lost", "leg_ended", "place_failed", "stopping", "trunk_dropped", "resume_refused", "agent_hangup", "inbound_answered"}

func (k callEventKind) String() string {
	if int(k) < len(callEventNames) && k != 0 {
		return callEventNames[k]
	}
	return "unknown"
}

// callEvent is one thing that happened to a call, at At.
type callEvent struct {
	kind callEventKind
	at   time.Time
	// agent is, on evAnswered, the agent connectNow already put the person through
	// to (0: none); on evAgentFree, the agent reserved for the call.
	agent int64
	// reserved is, on evAnswered, the agent a preview dial reserved for the call.
	reserved int64
	// amd is, on evAnswered, whether the call is to be screened for a machine (the
	// campaign screens and the leg carries audio).
	amd bool
	// human and amdAction are, on evScreened, the detector's verdict and what the
	// campaign does with a machine.
	human     bool
	amdAction campaigns.AMDAction
	// outcome is, on evAttemptEnded, evTrunkDropped and evPlaceFailed, the channel's
	// outcome of an unanswered leg.
	outcome campaigns.Outcome
}

// effectKind is one thing the run does for a call.
type effectKind uint8

// The effects step asks for; run.apply carries them out in order.
const (
	effMarkRinging  effectKind = iota + 1 // the attempt rings from the event's time
	effMarkAnswered                       // the attempt answered at the event's time; the patience starts
	effObserve                            // tell the pacer (pacing)
	effScreen                             // start answering-machine detection
	effQueue                              // queue the person for the next free agent
	effLeaveQueue                         // take the call out of the queue
	effConnect                            // put the call through to agent (bridged: connectNow switched the audio already)
	effSave                               // save the attempt's progress
	effScreenPop                          // tell the agent who is on the line
	effHangupBy                           // the attempt was hung up by (by)
	effSafeHarbour                        // play the safe-harbour message, hang up, note that it played
	effLeaveMessage                       // wait for the voicemail's beep, leave the message, hang up
	effHangup                             // hang up
	effReleaseAgent                       // the agent's call ended: audio off, recording closed, wrap-up
	effRecord                             // record the attempt's outcome and move its contact: the call has ended
	effDropped                            // record the attempt the trunk dropped (connected), take its audio off the agent
	effTell                               // tell the agent how the call back on WhatsApp goes (notice)
	effResume                             // call the person back on WhatsApp, for the same agent
	effForget                             // the run forgets the call: nothing is left to record
	effHold                               // queue an inbound caller for the next free agent, with the hold tone, until the longest wait
	effSorry                              // play the inbound apology (we call back), hang up
)

// effect is one thing the run must do, as data.
type effect struct {
	kind    effectKind
	pacing  pacing.ObservationKind // effObserve
	agent   int64                  // effConnect
	bridged bool                   // effConnect: the audio is already switched
	by      string                 // effHangupBy
	outcome campaigns.Outcome      // effRecord
	// stays is, on effRecord, that the contact does not move: the attempt resumed a
	// conversation that moved it already.
	stays  bool
	notice AgentEventKind // effTell
}

func observe(k pacing.ObservationKind) effect { return effect{kind: effObserve, pacing: k} }
func record(o campaigns.Outcome) effect       { return effect{kind: effRecord, outcome: o} }
func hangupBy(by string) effect               { return effect{kind: effHangupBy, by: by} }
func tell(k AgentEventKind) effect            { return effect{kind: effTell, notice: k} }

// recordResume records a resuming attempt's outcome without moving its contact.
func recordResume(o campaigns.Outcome) effect {
	return effect{kind: effRecord, outcome: o, stays: true}
}

// plain are effects of these kinds, without data.
func plain(kinds ...effectKind) (out []effect) {
	for _, k := range kinds {
		out = append(out, effect{kind: k})
	}
	return out
}

// stepKey is one (state, event) pair of the table.
type stepKey struct {
	s  callState
	ev callEventKind
}

// stepRule answers one pair of the table: the next state and the effects.
type stepRule func(ev callEvent) (callState, []effect)

// stay is a row where the event changes nothing: it may come late (a 180
// overtaken by its 200 on the run's queues, a leg whose Place returned after its
// answer was handled) or race with the call's moving on.
func stay(s callState) stepRule { return func(callEvent) (callState, []effect) { return s, nil } }

// liveStates are the states of a call the run still follows.
var liveStates = []callState{callDialing, callRinging, callScreening, callWaiting, callConnected,
	callAbandoning, callMachine, callMachineNext, callVoicemail, callResuming, callResumed, callCanceling, callResumeAbandoning,
	callQueued, callMissing}

// resumeStates are the states of a call taken up on WhatsApp after its trunk
// dropped it.
var resumeStates = []callState{callResuming, callResumed, callCanceling, callResumeAbandoning}

// callTable is the call's transition table: every pair that can happen is a row.
var callTable = func() map[stepKey]stepRule {
	t := map[stepKey]stepRule{
		{callDialing, evRinging}: func(callEvent) (callState, []effect) {
			return callRinging, plain(effMarkRinging)
		},
		{callDialing, evAnswered}:     answered,
		{callRinging, evAnswered}:     answered,
		{callDialing, evAttemptEnded}: unanswered,
		{callRinging, evAttemptEnded}: unanswered,
		{callDialing, evPlaceFailed}:  unanswered,
		{callScreening, evScreened}:   screened,
		{callScreening, evAttemptEnded}: func(callEvent) (callState, []effect) {
			// Hung up while being screened: a person who did not wait, as far
			// as the cap is concerned.
			return callEnded, []effect{observe(pacing.Human), observe(pacing.Abandoned), record(campaigns.OutcomeAbandoned)}
		},
		{callWaiting, evAgentFree}: func(ev callEvent) (callState, []effect) {
			return callConnected, connected(ev.agent, false)
		},
		{callWaiting, evPatienceExpired}: func(callEvent) (callState, []effect) {
			return callAbandoning, []effect{{kind: effLeaveQueue}, hangupBy("local"), observe(pacing.Abandoned), {kind: effSafeHarbour}}
		},
		{callWaiting, evAttemptEnded}: func(callEvent) (callState, []effect) {
			// The person hung up before an agent was free: abandoned all the same.
			return callEnded, []effect{{kind: effLeaveQueue}, observe(pacing.Abandoned), record(campaigns.OutcomeAbandoned)}
		},
		{callConnected, evAgentLost}: func(callEvent) (callState, []effect) {
			// The agent vanished (its page, its network, its phone): the person is
			// left with no one. They hear the safe-harbour message and the call
			// counts abandoned, for the pacer and the law, as if no agent had been
			// free; the agent goes to wrap-up, where its page may still close the
			// call with a disposition.
			return callAbandoning, []effect{hangupBy("agent_lost"), {kind: effReleaseAgent}, observe(pacing.Abandoned), {kind: effSafeHarbour}}
		},
		{callConnected, evAttemptEnded}: func(callEvent) (callState, []effect) {
			return callEnded, []effect{{kind: effReleaseAgent}, observe(pacing.TalkEnded), record(campaigns.OutcomeConnected)}
		},
		{callConnected, evTrunkDropped}: func(callEvent) (callState, []effect) {
			// The person did not hang up, the line dropped: the conversation is
			// recorded as it was (connected, once) and taken up on WhatsApp with
			// the same agent, who keeps the screen-pop.
			return callResuming, []effect{{kind: effDropped}, tell(EventResuming), {kind: effResume}}
		},
		{callResuming, evRinging}: func(callEvent) (callState, []effect) {
			return callResuming, plain(effMarkRinging)
		},
		{callResuming, evAnswered}: func(ev callEvent) (callState, []effect) {
			// Back to the agent kept for it; the pacer and the screen-pop heard of
			// this conversation already.
			return callResumed, []effect{{kind: effMarkAnswered}, {kind: effConnect, agent: ev.reserved}, {kind: effSave}, tell(EventResumed)}
		},
		{callResuming, evAgentHangup}: func(callEvent) (callState, []effect) {
			// The agent stopped waiting for the call back: it is withdrawn, and
			// the agent goes to wrap-up with the conversation's disposition.
			return callCanceling, []effect{hangupBy("agent"), {kind: effReleaseAgent}, observe(pacing.TalkEnded), {kind: effHangup}}
		},
		// The leg answered as it was withdrawn: hung up all the same.
		{callCanceling, evAnswered}:     plainStay(callCanceling, effHangup),
		{callCanceling, evAttemptEnded}: canceled,
		{callCanceling, evPlaceFailed}:  canceled,
		{callResuming, evAttemptEnded}:  resumeFailed,
		{callResuming, evPlaceFailed}:   resumeFailed,
		{callResuming, evResumeRefused}: resumeFailed,
		{callResumed, evAgentLost}: func(callEvent) (callState, []effect) {
			// As for a connected call (callConnected, evAgentLost): the person,
			// back on WhatsApp, is left with no one, hears the safe-harbour message
			// and the call back counts abandoned. The call back is a call the
			// person answered, so the figures count it answered and abandoned; the
			// pacer, which heard of the conversation's answer once, hears of the
			// abandon (so its budget errs on the side of caution).
			return callResumeAbandoning, []effect{hangupBy("agent_lost"), {kind: effReleaseAgent}, observe(pacing.Abandoned), {kind: effSafeHarbour}}
		},
		{callResumeAbandoning, evAttemptEnded}: func(callEvent) (callState, []effect) {
			// The conversation moved the contact already (connected): the call
			// back's abandon moves nobody; the gate's quiet period after an abandon
			// reads the attempt.
			return callEnded, []effect{recordResume(campaigns.OutcomeAbandoned)}
		},
		{callResumed, evAttemptEnded}: func(callEvent) (callState, []effect) {
			return callEnded, []effect{{kind: effReleaseAgent}, observe(pacing.TalkEnded), recordResume(campaigns.OutcomeResumed)}
		},
		// A person's own call: we answer it, so the pacer hears nothing of an
		// answer, a wait or an abandon (none is a dial's); the agent it takes is
		// busy (the pacer's view of agents) and its talk time counts.
		{callDialing, evInboundAnswered}: func(ev callEvent) (callState, []effect) {
			mark := effect{kind: effMarkAnswered}
			if ev.agent != 0 {
				return callConnected, append([]effect{mark}, inboundConnected(ev.agent, true)...)
			}
			return callQueued, []effect{mark, {kind: effSave}, {kind: effHold}}
		},
		{callQueued, evAgentFree}: func(ev callEvent) (callState, []effect) {
			return callConnected, inboundConnected(ev.agent, false)
		},
		{callQueued, evPatienceExpired}: func(callEvent) (callState, []effect) {
			return callMissing, []effect{{kind: effLeaveQueue}, hangupBy("local"), {kind: effSorry}}
		},
		{callQueued, evAttemptEnded}: func(callEvent) (callState, []effect) {
			// The caller hung up in the queue: called back all the same.
			return callEnded, []effect{{kind: effLeaveQueue}, record(campaigns.OutcomeInboundMissed)}
		},
		{callMissing, evAttemptEnded}:     ended(campaigns.OutcomeInboundMissed),
		{callAbandoning, evAttemptEnded}:  ended(campaigns.OutcomeAbandoned),
		{callMachine, evAttemptEnded}:     ended(campaigns.OutcomeMachine),
		{callMachineNext, evAttemptEnded}: ended(campaigns.OutcomeMachineNext),
		{callVoicemail, evAttemptEnded}:   ended(campaigns.OutcomeMachineMessage),
	}
	for _, s := range liveStates {
		// Whatever it was doing, a call up when the engine stops is an attempt
		// cut short: interrupted (the pacer hears of a failed call, as of any
		// call that ended unanswered).
		t[stepKey{s, evStopping}] = func(callEvent) (callState, []effect) {
			return callEnded, []effect{observe(pacing.Failed), record(campaigns.OutcomeInterrupted)}
		}
		if slices.Contains(resumeStates, s) {
			// The conversation moved the contact already; the pacer heard of it.
			t[stepKey{s, evStopping}] = func(callEvent) (callState, []effect) {
				return callEnded, []effect{recordResume(campaigns.OutcomeInterrupted)}
			}
		}
		if s != callResuming {
			// Elsewhere the agent's hang-up ends the leg (run.hangup), and the
			// leg's end says how the call ended.
			t[stepKey{s, evAgentHangup}] = stay(s)
		}
		if rule, ok := t[stepKey{s, evAttemptEnded}]; ok && s != callConnected && !slices.Contains(resumeStates, s) {
			// Only a conversation is taken up when its trunk drops it: any other
			// call the trunk ends has ended as the person hanging up would end it.
			t[stepKey{s, evTrunkDropped}] = rule
		}
		t[stepKey{s, evPlaced}] = stay(s)
		if s != callDialing && s != callResuming {
			t[stepKey{s, evRinging}] = stay(s)
		}
		if s != callConnected && s != callResumed {
			// The agent's audio can go as the call leaves the agent.
			t[stepKey{s, evAgentLost}] = stay(s)
		}
	}
	// An inbound caller the engine stops for was not taken: called back, as
	// one who waited too long (the pacer heard nothing of the call).
	t[stepKey{callQueued, evStopping}] = ended(campaigns.OutcomeInboundMissed)
	t[stepKey{callMissing, evStopping}] = ended(campaigns.OutcomeInboundMissed)
	// The leg came back from Place after the agent gave up: hung up now.
	t[stepKey{callCanceling, evPlaced}] = plainStay(callCanceling, effHangup)
	// The agent gave up the call back before the stop: that is how it ended.
	t[stepKey{callCanceling, evStopping}] = func(callEvent) (callState, []effect) {
		return callEnded, []effect{recordResume(campaigns.OutcomeCanceled)}
	}
	return t
}()

// impossibleSteps are the pairs that cannot happen, and why: step leaves the call
// as it is on them.
var impossibleSteps = func() map[stepKey]string {
	m := map[stepKey]string{}
	for _, s := range liveStates {
		if s != callDialing && s != callRinging && s != callResuming && s != callCanceling {
			m[stepKey{s, evAnswered}] = "a leg answers once, and only a dialing, ringing, resuming or canceling call waits for it"
		}
		if s != callScreening {
			m[stepKey{s, evScreened}] = "only a screened call has a detector running (its verdict for an ended call finds no call)"
		}
		if s != callWaiting && s != callQueued {
			m[stepKey{s, evAgentFree}] = "agents are reserved only for the calls in the queues, which are all waiting or queued"
			m[stepKey{s, evPatienceExpired}] = "only the calls in the queues have a patience running"
		}
		if s != callDialing {
			m[stepKey{s, evInboundAnswered}] = "a person's own call is answered once, as it is placed (Answerer)"
		}
		if s != callDialing && s != callResuming && s != callCanceling {
			m[stepKey{s, evPlaceFailed}] = "Place fails before the leg exists, so before any event of the leg"
		}
		if s != callResuming {
			m[stepKey{s, evResumeRefused}] = "only a resuming call places a call back on WhatsApp"
		}
	}
	m[stepKey{callResuming, evTrunkDropped}] = "a call back on WhatsApp has no trunk to drop it"
	m[stepKey{callResumed, evTrunkDropped}] = "a call back on WhatsApp has no trunk to drop it"
	m[stepKey{callCanceling, evTrunkDropped}] = "a call back on WhatsApp has no trunk to drop it"
	m[stepKey{callResumeAbandoning, evTrunkDropped}] = "a call back on WhatsApp has no trunk to drop it"
	for k := callEventKind(1); int(k) < len(callEventNames); k++ {
		m[stepKey{callEnded, k}] = "an ended call is forgotten by the run: later updates find no call"
	}
	return m
}()

// step is the call's state machine: where a call in state s goes on ev, and what
// the run must do. A pair the table does not list (impossibleSteps) leaves the call
// as it is.
func step(s callState, ev callEvent) (callState, []effect) {
	rule, ok := callTable[stepKey{s, ev.kind}]
	if !ok {
		return s, nil
	}
	return rule(ev)
}

// answered routes an answered call: to the agent connectNow put it through to, to
// the agent a preview dial reserved, to screening, or to the queue.
func answered(ev callEvent) (callState, []effect) {
	mark := []effect{{kind: effMarkAnswered}}
	switch {
	case ev.agent != 0:
		return callConnected, append(append(mark, observe(pacing.Human)), connected(ev.agent, true)...)
	case ev.reserved != 0:
		// A preview dial: its agent waits for it, nobody else takes it and it is
		// never abandoned.
		return callConnected, append(append(mark, observe(pacing.Human)), connected(ev.reserved, false)...)
	case ev.amd:
		// The pacer hears of the person once screening tells a person.
		return callScreening, append(mark, plain(effScreen, effSave)...)
	default:
		// A save after the queue is skipped when a free agent took the call at
		// once: the connect saved it (run.apply stops at a nested step).
		return callWaiting, append(append(mark, observe(pacing.Human)), plain(effQueue, effSave)...)
	}
}

// connected are the effects of putting a call through to agent.
func connected(agent int64, bridged bool) []effect {
	return []effect{{kind: effLeaveQueue}, {kind: effConnect, agent: agent, bridged: bridged},
		observe(pacing.Connected), {kind: effSave}, {kind: effScreenPop}}
}

// inboundConnected are the effects of putting a person's own call through to
// agent: as connected, without telling the pacer of a dial's connect.
func inboundConnected(agent int64, bridged bool) []effect {
	return []effect{{kind: effLeaveQueue}, {kind: effConnect, agent: agent, bridged: bridged}, {kind: effSave}, {kind: effScreenPop}}
}

// screened acts on the detector's verdict: a person goes to an agent, a machine
// is hung up on as the campaign's AMD action says.
func screened(ev callEvent) (callState, []effect) {
	if ev.human {
		return callWaiting, []effect{observe(pacing.Human), {kind: effQueue}}
	}
	machine := []effect{hangupBy("local"), observe(pacing.Machine)}
	switch ev.amdAction {
	case campaigns.AMDLeaveMessage:
		return callVoicemail, append(machine, effect{kind: effLeaveMessage})
	case campaigns.AMDNextRung:
		return callMachineNext, append(machine, effect{kind: effHangup})
	default:
		return callMachine, append(machine, effect{kind: effHangup})
	}
}

// unanswered ends a call that was never answered with the channel's outcome (a
// channel that gave none: a trunk fault). The pacer does not hear of a channel
// that could not take the call (the call did not happen), nor of a call its dead
// trunk cut short (trunk_down): the person had no chance to answer, and an
// outage must not teach the pacer that the channel's people stopped answering
// (the forecast moves to the next channel while it is down: run.routes).
func unanswered(ev callEvent) (callState, []effect) {
	o := ev.outcome
	if o == "" {
		o = campaigns.OutcomeTrunkFault
	}
	var eff []effect
	if !slices.Contains(campaigns.UnplacedOutcomes(), o) && o != campaigns.OutcomeTrunkDown {
		eff = append(eff, observe(pacingKind(o)))
	}
	return callEnded, append(eff, record(o))
}

// resumeFailed ends a call back on WhatsApp that did not reach the person (not
// answered, refused, no permission, not placed): the agent is released to wrap-up
// with the conversation's disposition screen and told; the attempt, if one was
// placed, records the channel's outcome and moves nobody.
func resumeFailed(ev callEvent) (callState, []effect) {
	// Told before the wrap-up begins: the page shows why the call ended.
	eff := []effect{tell(EventResumeFailed), {kind: effReleaseAgent}, observe(pacing.TalkEnded)}
	if ev.kind == evResumeRefused {
		return callEnded, append(eff, effect{kind: effForget})
	}
	o := ev.outcome
	if o == "" {
		o = campaigns.OutcomeTrunkFault
	}
	return callEnded, append(eff, recordResume(o))
}

// canceled ends a call back its agent gave up: canceled, unless the channel
// tells of something else that ended it first (the person declined as it was
// withdrawn, WhatsApp refused it); interrupted is the channels' word for a call
// we hung up. The attempt moves nobody, as every call back's.
func canceled(ev callEvent) (callState, []effect) {
	o := ev.outcome
	if o == "" || o == campaigns.OutcomeInterrupted {
		o = campaigns.OutcomeCanceled
	}
	return callEnded, []effect{recordResume(o)}
}

// plainStay is a row that keeps the call in s and asks for effects of these kinds.
func plainStay(s callState, kinds ...effectKind) stepRule {
	return func(callEvent) (callState, []effect) { return s, plain(kinds...) }
}

// ended ends a call being hung up by the run with the outcome its state stands for.
func ended(o campaigns.Outcome) stepRule {
	return func(callEvent) (callState, []effect) { return callEnded, []effect{record(o)} }
}

// pacingKind is what the pacer learns from an unanswered attempt's outcome.
func pacingKind(o campaigns.Outcome) pacing.ObservationKind {
	switch o {
	case campaigns.OutcomeNoAnswer:
		return pacing.NoAnswer
	case campaigns.OutcomeMachine:
		return pacing.Machine
	}
	return pacing.Failed
}
