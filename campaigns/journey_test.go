package campaigns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestApplyLadder(t *testing.T) {
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	ladder := []Rung{
		{Channel: ChannelSIP, MaxAttempts: 2, RetryDelay: Duration(30 * time.Minute)},
		{Channel: ChannelWhatsAppCall, MaxAttempts: 1, RetryDelay: Duration(time.Hour)},
		{Channel: ChannelWhatsAppTemplate, MaxAttempts: 1},
	}
	sipOnly := ladder[:1]
	noTemplate := ladder[:2]
	samePhone := Contact{Phone: "+5511987654321"}
	ownWhatsApp := Contact{Phone: "+5511987654321", WhatsApp: "+5511912345678"}
	pending := ContactPending
	at := func(rung, attempts int, after time.Duration, st ContactStatus) Position {
		return Position{Rung: rung, Attempts: attempts, NextAt: now.Add(after), Status: st}
	}
	tests := []struct {
		name    string
		ladder  []Rung
		contact Contact
		from    Position // the attempt is under way: Apply sees it in_progress
		outcome Outcome
		want    Position
	}{
		{"connected finishes", ladder, samePhone, at(0, 0, 0, pending), OutcomeConnected, at(0, 1, 0, ContactDone)},
		{"busy retries after the rung's delay", ladder, samePhone, at(0, 0, 0, pending), OutcomeBusy, at(0, 1, 30*time.Minute, pending)},
		{"no answer on the last SIP attempt climbs to WhatsApp at once", ladder, samePhone, at(0, 1, 0, pending), OutcomeNoAnswer, at(1, 0, 0, pending)},
		{"trunk down climbs at once without using an attempt", ladder, samePhone, at(0, 0, 0, pending), OutcomeChannelDown, at(1, 0, 0, pending)},
		{"trunk down on the last rung: waits for it, free", sipOnly, samePhone, at(0, 1, 0, pending), OutcomeChannelDown, at(0, 1, channelDownDelay, pending)},
		{"channel not configured: skipped", ladder, samePhone, at(1, 0, 0, pending), OutcomeNoChannel, at(2, 0, 0, pending)},
		{"channel not configured, last rung: exhausted", sipOnly, samePhone, at(0, 0, 0, pending), OutcomeNoChannel, at(1, 0, 0, ContactExhausted)},
		{"channel full: soon again, free", ladder, samePhone, at(0, 1, 0, pending), OutcomeChannelBusy, at(0, 1, channelBusyDelay, pending)},
		{"machine, campaign moves on", ladder, samePhone, at(0, 0, 0, pending), OutcomeMachineNext, at(1, 0, 0, pending)},
		{"machine retries", ladder, samePhone, at(0, 0, 0, pending), OutcomeMachine, at(0, 1, 30*time.Minute, pending)},
		{"rejected climbs", ladder, samePhone, at(0, 0, 0, pending), OutcomeRejected, at(1, 0, 0, pending)},
		{"interrupted call uses its attempt and waits the rung's delay", ladder, samePhone, at(0, 0, 0, pending), OutcomeInterrupted, at(0, 1, 30*time.Minute, pending)},
		{"interrupted call on its last attempt climbs", ladder, samePhone, at(0, 1, 0, pending), OutcomeInterrupted, at(1, 0, 0, pending)},
		{"interrupted template send: again at once under the same key, free", ladder, samePhone, at(2, 0, 0, pending), OutcomeInterrupted, at(2, 0, time.Nanosecond, pending)},
		{"invalid number, same number on WhatsApp: invalid", ladder, samePhone, at(0, 0, 0, pending), OutcomeInvalidNumber, at(3, 0, 0, ContactInvalid)},
		{"invalid number, own WhatsApp number: WhatsApp call", ladder, ownWhatsApp, at(0, 0, 0, pending), OutcomeInvalidNumber, at(1, 0, 0, pending)},
		{"WhatsApp call rejected: template", ladder, samePhone, at(1, 0, 0, pending), OutcomeRejected, at(2, 0, 0, pending)},
		{"no permission: template", ladder, samePhone, at(1, 0, 0, pending), OutcomeNoPermission, at(2, 0, 0, pending)},
		{"not on WhatsApp, nothing else left: exhausted", ladder, samePhone, at(1, 0, 0, pending), OutcomeNotOnWhatsApp, at(3, 0, 0, ContactExhausted)},
		{"template sent finishes", ladder, samePhone, at(2, 0, 0, pending), OutcomeSent, at(2, 1, 0, ContactDone)},
		{"template failed: exhausted", ladder, samePhone, at(2, 0, 0, pending), OutcomeSendFailed, at(3, 0, 0, ContactExhausted)},
		{"abandoned: sorry-we-missed-you template at once", ladder, samePhone, at(0, 0, 0, pending), OutcomeAbandoned, at(2, 0, 0, pending)},
		{"abandoned without a template rung: quiet for 72 h", noTemplate, samePhone, at(0, 0, 0, pending), OutcomeAbandoned, at(0, 1, AbandonQuietPeriod, pending)},
		{"last attempt of the last rung: exhausted", sipOnly, samePhone, at(0, 1, 0, pending), OutcomeBusy, at(1, 0, 0, ContactExhausted)},
		{"past the end: exhausted", sipOnly, samePhone, at(5, 0, 0, pending), OutcomeBusy, at(5, 0, 0, ContactExhausted)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from
			from.Status = ContactInProgress
			got, err := Apply(tc.ladder, tc.contact, from, OutcomeEvent(tc.outcome), now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Apply(%+v, %s) = %+v, want %+v", from, tc.outcome, got, tc.want)
			}
		})
	}
}

// TestApplyTrunkFailures: a call its trunk failed (trunk_fault) or that was caught
// by the trunk's death (trunk_down) moves to the next channel at once, on every
// shape of ladder; with no other channel left it waits for the trunk.
func TestApplyTrunkFailures(t *testing.T) {
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	sip := Rung{Channel: ChannelSIP, MaxAttempts: 3, RetryDelay: Duration(30 * time.Minute)}
	call := Rung{Channel: ChannelWhatsAppCall, MaxAttempts: 2, RetryDelay: Duration(time.Hour)}
	template := Rung{Channel: ChannelWhatsAppTemplate, MaxAttempts: 2}
	full := []Rung{sip, call, template}
	sipThenTemplate := []Rung{sip, template}
	sipLast := []Rung{call, sip}
	sipOnly := []Rung{sip}
	// Validate refuses a channel twice, but the table must not rely on it: a
	// second SIP rung (another number, another trunk group) is on the same
	// channel and is skipped all the same.
	sipTwice := []Rung{sip, sip, call}
	sipTwiceOnly := []Rung{sip, sip}
	samePhone := Contact{Phone: "+5511987654321"}
	ownWhatsApp := Contact{Phone: "+5511987654321", WhatsApp: "+5511912345678"}
	pending := ContactPending
	at := func(rung, attempts int, after time.Duration, st ContactStatus) Position {
		return Position{Rung: rung, Attempts: attempts, NextAt: now.Add(after), Status: st}
	}
	tests := []struct {
		name    string
		ladder  []Rung
		contact Contact
		from    Position
		outcome Outcome
		want    Position
	}{
		{"trunk down on SIP: the WhatsApp call at once", full, samePhone, at(0, 0, 0, pending), OutcomeTrunkDown, at(1, 0, 0, pending)},
		{"trunk down on SIP's last attempt: the WhatsApp call at once", full, samePhone, at(0, 2, 0, pending), OutcomeTrunkDown, at(1, 0, 0, pending)},
		{"trunk down, own WhatsApp number: the WhatsApp call", full, ownWhatsApp, at(0, 1, 0, pending), OutcomeTrunkDown, at(1, 0, 0, pending)},
		{"trunk down, no WhatsApp call rung: the template at once", sipThenTemplate, samePhone, at(0, 0, 0, pending), OutcomeTrunkDown, at(1, 0, 0, pending)},
		{"trunk down, SIP again next: skipped for the WhatsApp call", sipTwice, samePhone, at(0, 0, 0, pending), OutcomeTrunkDown, at(2, 0, 0, pending)},
		{"trunk down, SIP the last rung: waits for the trunk, free", sipLast, samePhone, at(1, 1, 0, pending), OutcomeTrunkDown, at(1, 1, channelDownDelay, pending)},
		{"trunk down on the last SIP attempt, SIP last: waits, free", sipOnly, samePhone, at(0, 2, 0, pending), OutcomeTrunkDown, at(0, 2, channelDownDelay, pending)},
		{"trunk down, only SIP rungs left: waits on its rung", sipTwiceOnly, samePhone, at(0, 0, 0, pending), OutcomeTrunkDown, at(0, 0, channelDownDelay, pending)},
		{"trunk fault on SIP: the WhatsApp call at once", full, samePhone, at(0, 0, 0, pending), OutcomeTrunkFault, at(1, 0, 0, pending)},
		{"trunk fault, no WhatsApp call rung: the template at once", sipThenTemplate, samePhone, at(0, 1, 0, pending), OutcomeTrunkFault, at(1, 0, 0, pending)},
		{"trunk fault, SIP again next: skipped for the WhatsApp call", sipTwice, samePhone, at(0, 0, 0, pending), OutcomeTrunkFault, at(2, 0, 0, pending)},
		{"trunk fault, SIP last: waits, using an attempt", sipLast, samePhone, at(1, 0, 0, pending), OutcomeTrunkFault, at(1, 1, trunkFaultDelay, pending)},
		{"trunk fault, SIP last, its last attempt: exhausted", sipLast, samePhone, at(1, 2, 0, pending), OutcomeTrunkFault, at(2, 0, 0, ContactExhausted)},
		{"trunk fault, only SIP rungs left, last attempt: exhausted", sipTwiceOnly, samePhone, at(0, 2, 0, pending), OutcomeTrunkFault, at(2, 0, 0, ContactExhausted)},
		{"WhatsApp API fault on the call: tried again on its rung", full, samePhone, at(1, 0, 0, pending), OutcomeTrunkFault, at(1, 1, trunkFaultDelay, pending)},
		{"WhatsApp API fault on the call's last attempt: the template", full, samePhone, at(1, 1, 0, pending), OutcomeTrunkFault, at(2, 0, 0, pending)},
		{"WhatsApp API fault on the template: tried again", full, samePhone, at(2, 0, 0, pending), OutcomeTrunkFault, at(2, 1, trunkFaultDelay, pending)},
		{"channel down, SIP again next: skipped for the WhatsApp call", sipTwice, samePhone, at(0, 0, 0, pending), OutcomeChannelDown, at(2, 0, 0, pending)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from
			from.Status = ContactInProgress
			got, err := Apply(tc.ladder, tc.contact, from, OutcomeEvent(tc.outcome), now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Apply(%+v, %s) = %+v, want %+v", from, tc.outcome, got, tc.want)
			}
		})
	}
}

func TestApplyEvents(t *testing.T) {
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	later := now.Add(3 * time.Hour)
	ladder := DefaultLadder()
	c := Contact{ID: 7, Phone: "+5511987654321"}
	pos := func(st ContactStatus, rung, attempts int) Position {
		return Position{Status: st, Rung: rung, Attempts: attempts, NextAt: now.Add(-time.Hour), CallbackAgent: 4}
	}
	tests := []struct {
		name string
		from Position
		ev   Event
		want Position
	}{
		{"imported: pending on the first rung, due ahead of every retry", Position{}, Event{Kind: EventImported}, Position{Status: ContactPending, NextAt: time.UnixMilli(0).UTC()}},
		{"due claims the contact", pos(ContactPending, 1, 0), Event{Kind: EventDue}, pos(ContactInProgress, 1, 0)},
		{"callback due claims the contact", pos(ContactPending, 0, 0), Event{Kind: EventCallbackDue}, pos(ContactInProgress, 0, 0)},
		{"window closed: put off until it opens", pos(ContactPending, 0, 1), Event{Kind: EventRefusedPassing, At: later},
			Position{Status: ContactPending, Attempts: 1, NextAt: later, CallbackAgent: 4}},
		{"refused for good on the rung: next rung, free", pos(ContactPending, 1, 0), Event{Kind: EventRefusedFinal},
			Position{Status: ContactPending, Rung: 2, NextAt: now, CallbackAgent: 4}},
		{"refused for good on the last rung: exhausted", pos(ContactPending, 2, 0), Event{Kind: EventRefusedFinal},
			Position{Status: ContactExhausted, Rung: 3, NextAt: now, CallbackAgent: 4}},
		{"added to DNC while pending", pos(ContactPending, 0, 1), Event{Kind: EventAddedToDNC}, pos(ContactDoNotCall, 0, 1)},
		{"added to DNC during an attempt", pos(ContactInProgress, 0, 1), Event{Kind: EventAddedToDNC}, pos(ContactDoNotCall, 0, 1)},
		{"opted out", pos(ContactPending, 2, 0), Event{Kind: EventOptedOut}, pos(ContactDoNotCall, 2, 0)},
		{"added to DNC when done: stays done", pos(ContactDone, 0, 1), Event{Kind: EventAddedToDNC}, pos(ContactDone, 0, 1)},
		{"do-not-call outlives any outcome", pos(ContactDoNotCall, 0, 0), OutcomeEvent(OutcomeNoAnswer), pos(ContactDoNotCall, 0, 0)},
		{"do-not-call outlives a connected call", pos(ContactDoNotCall, 0, 0), OutcomeEvent(OutcomeConnected), pos(ContactDoNotCall, 0, 0)},
		{"callback reopens a done contact on the rung", pos(ContactDone, 0, 1), Event{Kind: EventCallbackSet, At: later, Rung: 0, AgentID: 9},
			Position{Status: ContactPending, NextAt: later, CallbackAgent: 9, CallbackAt: later}},
		{"no callback for a do-not-call number", pos(ContactDoNotCall, 0, 1), Event{Kind: EventCallbackSet, At: later, AgentID: 9}, pos(ContactDoNotCall, 0, 1)},
		{"permission granted: WhatsApp call rung, due now", pos(ContactExhausted, 3, 0), Event{Kind: EventPermissionGranted, Rung: 1},
			Position{Status: ContactPending, Rung: 1, NextAt: now, CallbackAgent: 4}},
		{"permission granted during an attempt: nothing moves", pos(ContactInProgress, 0, 0), Event{Kind: EventPermissionGranted, Rung: 1}, pos(ContactInProgress, 0, 0)},
		{"permission granted to an invalid number: nothing moves", pos(ContactInvalid, 3, 0), Event{Kind: EventPermissionGranted, Rung: 1}, pos(ContactInvalid, 3, 0)},
		{"permission denied: kept for the gate", pos(ContactPending, 1, 0), Event{Kind: EventPermissionDenied}, pos(ContactPending, 1, 0)},
		{"template delivered: done stays done", pos(ContactDone, 2, 1), Event{Kind: EventTemplateDelivered}, pos(ContactDone, 2, 1)},
		{"template read: done stays done", pos(ContactDone, 2, 1), Event{Kind: EventTemplateRead}, pos(ContactDone, 2, 1)},
		{"template failed late: exhausted after all", pos(ContactDone, 2, 1), Event{Kind: EventTemplateFailedLate}, pos(ContactExhausted, 2, 1)},
		{"template failed late after a callback reopened it: pending stays", pos(ContactPending, 0, 0), Event{Kind: EventTemplateFailedLate}, pos(ContactPending, 0, 0)},
		{"campaign finished: contacts keep their place", pos(ContactPending, 1, 0), Event{Kind: EventCampaignFinished}, pos(ContactPending, 1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Apply(ladder, c, tc.from, tc.ev, now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Apply(%+v, %s) = %+v, want %+v", tc.from, tc.ev.Name(), got, tc.want)
			}
		})
	}
}

func TestRefusalEvent(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		d    Decision
		want Event
	}{
		{"do-not-call ends the journey", Decision{Reasons: []Reason{ReasonOutsideWindow, ReasonDoNotCall}}, Event{Kind: EventAddedToDNC}},
		{"opt-out ends the journey", Decision{Reasons: []Reason{ReasonOptedOut}}, Event{Kind: EventOptedOut}},
		{"window closed: until it opens", Decision{Reasons: []Reason{ReasonOutsideWindow, ReasonHoliday}, NextAllowedAt: &at}, Event{Kind: EventRefusedPassing, At: at}},
		{"no consent: the rung is skipped", Decision{Reasons: []Reason{ReasonNoConsent}}, Event{Kind: EventRefusedFinal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RefusalEvent(tc.d); got != tc.want {
				t.Errorf("RefusalEvent(%+v) = %+v, want %+v", tc.d, got, tc.want)
			}
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		from ContactStatus
		ev   Event
	}{
		{"an unknown outcome is not retried silently", ContactInProgress, OutcomeEvent("gremlins")},
		{"an unknown event", ContactPending, Event{Kind: "teleported"}},
		{"an outcome without an attempt", ContactPending, OutcomeEvent(OutcomeBusy)},
		{"a done contact is not started", ContactDone, Event{Kind: EventDue}},
		{"an attempt is not started twice", ContactInProgress, Event{Kind: EventDue}},
		{"delivered is not an attempt's outcome", ContactInProgress, OutcomeEvent(OutcomeDelivered)},
		{"a stored contact is not imported again", ContactPending, Event{Kind: EventImported}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := Position{Status: tc.from, Rung: 1, Attempts: 1, NextAt: now}
			got, err := Apply(DefaultLadder(), Contact{ID: 3}, from, tc.ev, now)
			if !errors.Is(err, ErrNoTransition) {
				t.Fatalf("Apply(%s, %s) error %v, want ErrNoTransition", tc.from, tc.ev.Name(), err)
			}
			if got != from {
				t.Errorf("refused move changed the position: %+v", got)
			}
		})
	}
}

// TestJourneyTableComplete walks every (status, event) pair: each has a row that
// either moves the contact or says why the pair cannot happen, and Apply answers
// accordingly. An outcome or an event added without its rows fails here.
func TestJourneyTableComplete(t *testing.T) {
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	table := journeyTable()
	ladder := DefaultLadder()
	pairs := 0
	for _, st := range JourneyStatuses() {
		for _, ev := range JourneyEvents() {
			r, ok := table[st][ev.Name()]
			if !ok {
				t.Errorf("status %q, event %s: no row", st, ev.Name())
				continue
			}
			pairs++
			if r.why == "" && r.do.move == 0 {
				t.Errorf("status %q, event %s: a row with no move and no reason", st, ev.Name())
			}
			pos := Position{Status: st, NextAt: now}
			if st == ContactNew {
				pos = Position{}
			}
			ev.At, ev.Rung = now.Add(time.Hour), 1
			_, err := Apply(ladder, Contact{ID: 1}, pos, ev, now)
			if r.why != "" && !errors.Is(err, ErrNoTransition) {
				t.Errorf("status %q, event %s: listed impossible (%s) but Apply gives %v", st, ev.Name(), r.why, err)
			}
			if r.why == "" && err != nil {
				t.Errorf("status %q, event %s: %v", st, ev.Name(), err)
			}
		}
	}
	if want := len(JourneyStatuses()) * len(JourneyEvents()); pairs != want {
		t.Errorf("%d pairs with a row, want %d", pairs, want)
	}
	for st, rows := range table {
		for name := range rows {
			if !knownPair(st, name) {
				t.Errorf("row for status %q, event %s, which the journey does not list", st, name)
			}
		}
	}
	if len(Outcomes()) != len(ladderRules())+2 {
		t.Errorf("%d outcomes, %d ladder rules: each attempt outcome needs one (delivered and read are not an attempt's)", len(Outcomes()), len(ladderRules()))
	}
}

func knownPair(st ContactStatus, name string) bool {
	for _, s := range JourneyStatuses() {
		for _, ev := range JourneyEvents() {
			if s == st && ev.Name() == name {
				return true
			}
		}
	}
	return false
}

// TestJourneyDoc keeps docs/journey.md the table's own print: it fails when the
// table changed and the page did not (UPDATE_JOURNEY_DOC=1 rewrites the page).
func TestJourneyDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "journey.md")
	want := journeyMarkdown()
	if os.Getenv("UPDATE_JOURNEY_DOC") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not the table's print: run UPDATE_JOURNEY_DOC=1 go test -run TestJourneyDoc ./campaigns/", path)
	}
}

func journeyMarkdown() string {
	var b strings.Builder
	b.WriteString(`# The contact's journey

Every move of a contact is one row of the transition table in ` + "`campaigns/journey.go`" + `,
applied by ` + "`campaigns.Apply`" + `; the engine and the storage only carry its answer. This page is
printed from the table by ` + "`TestJourneyDoc`" + ` (campaigns/journey_test.go), so it cannot drift.

Moves: *retry* the same rung after its retry delay while attempts remain, then the next rung;
*next* rung at once; *next channel or wait* (the next rung on another channel, or with none
left wait the delay on the rung, using an attempt unless free);
*next on another number*; *next off WhatsApp*; *to the template* rung (else wait the delay);
*finish* with a status; *stay*; *begin* (pending on the first rung); *claim* (in progress);
*defer until* the gate's next allowed instant; *requeue on the rung* (due now, attempts reset);
*call back* (the agent's rung and time). *free*: the attempt is not counted.
A status with no move for an event refuses it (` + "`ErrNoTransition`" + `), for the reason given.

`)
	table := journeyTable()
	for _, st := range JourneyStatuses() {
		name := string(st)
		if st == ContactNew {
			name = "new (not stored yet)"
		}
		fmt.Fprintf(&b, "## %s\n\n| event | move |\n|---|---|\n", name)
		for _, ev := range JourneyEvents() {
			r := table[st][ev.Name()]
			fmt.Fprintf(&b, "| %s | %s |\n", ev.Name(), describe(r))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func describe(r row) string {
	if r.why != "" {
		return "— (" + r.why + ")"
	}
	s := moveNames[r.do.move]
	if r.do.status != "" {
		s += " → " + string(r.do.status)
	}
	if r.do.free {
		s += ", free"
	}
	if r.do.delay != 0 {
		s += ", delay " + r.do.delay.String()
	}
	for _, ch := range []Channel{ChannelSIP, ChannelWhatsAppCall, ChannelWhatsAppTemplate} {
		if on, ok := r.do.onChannel[ch]; ok {
			s += "; on a " + string(ch) + " rung: " + describe(row{do: on})
		}
	}
	return s
}
