package dialer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

var effectNames = map[effectKind]string{
	effMarkRinging: "mark_ringing", effMarkAnswered: "mark_answered", effObserve: "observe", effScreen: "screen",
	effQueue: "queue", effLeaveQueue: "leave_queue", effConnect: "connect", effSave: "save", effScreenPop: "screen_pop",
	effHangupBy: "hangup_by", effSafeHarbour: "safe_harbour", effLeaveMessage: "leave_message",
	effHangup: "hangup", effReleaseAgent: "release_agent", effRecord: "record", effDropped: "dropped", effTell: "tell",
	effResume: "resume", effForget: "forget", effHold: "hold", effSorry: "sorry",
}

var pacingNames = map[pacing.ObservationKind]string{
	pacing.Human: "human", pacing.Machine: "machine", pacing.Connected: "connected", pacing.TalkEnded: "talk_ended",
	pacing.Abandoned: "abandoned", pacing.NoAnswer: "no_answer", pacing.Failed: "failed",
}

// render spells effects as one line, with each effect's data, for comparison.
func render(t *testing.T, effects []effect) string {
	t.Helper()
	var parts []string
	for _, ef := range effects {
		name, ok := effectNames[ef.kind]
		if !ok {
			t.Fatalf("effect kind %d has no name in the test", ef.kind)
		}
		switch ef.kind {
		case effObserve:
			p, ok := pacingNames[ef.pacing]
			if !ok {
				t.Fatalf("pacing kind %d has no name in the test", ef.pacing)
			}
			name += "(" + p + ")"
		case effConnect:
			name += fmt.Sprintf("(%d,bridged=%t)", ef.agent, ef.bridged)
		case effHangupBy:
			name += "(" + ef.by + ")"
		case effRecord:
			if ef.stays {
				name += "_stays"
			}
			name += "(" + string(ef.outcome) + ")"
		case effTell:
			name += "(" + string(ef.notice) + ")"
		}
		parts = append(parts, name)
	}
	return strings.Join(parts, " ")
}

var allStates = append(slices.Clone(liveStates), callEnded)

func allEvents() []callEventKind {
	var kinds []callEventKind
	for k := callEventKind(1); int(k) < len(callEventNames); k++ {
		kinds = append(kinds, k)
	}
	return kinds
}

// TestStepTableIsComplete walks every (state, event) pair: each is a row of the
// table or listed as impossible with a reason, never both, never neither.
func TestStepTableIsComplete(t *testing.T) {
	if got, want := len(allStates), int(callEnded); got != want {
		t.Fatalf("%d states walked, %d declared: a state is missing from liveStates", got, want)
	}
	for _, s := range allStates {
		for _, k := range allEvents() {
			key := stepKey{s, k}
			_, row := callTable[key]
			why, impossible := impossibleSteps[key]
			switch {
			case row && impossible:
				t.Errorf("(%s, %s) is both a row and impossible (%q)", s, k, why)
			case !row && !impossible:
				t.Errorf("(%s, %s) is neither a row nor listed impossible", s, k)
			case impossible && why == "":
				t.Errorf("(%s, %s) is impossible without a reason", s, k)
			}
		}
	}
	for key := range callTable {
		if !slices.Contains(allStates, key.s) || key.ev == 0 || int(key.ev) >= len(callEventNames) {
			t.Errorf("row (%s, %s) is outside the states and events", key.s, key.ev)
		}
	}
}

// stepCase is one row's expectation: from state on event to state with effects.
type stepCase struct {
	name  string
	from  callState
	ev    callEvent
	to    callState
	wants string
}

// TestStepRows checks what every row of the table does; a row no case covers
// fails the test.
func TestStepRows(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	const human = "mark_answered observe(human)"
	connectLoop := func(agent int64) string {
		return fmt.Sprintf("leave_queue connect(%d,bridged=false) observe(connected) save screen_pop", agent)
	}
	tests := []stepCase{
		{"ringing", callDialing, callEvent{kind: evRinging}, callRinging, "mark_ringing"},
		{"answered, agent from connectNow", callDialing, callEvent{kind: evAnswered, agent: 7}, callConnected,
			human + " leave_queue connect(7,bridged=true) observe(connected) save screen_pop"},
		{"answered while ringing, agent from connectNow", callRinging, callEvent{kind: evAnswered, agent: 7, amd: true}, callConnected,
			human + " leave_queue connect(7,bridged=true) observe(connected) save screen_pop"},
		{"answered, preview's reserved agent", callRinging, callEvent{kind: evAnswered, reserved: 3}, callConnected,
			human + " " + connectLoop(3)},
		{"answered, screened", callRinging, callEvent{kind: evAnswered, amd: true}, callScreening, "mark_answered screen save"},
		{"answered, queued", callDialing, callEvent{kind: evAnswered}, callWaiting, human + " queue save"},
		{"no answer", callRinging, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeNoAnswer}, callEnded,
			"observe(no_answer) record(no_answer)"},
		{"busy before ringing", callDialing, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeBusy}, callEnded,
			"observe(failed) record(busy)"},
		{"ended without an outcome", callDialing, callEvent{kind: evAttemptEnded}, callEnded,
			"observe(failed) record(trunk_fault)"},
		{"trunk down while ringing: the pacer does not learn from it", callRinging, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeTrunkDown}, callEnded,
			"record(trunk_down)"},
		{"trunk down before ringing", callDialing, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeTrunkDown}, callEnded,
			"record(trunk_down)"},
		{"channel down", callDialing, callEvent{kind: evPlaceFailed, outcome: campaigns.OutcomeChannelDown}, callEnded,
			"record(channel_down)"},
		{"channel busy", callDialing, callEvent{kind: evPlaceFailed, outcome: campaigns.OutcomeChannelBusy}, callEnded,
			"record(channel_busy)"},
		{"no channel", callDialing, callEvent{kind: evPlaceFailed, outcome: campaigns.OutcomeNoChannel}, callEnded,
			"record(no_channel)"},
		{"no permission", callDialing, callEvent{kind: evPlaceFailed, outcome: campaigns.OutcomeNoPermission}, callEnded,
			"observe(failed) record(no_permission)"},
		{"screened: a person", callScreening, callEvent{kind: evScreened, human: true}, callWaiting, "observe(human) queue"},
		{"screened: a machine, hang up", callScreening, callEvent{kind: evScreened, amdAction: campaigns.AMDHangUp}, callMachine,
			"hangup_by(local) observe(machine) hangup"},
		{"screened: a machine, next rung", callScreening, callEvent{kind: evScreened, amdAction: campaigns.AMDNextRung}, callMachineNext,
			"hangup_by(local) observe(machine) hangup"},
		{"screened: a machine, leave a message", callScreening, callEvent{kind: evScreened, amdAction: campaigns.AMDLeaveMessage}, callVoicemail,
			"hangup_by(local) observe(machine) leave_message"},
		{"hung up while screened", callScreening, callEvent{kind: evAttemptEnded}, callEnded,
			"observe(human) observe(abandoned) record(abandoned)"},
		{"agent free", callWaiting, callEvent{kind: evAgentFree, agent: 9}, callConnected, connectLoop(9)},
		{"patience expired", callWaiting, callEvent{kind: evPatienceExpired}, callAbandoning,
			"leave_queue hangup_by(local) observe(abandoned) safe_harbour"},
		{"hung up while waiting", callWaiting, callEvent{kind: evAttemptEnded}, callEnded,
			"leave_queue observe(abandoned) record(abandoned)"},
		{"agent lost", callConnected, callEvent{kind: evAgentLost}, callAbandoning,
			"hangup_by(agent_lost) release_agent observe(abandoned) safe_harbour"},
		{"talk ended", callConnected, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeNoAnswer}, callEnded,
			"release_agent observe(talk_ended) record(connected)"},
		{"abandoned hung up", callAbandoning, callEvent{kind: evAttemptEnded}, callEnded, "record(abandoned)"},
		{"machine hung up", callMachine, callEvent{kind: evAttemptEnded}, callEnded, "record(machine)"},
		{"machine, next rung, hung up", callMachineNext, callEvent{kind: evAttemptEnded}, callEnded, "record(machine_next)"},
		{"message left", callVoicemail, callEvent{kind: evAttemptEnded}, callEnded, "record(machine_message)"},
		// A conversation its trunk drops is taken up on WhatsApp with the same agent.
		{"trunk dropped the conversation", callConnected, callEvent{kind: evTrunkDropped}, callResuming,
			"dropped tell(resuming) resume"},
		{"call back rings", callResuming, callEvent{kind: evRinging}, callResuming, "mark_ringing"},
		{"call back answered", callResuming, callEvent{kind: evAnswered, reserved: 5}, callResumed,
			"mark_answered connect(5,bridged=false) save tell(resumed)"},
		{"call back not answered", callResuming, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeNoAnswer}, callEnded,
			"tell(resume_failed) release_agent observe(talk_ended) record_stays(no_answer)"},
		{"call back rejected", callResuming, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeRejected}, callEnded,
			"tell(resume_failed) release_agent observe(talk_ended) record_stays(rejected)"},
		{"call back without permission", callResuming, callEvent{kind: evPlaceFailed, outcome: campaigns.OutcomeNoPermission}, callEnded,
			"tell(resume_failed) release_agent observe(talk_ended) record_stays(no_permission)"},
		{"call back refused by the gate", callResuming, callEvent{kind: evResumeRefused}, callEnded,
			"tell(resume_failed) release_agent observe(talk_ended) forget"},
		{"resumed talk ended", callResumed, callEvent{kind: evAttemptEnded}, callEnded,
			"release_agent observe(talk_ended) record_stays(resumed)"},
		{"resumed agent lost", callResumed, callEvent{kind: evAgentLost}, callResumeAbandoning,
			"hangup_by(agent_lost) release_agent observe(abandoned) safe_harbour"},
		{"resumed, agent lost, hung up", callResumeAbandoning, callEvent{kind: evAttemptEnded}, callEnded, "record_stays(abandoned)"},
		{"resumed, agent lost, stopping", callResumeAbandoning, callEvent{kind: evStopping}, callEnded, "record_stays(interrupted)"},
		// The agent who gives up waiting for the call back withdraws it, and
		// goes to wrap-up at once.
		{"agent gave up the call back", callResuming, callEvent{kind: evAgentHangup}, callCanceling,
			"hangup_by(agent) release_agent observe(talk_ended) hangup"},
		{"call back placed after the agent gave up", callCanceling, callEvent{kind: evPlaced}, callCanceling, "hangup"},
		{"call back answered as it was withdrawn", callCanceling, callEvent{kind: evAnswered, reserved: 5}, callCanceling, "hangup"},
		{"call back withdrawn", callCanceling, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeInterrupted}, callEnded,
			"record_stays(canceled)"},
		{"call back declined as it was withdrawn", callCanceling, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeRejected}, callEnded,
			"record_stays(rejected)"},
		{"call back not placed after the agent gave up", callCanceling, callEvent{kind: evPlaceFailed, outcome: campaigns.OutcomeNoPermission}, callEnded,
			"record_stays(no_permission)"},
		// Any other call the trunk ends ends as if the person hung up.
		{"trunk dropped while waiting", callWaiting, callEvent{kind: evTrunkDropped}, callEnded,
			"leave_queue observe(abandoned) record(abandoned)"},
		{"trunk dropped while screened", callScreening, callEvent{kind: evTrunkDropped}, callEnded,
			"observe(human) observe(abandoned) record(abandoned)"},
		{"trunk dropped while ringing", callRinging, callEvent{kind: evTrunkDropped, outcome: campaigns.OutcomeTrunkDown}, callEnded,
			"record(trunk_down)"},
		{"trunk dropped before ringing", callDialing, callEvent{kind: evTrunkDropped, outcome: campaigns.OutcomeTrunkDown}, callEnded,
			"record(trunk_down)"},
		{"trunk dropped the abandon", callAbandoning, callEvent{kind: evTrunkDropped}, callEnded, "record(abandoned)"},
		{"trunk dropped the machine", callMachine, callEvent{kind: evTrunkDropped}, callEnded, "record(machine)"},
		{"trunk dropped the machine, next rung", callMachineNext, callEvent{kind: evTrunkDropped}, callEnded, "record(machine_next)"},
		{"trunk dropped the message", callVoicemail, callEvent{kind: evTrunkDropped}, callEnded, "record(machine_message)"},
		// A person's own call: the pacer hears of no dial's answer, wait or abandon.
		{"inbound answered, agent from connectNow", callDialing, callEvent{kind: evInboundAnswered, agent: 7}, callConnected,
			"mark_answered leave_queue connect(7,bridged=true) save screen_pop"},
		{"inbound answered, all agents busy", callDialing, callEvent{kind: evInboundAnswered}, callQueued, "mark_answered save hold"},
		{"inbound caller gets an agent", callQueued, callEvent{kind: evAgentFree, agent: 4}, callConnected,
			"leave_queue connect(4,bridged=false) save screen_pop"},
		{"inbound caller waited the longest wait", callQueued, callEvent{kind: evPatienceExpired}, callMissing,
			"leave_queue hangup_by(local) sorry"},
		{"inbound caller hung up in the queue", callQueued, callEvent{kind: evAttemptEnded}, callEnded,
			"leave_queue record(inbound_missed)"},
		{"trunk dropped an inbound caller", callQueued, callEvent{kind: evTrunkDropped}, callEnded,
			"leave_queue record(inbound_missed)"},
		{"inbound apology over", callMissing, callEvent{kind: evAttemptEnded}, callEnded, "record(inbound_missed)"},
		{"trunk dropped the inbound apology", callMissing, callEvent{kind: evTrunkDropped}, callEnded, "record(inbound_missed)"},
	}
	for _, s := range liveStates {
		stopped := "observe(failed) record(interrupted)"
		switch {
		case s == callCanceling:
			stopped = "record_stays(canceled)" // the agent gave it up before the stop
		case s == callQueued || s == callMissing:
			stopped = "record(inbound_missed)" // nobody took the person's call: called back
		case slices.Contains(resumeStates, s):
			stopped = "record_stays(interrupted)" // the conversation moved the contact and told the pacer
		}
		tests = append(tests, stepCase{"stopping while " + s.String(), s, callEvent{kind: evStopping}, callEnded, stopped})
		if s != callCanceling {
			tests = append(tests, stepCase{"leg returned while " + s.String(), s, callEvent{kind: evPlaced}, s, ""})
		}
		if s != callResuming {
			tests = append(tests, stepCase{"agent hung up while " + s.String(), s, callEvent{kind: evAgentHangup}, s, ""})
		}
		if s != callDialing && s != callResuming {
			tests = append(tests, stepCase{"late ringing while " + s.String(), s, callEvent{kind: evRinging}, s, ""})
		}
		if s != callConnected && s != callResumed {
			tests = append(tests, stepCase{"agent lost while " + s.String(), s, callEvent{kind: evAgentLost}, s, ""})
		}
	}
	covered := map[stepKey]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.at = at
			to, effects := step(tc.from, tc.ev)
			if to != tc.to {
				t.Errorf("step(%s, %s) went to %s, want %s", tc.from, tc.ev.kind, to, tc.to)
			}
			if got := render(t, effects); got != tc.wants {
				t.Errorf("step(%s, %s) effects\n got: %s\nwant: %s", tc.from, tc.ev.kind, got, tc.wants)
			}
			// A call back refused before it was placed has no attempt of its own to
			// record: it is only forgotten.
			if (to == callEnded) != slices.ContainsFunc(effects, func(e effect) bool { return e.kind == effRecord || e.kind == effForget }) {
				t.Errorf("step(%s, %s): a call ends exactly when its outcome is recorded (or, never placed, it is forgotten)", tc.from, tc.ev.kind)
			}
		})
		covered[stepKey{tc.from, tc.ev.kind}] = true
	}
	for key := range callTable {
		if !covered[key] {
			t.Errorf("row (%s, %s) has no case", key.s, key.ev)
		}
	}
	// An impossible pair leaves the call where it is, doing nothing.
	for key := range impossibleSteps {
		if to, effects := step(key.s, callEvent{kind: key.ev, at: at, agent: 1}); to != key.s || len(effects) != 0 {
			t.Errorf("impossible (%s, %s) went to %s with %d effects", key.s, key.ev, to, len(effects))
		}
	}
}

// fakeAttempt is the channel's side of a call in the scenarios: what the run did to it.
type fakeAttempt struct {
	hungUp, prompt, message bool
}

// fakeCall carries out step's effects the way the run does, on a fake leg and a
// fake clock: the pacer's observations, the queue, the agent and the outcome.
type fakeCall struct {
	t        *testing.T
	state    callState
	now      time.Time
	started  time.Time
	answered time.Time
	leg      fakeAttempt
	queued   bool
	agent    int64
	freeAgt  int64 // an agent free when the call is queued (0: none)
	observed []string
	hangupBy string
	outcome  campaigns.Outcome
	stays    bool // the outcome recorded moves no contact
	released bool
	// dropped is the outcome recorded for the attempt its trunk dropped; told the
	// agent's notices; resumed whether a call back was placed, refuseResume that
	// the gate refuses it; forgotten that the run forgot the call unrecorded.
	dropped      campaigns.Outcome
	told         []AgentEventKind
	resumed      bool
	refuseResume bool
	forgotten    bool
}

func newFakeCall(t *testing.T) *fakeCall {
	t.Helper()
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	return &fakeCall{t: t, state: callDialing, now: start, started: start}
}

// after moves the fake clock on by d and feeds ev at the new time.
func (f *fakeCall) after(d time.Duration, ev callEvent) *fakeCall {
	f.t.Helper()
	f.now = f.now.Add(d)
	ev.at = f.now
	var effects []effect
	f.state, effects = step(f.state, ev)
	target := f.state
	for _, ef := range effects {
		if f.state != target {
			return f // a nested step took over, as in run.apply
		}
		switch ef.kind {
		case effMarkAnswered:
			f.answered = ev.at
		case effObserve:
			f.observed = append(f.observed, pacingNames[ef.pacing])
		case effQueue:
			f.queued = true
			if f.freeAgt != 0 {
				f.after(0, callEvent{kind: evAgentFree, agent: f.freeAgt})
			}
		case effHold:
			f.queued = true
			if f.freeAgt != 0 {
				f.after(0, callEvent{kind: evAgentFree, agent: f.freeAgt})
			}
		case effSorry:
			f.leg.prompt, f.leg.hungUp = true, true
		case effLeaveQueue:
			f.queued = false
		case effConnect:
			f.agent = ef.agent
		case effHangupBy:
			f.hangupBy = ef.by
		case effSafeHarbour:
			f.leg.prompt, f.leg.hungUp = true, true
		case effLeaveMessage:
			f.leg.message, f.leg.hungUp = true, true
		case effHangup:
			f.leg.hungUp = true
		case effReleaseAgent:
			f.released = true
		case effDropped:
			f.dropped = campaigns.OutcomeConnected
		case effTell:
			f.told = append(f.told, ef.notice)
		case effResume:
			if f.refuseResume {
				f.after(0, callEvent{kind: evResumeRefused})
				continue
			}
			f.resumed = true
		case effForget:
			f.forgotten = true
		case effRecord:
			if f.outcome != "" {
				f.t.Fatalf("outcome recorded twice: %s then %s", f.outcome, ef.outcome)
			}
			f.outcome, f.stays = ef.outcome, ef.stays
		}
	}
	return f
}

func (f *fakeCall) want(state callState, outcome campaigns.Outcome, observed ...string) {
	f.t.Helper()
	if f.state != state || f.outcome != outcome {
		f.t.Errorf("call is %s with outcome %q, want %s with %q", f.state, f.outcome, state, outcome)
	}
	if !slices.Equal(f.observed, observed) {
		f.t.Errorf("pacer observed %v, want %v", f.observed, observed)
	}
}

func TestStepScenarios(t *testing.T) {
	patience := 2 * time.Second
	t.Run("inbound: on hold, then an agent, then talk; the pacer hears only the talk", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(100*time.Millisecond, callEvent{kind: evInboundAnswered})
		if f.state != callQueued || !f.queued {
			t.Fatalf("inbound caller with every agent busy: %s, queued %t", f.state, f.queued)
		}
		f.after(40*time.Second, callEvent{kind: evAgentFree, agent: 2}).after(time.Minute, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeConnected, "talk_ended")
		if f.agent != 2 || f.queued || !f.released {
			t.Errorf("agent %d, queued %t, released %t", f.agent, f.queued, f.released)
		}
	})
	t.Run("inbound: nobody within the longest wait: apology, hung up, owed a call back", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(100*time.Millisecond, callEvent{kind: evInboundAnswered}).after(time.Minute, callEvent{kind: evPatienceExpired})
		if f.state != callMissing || !f.leg.prompt || !f.leg.hungUp || f.hangupBy != "local" || f.queued {
			t.Fatalf("after the longest wait: %s, leg %+v, hung up by %q, queued %t", f.state, f.leg, f.hangupBy, f.queued)
		}
		f.after(4*time.Second, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeInboundMissed)
	})
	t.Run("queued, then an agent, then talk", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(100*time.Millisecond, callEvent{kind: evPlaced}).after(time.Second, callEvent{kind: evRinging}).
			after(5*time.Second, callEvent{kind: evAnswered})
		if !f.queued || f.state != callWaiting {
			t.Fatalf("answered with no agent free: %s, queued %t", f.state, f.queued)
		}
		f.after(time.Second, callEvent{kind: evAgentFree, agent: 4})
		if f.queued || f.agent != 4 || f.state != callConnected {
			t.Fatalf("agent free: %s, agent %d, queued %t", f.state, f.agent, f.queued)
		}
		f.after(90*time.Second, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeNoAnswer})
		f.want(callEnded, campaigns.OutcomeConnected, "human", "connected", "talk_ended")
		if !f.released || f.leg.prompt {
			t.Errorf("agent released %t, prompt played %t", f.released, f.leg.prompt)
		}
	})
	t.Run("queued with an agent free: put through at once, saved once", func(t *testing.T) {
		f := newFakeCall(t)
		f.freeAgt = 2
		f.after(3*time.Second, callEvent{kind: evAnswered})
		f.want(callConnected, "", "human", "connected")
		if f.agent != 2 || f.queued {
			t.Errorf("agent %d, queued %t", f.agent, f.queued)
		}
	})
	t.Run("patience expired: abandoned with the safe-harbour message", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(4*time.Second, callEvent{kind: evAnswered})
		f.after(patience-safeHarbourLead, callEvent{kind: evPatienceExpired})
		if f.state != callAbandoning || f.queued || !f.leg.prompt || !f.leg.hungUp || f.hangupBy != "local" {
			t.Fatalf("after the patience: %s, queued %t, leg %+v, hung up by %q", f.state, f.queued, f.leg, f.hangupBy)
		}
		if f.now.Sub(f.answered) > patience {
			t.Errorf("message started %s after the answer, past the patience", f.now.Sub(f.answered))
		}
		// An agent freed meanwhile is not for this call any more.
		if to, effects := step(f.state, callEvent{kind: evAgentFree, agent: 1}); to != callAbandoning || effects != nil {
			t.Errorf("agent free while abandoning: %s, %v", to, effects)
		}
		f.after(3*time.Second, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeAbandoned, "human", "abandoned")
	})
	t.Run("preview: the reserved agent takes the answer", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(2*time.Second, callEvent{kind: evAnswered, reserved: 6, amd: true})
		if f.agent != 6 || f.queued {
			t.Fatalf("agent %d, queued %t", f.agent, f.queued)
		}
		f.after(time.Minute, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeConnected, "human", "connected", "talk_ended")
	})
	t.Run("connectNow, then the agent's audio lost", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(2*time.Second, callEvent{kind: evAnswered, agent: 8})
		f.after(10*time.Second, callEvent{kind: evAgentLost})
		if f.state != callAbandoning || !f.leg.prompt || f.hangupBy != "agent_lost" || !f.released {
			t.Fatalf("agent lost: %s, leg %+v, hung up by %q, agent released %t", f.state, f.leg, f.hangupBy, f.released)
		}
		// A second report of the same loss changes nothing.
		f.after(0, callEvent{kind: evAgentLost})
		f.after(time.Second, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeAbandoned, "human", "connected", "abandoned")
	})
	for _, tc := range []struct {
		action  campaigns.AMDAction
		state   callState
		outcome campaigns.Outcome
		message bool
	}{
		{campaigns.AMDHangUp, callMachine, campaigns.OutcomeMachine, false},
		{"", callMachine, campaigns.OutcomeMachine, false},
		{campaigns.AMDNextRung, callMachineNext, campaigns.OutcomeMachineNext, false},
		{campaigns.AMDLeaveMessage, callVoicemail, campaigns.OutcomeMachineMessage, true},
	} {
		t.Run("machine, action "+string(tc.action), func(t *testing.T) {
			f := newFakeCall(t)
			f.after(3*time.Second, callEvent{kind: evAnswered, amd: true})
			if f.state != callScreening || f.queued {
				t.Fatalf("answered with AMD: %s, queued %t", f.state, f.queued)
			}
			f.after(1500*time.Millisecond, callEvent{kind: evScreened, amdAction: tc.action})
			if f.state != tc.state || !f.leg.hungUp || f.leg.message != tc.message || f.hangupBy != "local" {
				t.Fatalf("machine: %s, leg %+v, hung up by %q", f.state, f.leg, f.hangupBy)
			}
			f.after(time.Second, callEvent{kind: evAttemptEnded})
			f.want(callEnded, tc.outcome, "machine")
		})
	}
	t.Run("screened: a person waits like any other", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(3*time.Second, callEvent{kind: evAnswered, amd: true}).after(time.Second, callEvent{kind: evScreened, human: true})
		if f.state != callWaiting || !f.queued {
			t.Fatalf("screened human: %s, queued %t", f.state, f.queued)
		}
		f.after(time.Second, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeAbandoned, "human", "abandoned")
	})
	t.Run("trunk drops the talk: called back on WhatsApp, same agent, counted once", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(2*time.Second, callEvent{kind: evAnswered, agent: 3}).after(30*time.Second, callEvent{kind: evTrunkDropped})
		if f.state != callResuming || f.dropped != campaigns.OutcomeConnected || !f.resumed || f.released || f.outcome != "" {
			t.Fatalf("dropped: %s, dropped recorded %q, resumed %t, agent released %t, outcome %q", f.state, f.dropped, f.resumed, f.released, f.outcome)
		}
		f.after(500*time.Millisecond, callEvent{kind: evPlaced}).after(time.Second, callEvent{kind: evRinging}).
			after(2*time.Second, callEvent{kind: evAnswered, reserved: 3})
		if f.state != callResumed || f.agent != 3 {
			t.Fatalf("answered on WhatsApp: %s, agent %d", f.state, f.agent)
		}
		f.after(time.Minute, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeResumed, "human", "connected", "talk_ended")
		if !f.released || !slices.Equal(f.told, []AgentEventKind{EventResuming, EventResumed}) {
			t.Errorf("released %t, told %v", f.released, f.told)
		}
	})
	t.Run("trunk drops the talk: back on WhatsApp, the agent vanishes: safe-harbour, abandoned", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(2*time.Second, callEvent{kind: evAnswered, agent: 3}).after(30*time.Second, callEvent{kind: evTrunkDropped}).
			after(2*time.Second, callEvent{kind: evAnswered, reserved: 3}).after(20*time.Second, callEvent{kind: evAgentLost})
		if f.state != callResumeAbandoning || !f.leg.prompt || f.hangupBy != "agent_lost" || !f.released {
			t.Fatalf("agent lost on the call back: %s, leg %+v, hung up by %q, agent released %t", f.state, f.leg, f.hangupBy, f.released)
		}
		// A second report of the same loss changes nothing.
		f.after(0, callEvent{kind: evAgentLost})
		f.after(3*time.Second, callEvent{kind: evAttemptEnded})
		f.want(callEnded, campaigns.OutcomeAbandoned, "human", "connected", "abandoned")
		if !f.stays {
			t.Error("the call back's abandon moved the contact, which its conversation moved already")
		}
	})
	t.Run("trunk drops the talk: the call back rings out, the agent wraps up", func(t *testing.T) {
		f := newFakeCall(t)
		f.after(2*time.Second, callEvent{kind: evAnswered, agent: 3}).after(30*time.Second, callEvent{kind: evTrunkDropped}).
			after(20*time.Second, callEvent{kind: evAttemptEnded, outcome: campaigns.OutcomeNoAnswer})
		f.want(callEnded, campaigns.OutcomeNoAnswer, "human", "connected", "talk_ended")
		if !f.released || !slices.Equal(f.told, []AgentEventKind{EventResuming, EventResumeFailed}) {
			t.Errorf("released %t, told %v", f.released, f.told)
		}
	})
	t.Run("trunk drops the talk: the gate refuses the call back", func(t *testing.T) {
		f := newFakeCall(t)
		f.refuseResume = true
		f.after(2*time.Second, callEvent{kind: evAnswered, agent: 3}).after(30*time.Second, callEvent{kind: evTrunkDropped})
		f.want(callEnded, "", "human", "connected", "talk_ended")
		if !f.released || !f.forgotten || f.resumed || f.dropped != campaigns.OutcomeConnected ||
			!slices.Equal(f.told, []AgentEventKind{EventResuming, EventResumeFailed}) {
			t.Errorf("released %t, forgotten %t, resumed %t, dropped %q, told %v", f.released, f.forgotten, f.resumed, f.dropped, f.told)
		}
	})
	// Every live state, reached the way a call reaches it, ends interrupted when
	// the engine stops.
	paths := map[callState][]callEvent{
		callDialing:     nil,
		callRinging:     {{kind: evRinging}},
		callScreening:   {{kind: evAnswered, amd: true}},
		callWaiting:     {{kind: evAnswered}},
		callConnected:   {{kind: evAnswered, agent: 1}},
		callAbandoning:  {{kind: evAnswered}, {kind: evPatienceExpired}},
		callMachine:     {{kind: evAnswered, amd: true}, {kind: evScreened, amdAction: campaigns.AMDHangUp}},
		callMachineNext: {{kind: evAnswered, amd: true}, {kind: evScreened, amdAction: campaigns.AMDNextRung}},
		callVoicemail:   {{kind: evAnswered, amd: true}, {kind: evScreened, amdAction: campaigns.AMDLeaveMessage}},
		callResuming:    {{kind: evAnswered, agent: 1}, {kind: evTrunkDropped}},
		callResumed:     {{kind: evAnswered, agent: 1}, {kind: evTrunkDropped}, {kind: evAnswered, reserved: 1}},
		callCanceling:   {{kind: evAnswered, agent: 1}, {kind: evTrunkDropped}, {kind: evAgentHangup}},
		callResumeAbandoning: {{kind: evAnswered, agent: 1}, {kind: evTrunkDropped}, {kind: evAnswered, reserved: 1},
			{kind: evAgentLost}},
		callQueued:  {{kind: evInboundAnswered}},
		callMissing: {{kind: evInboundAnswered}, {kind: evPatienceExpired}},
	}
	for _, s := range liveStates {
		t.Run("stopping while "+s.String(), func(t *testing.T) {
			path, ok := paths[s]
			if !ok {
				t.Fatalf("no path to %s", s)
			}
			f := newFakeCall(t)
			for _, ev := range path {
				f.after(time.Second, ev)
			}
			if f.state != s {
				t.Fatalf("path reached %s, want %s", f.state, s)
			}
			f.observed = nil
			f.after(time.Second, callEvent{kind: evStopping})
			if s == callCanceling {
				f.want(callEnded, campaigns.OutcomeCanceled)
				return
			}
			if slices.Contains(resumeStates, s) {
				f.want(callEnded, campaigns.OutcomeInterrupted) // the pacer heard of the conversation already
				return
			}
			if s == callQueued || s == callMissing {
				f.want(callEnded, campaigns.OutcomeInboundMissed) // a person's own call, owed a call back
				return
			}
			f.want(callEnded, campaigns.OutcomeInterrupted, "failed")
		})
	}
	for _, o := range []campaigns.Outcome{campaigns.OutcomeChannelDown, campaigns.OutcomeChannelBusy, campaigns.OutcomeNoChannel,
		campaigns.OutcomeNoPermission, campaigns.OutcomeInterrupted, ""} {
		t.Run("place failed: "+string(o), func(t *testing.T) {
			f := newFakeCall(t)
			f.after(50*time.Millisecond, callEvent{kind: evPlaceFailed, outcome: o})
			want, observed := o, []string{"failed"}
			if o == "" {
				want = campaigns.OutcomeTrunkFault
			}
			if o == campaigns.OutcomeChannelDown || o == campaigns.OutcomeChannelBusy || o == campaigns.OutcomeNoChannel {
				observed = nil // the channel could not take the call: no call for the pacer
			}
			f.want(callEnded, want, observed...)
		})
	}
}

// logLines is a log sink the engine's goroutines may write to at once.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the JSON records logged so far with message msg.
func (l *logLines) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(l.buf.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestCallLoggerCarriesTheAttempt runs calls to a real sipp carrier that answers
// busy and checks that the run's lines about each call carry its campaign,
// attempt, contact and channel, as stored.
func TestCallLoggerCarriesTheAttempt(t *testing.T) {
	carrier := sipptest.Start(t, "busy.xml", sipptest.Options{Calls: 2})
	lines := &logLines{}
	log := slog.New(slog.NewJSONHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarnessLogging(t, filepath.Join(t.TempDir(), "turbina.db"), storage.Options{},
		sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{RingTimeout: 3 * time.Second}, log)
	c := h.campaign(2, campaigns.PacingProgressive, sipOnlyLadder(1))
	h.agents(c.ID, 2, time.Second)
	list := h.waitContacts(c.ID, 15*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactExhausted })
	carrier.Wait(t, 10*time.Second)

	ended := lines.records(t, "attempt ended")
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) != 1 {
			t.Fatalf("contact %d: %d attempts, want 1", ct.ID, len(as))
		}
		a := as[0]
		i := slices.IndexFunc(ended, func(rec map[string]any) bool { return rec["attempt"] == float64(a.ID) })
		if i < 0 {
			t.Fatalf("no 'attempt ended' line for attempt %d among %v", a.ID, ended)
		}
		rec := ended[i]
		want := map[string]any{"campaign": float64(c.ID), "contact": float64(ct.ID), "channel": string(campaigns.ChannelSIP),
			"outcome": string(campaigns.OutcomeBusy)}
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("attempt %d's line: %s = %v, want %v (%v)", a.ID, k, rec[k], v, rec)
			}
		}
	}
}

// TestSnapshotCountsEveryState checks the pacer's view of a run's calls in each
// state: dials ringing, people screened or queued waiting, lines being hung up
// (abandoned or a machine) held, and connected calls in none of these.
func TestSnapshotCountsEveryState(t *testing.T) {
	e := &Engine{agents: NewAgents()}
	r := newRun(e, campaigns.Campaign{ID: 1})
	sipRung := campaigns.Rung{Channel: campaigns.ChannelSIP}
	for i, s := range liveStates {
		c := &call{attempt: storage.Attempt{ID: int64(i + 1)}, rung: sipRung, state: s}
		r.calls[c.attempt.ID] = c
		switch s {
		case callWaiting:
			r.waiting = append(r.waiting, c)
		case callQueued:
			r.queued = append(r.queued, c)
		}
	}
	snap := r.snapshot()
	if len(snap.Dials) != 2 || snap.Waiting != 3 || snap.Holding != 6 {
		t.Errorf("snapshot: %d dials, %d waiting, %d holding; want 2 (dialing, ringing), 3 (screening, waiting, an inbound caller on hold), "+
			"6 (the two abandoning states, the three machine states and an inbound caller hearing the apology)", len(snap.Dials), snap.Waiting, snap.Holding)
	}
}
