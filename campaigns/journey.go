package campaigns

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The contact's journey is one transition table: for each status a contact can be
// in and each event that can happen to it, the move it makes. Apply is the only
// place that reads it; the engine and the storage only carry its answer.

// ContactNew is the status of a contact that is not stored yet: the journey's
// starting point, which only EventImported leaves.
const ContactNew ContactStatus = ""

// JourneyStatuses are the statuses of the journey, ContactNew first.
func JourneyStatuses() []ContactStatus {
	return []ContactStatus{ContactNew, ContactPending, ContactInProgress, ContactDone, ContactExhausted, ContactInvalid, ContactDoNotCall}
}

// EventKind is what happened to a contact.
type EventKind string

// Events of the journey.
const (
	// EventImported: the contact was read from a list.
	EventImported EventKind = "imported"
	// EventDue: an attempt on the contact's rung starts.
	EventDue EventKind = "due"
	// EventCallbackDue: the attempt an agent asked for (a callback) starts.
	EventCallbackDue EventKind = "callback_due"
	// EventOutcome: an attempt ended with Event.Outcome.
	EventOutcome EventKind = "outcome"
	// EventCallbackSet: an agent asked for the contact to be called back at Event.At
	// on Event.Rung, by Event.AgentID when set.
	EventCallbackSet EventKind = "callback_set"
	// EventAddedToDNC: the contact's number was put on a do-not-call list.
	EventAddedToDNC EventKind = "added_to_dnc"
	// EventOptedOut: the person asked not to be contacted again.
	EventOptedOut EventKind = "opted_out"
	// EventRefusedPassing: the policy gate refused the due attempt for a reason that
	// lifts by itself (window closed, holiday, attempt limit, quiet period) at Event.At.
	EventRefusedPassing EventKind = "refused_passing"
	// EventRefusedFinal: the policy gate refused the due attempt for a reason that
	// does not lift by itself on this rung (no consent, no call permission).
	EventRefusedFinal EventKind = "refused_final"
	// EventPermissionGranted: the person let the business call them on WhatsApp;
	// Event.Rung is the campaign's WhatsApp call rung.
	EventPermissionGranted EventKind = "permission_granted"
	// EventPermissionDenied: the person refused WhatsApp calls.
	EventPermissionDenied EventKind = "permission_denied"
	// EventPermissionExpired: a temporary call permission lapsed.
	EventPermissionExpired EventKind = "permission_expired"
	// EventTemplateDelivered: WhatsApp delivered a sent template.
	EventTemplateDelivered EventKind = "template_delivered"
	// EventTemplateRead: the person read a sent template.
	EventTemplateRead EventKind = "template_read"
	// EventTemplateFailedLate: WhatsApp reported, after accepting it, that a template
	// could not be delivered.
	EventTemplateFailedLate EventKind = "template_failed_late"
	// EventTemplateUnconfirmed: a template a crash left in doubt had no status from
	// WhatsApp within the settle window: it is recorded not sent (never sent again).
	EventTemplateUnconfirmed EventKind = "template_unconfirmed"
	// EventTemplateSentLate: a status of a template recorded not sent came after
	// all: WhatsApp had it, so it is recorded sent.
	EventTemplateSentLate EventKind = "template_sent_late"
	// EventCampaignFinished: the contact's campaign was finished.
	EventCampaignFinished EventKind = "campaign_finished"
	// EventPreviewSkipped: a preview agent offered the contact chose not to call it
	// now; it is due again at Event.At, for any agent, without using an attempt.
	EventPreviewSkipped EventKind = "preview_skipped"
	// EventInboundCall: the person called the business (a WhatsApp call) and an
	// attempt takes the call: it claims the contact whatever its journey said, so
	// no outbound dial reaches a person already on the line.
	EventInboundCall EventKind = "inbound_call"
)

// eventKinds lists every kind but EventOutcome, which stands for one event per Outcome.
func eventKinds() []EventKind {
	return []EventKind{EventImported, EventDue, EventCallbackDue, EventCallbackSet, EventAddedToDNC, EventOptedOut,
		EventRefusedPassing, EventRefusedFinal, EventPermissionGranted, EventPermissionDenied, EventPermissionExpired,
		EventTemplateDelivered, EventTemplateRead, EventTemplateFailedLate, EventTemplateUnconfirmed, EventTemplateSentLate,
		EventCampaignFinished, EventPreviewSkipped, EventInboundCall}
}

// Event is one thing that happens to a contact.
type Event struct {
	Kind EventKind
	// Outcome is how the attempt ended (EventOutcome).
	Outcome Outcome
	// At is the callback's time (EventCallbackSet) or the instant the gate allows
	// the attempt again (EventRefusedPassing), or when a skipped contact is due
	// again (EventPreviewSkipped).
	At time.Time
	// Rung is the rung a callback or a permission grant puts the contact on.
	Rung int
	// AgentID is the agent who asked for a callback (0: any agent).
	AgentID int64
}

// OutcomeEvent is the event of an attempt that ended with o.
func OutcomeEvent(o Outcome) Event { return Event{Kind: EventOutcome, Outcome: o} }

// RefusalEvent is the journey's event for a refusal d of the policy gate: a number
// on a do-not-call list or a person who opted out ends the journey; a refusal that
// lifts by itself puts the contact off until d.NextAllowedAt; any other skips the
// rung. It is meant for a refusal (d.Allowed false).
func RefusalEvent(d Decision) Event {
	switch {
	case slices.Contains(d.Reasons, ReasonDoNotCall):
		return Event{Kind: EventAddedToDNC}
	case slices.Contains(d.Reasons, ReasonOptedOut):
		return Event{Kind: EventOptedOut}
	case d.NextAllowedAt != nil:
		return Event{Kind: EventRefusedPassing, At: *d.NextAllowedAt}
	}
	return Event{Kind: EventRefusedFinal}
}

// JourneyEvents are all the events of the journey, one per outcome for EventOutcome,
// in the order the documentation prints them.
func JourneyEvents() []Event {
	var out []Event
	for _, k := range eventKinds() {
		if k == EventCallbackSet { // outcomes come after the attempt's start
			for _, o := range Outcomes() {
				out = append(out, OutcomeEvent(o))
			}
		}
		out = append(out, Event{Kind: k})
	}
	return out
}

// Name is the event as the table spells it: the kind, or "outcome:<outcome>".
func (e Event) Name() string {
	if e.Kind == EventOutcome {
		return string(EventOutcome) + ":" + string(e.Outcome)
	}
	return string(e.Kind)
}

// Position is a contact's place in its journey: its status and its place on its
// campaign's ladder.
type Position struct {
	// Status is pending while the journey goes on, in_progress during an attempt,
	// else how it ended.
	Status ContactStatus
	// Rung is the index of the rung to try next.
	Rung int
	// Attempts counts attempts already made on that rung.
	Attempts int
	// NextAt is the earliest time of the next attempt.
	NextAt time.Time
	// CallbackAgent is the agent who asked to call the contact back, if any.
	CallbackAgent int64
	// CallbackAt is when a callback is due; zero when none is pending.
	CallbackAt time.Time
}

// ErrNoTransition is returned by Apply for an event the table does not allow in
// the contact's status.
var ErrNoTransition = errors.New("no transition")

// move is what a row does to the contact's position.
type move uint8

const (
	// retry tries the same rung again after its retry delay while attempts remain,
	// then moves on.
	retry move = iota + 1
	// next moves to the next rung at once.
	next
	// nextOrWait moves at once to the next rung on another channel: the channel
	// that failed is down for every rung on it, so a later rung on the same
	// channel (SIP again, even on another number) would only fail the same way.
	// With no such rung left the contact waits the rule's delay on its rung (no
	// other channel is left to reach it on: the list must not be used up by an
	// outage); a counted wait uses the rung's attempts, as a retry does.
	nextOrWait
	// nextOtherNumber moves to the next rung that reaches the contact on a different
	// number than the one that failed (e.g. a separate WhatsApp number).
	nextOtherNumber
	// nextOffWhatsApp moves to the next rung that is not on WhatsApp.
	nextOffWhatsApp
	// toTemplate jumps to the template rung (a "sorry we missed you" message); without
	// one the rung is retried after the rule's delay.
	toTemplate
	// finish ends the contact's journey with the rule's status.
	finish
	// stay leaves the position as it is (the event is recorded elsewhere, if at all).
	stay
	// begin starts the contact's journey: pending on the first rung, due at once
	// and ahead of every retry (at the Unix epoch).
	begin
	// claim marks the contact in_progress: an attempt is under way.
	claim
	// deferUntil keeps the contact pending and due at the event's instant.
	deferUntil
	// requeueOnRung makes the contact pending on the event's rung, due now, with
	// that rung's attempts all left.
	requeueOnRung
	// callBack makes the contact pending on the event's rung at the event's time,
	// for the event's agent.
	callBack
	// callBackFirst makes the contact pending on the ladder's first rung with its
	// attempts all left, due ahead of every other contact (at the Unix epoch), as
	// a callback for any agent: the person called and nobody took the call.
	callBackFirst
)

var moveNames = map[move]string{retry: "retry", next: "next", nextOrWait: "next channel or wait", nextOtherNumber: "next on another number",
	nextOffWhatsApp: "next off WhatsApp", toTemplate: "to the template", finish: "finish", stay: "stay", begin: "begin",
	claim: "claim", deferUntil: "defer until", requeueOnRung: "requeue on the rung", callBack: "call back",
	callBackFirst: "call back first"}

// rule is one row of the table: what an event does.
type rule struct {
	move move
	// status is the contact's final status when the move finishes the journey.
	status ContactStatus
	// free attempts do not use up the rung's attempts: they failed on Turbina's side.
	free bool
	// delay replaces the rung's retry delay when set.
	delay time.Duration
	// onChannel replaces the rule when the attempt was on one of its channels.
	onChannel map[Channel]rule
}

// AbandonQuietPeriod is how long an abandoned contact is left alone by the dialer.
const AbandonQuietPeriod = 72 * time.Hour

// trunkFaultDelay is how soon a call that every trunk failed is tried again on
// its rung, when no rung on another channel is left (or the fault was WhatsApp's).
const trunkFaultDelay = time.Minute

// channelDownDelay is how long a contact with no rung left waits for its channel
// to come back.
const channelDownDelay = 30 * time.Second

// channelBusyDelay is how soon a contact is tried again when the channel was full.
const channelBusyDelay = 5 * time.Second

// ladderRules is what each attempt outcome does to a contact whose attempt was under
// way (in_progress).
func ladderRules() map[Outcome]rule {
	return map[Outcome]rule{
		OutcomeConnected: {move: finish, status: ContactDone},
		OutcomeSent:      {move: finish, status: ContactDone},
		// A template a crash left in doubt is not sent again (that could send it
		// twice): the journey ends as for a sent one, its attempt says in_doubt
		// and the figures do not count it reached; its status webhook settles it
		// (a late failure then exhausts the contact), else a supervisor is told.
		OutcomeInDoubt:        {move: finish, status: ContactDone},
		OutcomeAbandoned:      {move: toTemplate, delay: AbandonQuietPeriod},
		OutcomeMachine:        {move: retry},
		OutcomeMachineNext:    {move: next},
		OutcomeMachineMessage: {move: next},
		OutcomeBusy:           {move: retry},
		OutcomeNoAnswer:       {move: retry},
		OutcomeMediaFailed:    {move: retry},
		// A call the trunk failed (403, 5xx, no response, a transport error) moves
		// to the next channel at once: the person is reached over WhatsApp now,
		// not after the trunk's retry delay. It is not free: the fault may be this
		// call's own (a 403 or 5xx for this destination on a trunk that is up), so
		// on the last rung it waits the delay using an attempt each time and the
		// contact is exhausted after the rung's attempts, where a free wait would
		// dial a fault that never lifts forever; a trunk truly down soon opens its
		// circuit and the next dials end channel_down, which waits free. WhatsApp's
		// own faults (a throttled or failing Graph API) are tried again on their
		// rung: the next rung, the template, goes through the same API.
		OutcomeTrunkFault: {move: nextOrWait, delay: trunkFaultDelay, onChannel: map[Channel]rule{
			ChannelWhatsAppCall:     {move: retry, delay: trunkFaultDelay},
			ChannelWhatsAppTemplate: {move: retry, delay: trunkFaultDelay},
		}},
		OutcomeRejected:     {move: next},
		OutcomeNoPermission: {move: next},
		OutcomeSendFailed:   {move: next},
		OutcomeChannelDown:  {move: nextOrWait, free: true, delay: channelDownDelay},
		// A call caught by its trunk's death (ringing, or its INVITE unanswered)
		// moves to the next channel at once. It is free: the person never had a
		// fair chance to answer, and on the last rung the contact waits for the
		// trunk like channel_down, with its attempts intact for when it is back.
		// The phone may have rung all the same: the gate's per-number limits count
		// it when the network said so (RingCountedOutcomes).
		OutcomeTrunkDown:   {move: nextOrWait, free: true, delay: channelDownDelay},
		OutcomeNoChannel:   {move: next, free: true},
		OutcomeChannelBusy: {move: retry, free: true, delay: channelBusyDelay},
		// A call cut by a stop or a crash used up its attempt (the person may have
		// been talking to an agent) and waits the rung's delay like any other. A
		// template send cut short is tried again at once under the same idempotency
		// key, so WhatsApp never sends it twice.
		OutcomeInterrupted: {move: retry, onChannel: map[Channel]rule{
			ChannelWhatsAppTemplate: {move: retry, free: true, delay: time.Nanosecond},
		}},
		OutcomeInvalidNumber: {move: nextOtherNumber, status: ContactInvalid},
		OutcomeNotOnWhatsApp: {move: nextOffWhatsApp, status: ContactExhausted},
		// A resumed conversation moved its contact once, as the SIP attempt it took
		// up (connected): the resume itself moves nobody.
		OutcomeResumed: {move: stay},
		// A call our side gave up before the answer used its attempt and waits
		// the rung's delay, as a call cut short does. Only calls back on WhatsApp
		// end so today, and they move nobody; the row says what it would do to
		// a contact whose own attempt it ended.
		OutcomeCanceled: {move: retry},
		// A person who called and was not taken is owed the call: they are the
		// campaign's next contact, whatever rung or attempts they were on.
		OutcomeInboundMissed: {move: callBackFirst},
	}
}

// Reasons for the pairs the table does not allow: Apply refuses them with the reason.
const (
	whyNotStored     = "the contact is not stored yet: only its import can happen to it"
	whyImportedTwice = "a stored contact is not imported again (a new row of a list is a new contact)"
	whyNotDue        = "only a pending contact is started; the store's claim refuses the others"
	whyNoAttempt     = "no attempt of the contact is under way: outcomes end attempts, and only an in-progress contact has one"
	whyNotChecked    = "the gate is asked only before a pending contact's attempt"
	whyNotOffered    = "only a pending contact is offered to a preview agent"
	whyInboundDNC    = "a contact on a do-not-call list is not claimed by its call: the call goes to the inbound queue as an unknown number's"
	whyInboundBusy   = "an attempt of the contact is under way: its call to the business is not taken twice"
	whyOutcomeDelivr = "delivered and read are statuses of a sent template reported after the attempt ended; they are events of their own"
)

// row is one line of the table.
type row struct {
	from ContactStatus
	on   string // Event.Name()
	do   rule
	// why says why the pair cannot happen, for rows that refuse it.
	why string
}

// journey is the table, built once: it is read-only after that.
var journey = sync.OnceValue(journeyTable)

// journeyTable builds the whole table, row by row.
func journeyTable() map[ContactStatus]map[string]row {
	t := map[ContactStatus]map[string]row{}
	add := func(from ContactStatus, ev string, do rule, why string) {
		if t[from] == nil {
			t[from] = map[string]row{}
		}
		t[from][ev] = row{from: from, on: ev, do: do, why: why}
	}
	live := []ContactStatus{ContactPending, ContactInProgress}
	ended := []ContactStatus{ContactDone, ContactExhausted, ContactInvalid}
	stored := append(append([]ContactStatus{}, live...), append(ended, ContactDoNotCall)...)
	name := func(k EventKind) string { return string(k) }
	// A contact not stored yet is only imported.
	for _, ev := range JourneyEvents() {
		add(ContactNew, ev.Name(), rule{}, whyNotStored)
	}
	add(ContactNew, name(EventImported), rule{move: begin}, "")
	for _, s := range stored {
		add(s, name(EventImported), rule{}, whyImportedTwice)
	}
	// Starting an attempt.
	for _, k := range []EventKind{EventDue, EventCallbackDue} {
		add(ContactPending, name(k), rule{move: claim}, "")
		for _, s := range stored[1:] {
			add(s, name(k), rule{}, whyNotDue)
		}
	}
	// Outcomes: the ladder moves an in-progress contact; a contact put on a
	// do-not-call list during its attempt stays there whatever the outcome.
	for o, r := range ladderRules() {
		ev := OutcomeEvent(o).Name()
		add(ContactInProgress, ev, r, "")
		add(ContactDoNotCall, ev, rule{move: stay}, "")
		for _, s := range append([]ContactStatus{ContactPending}, ended...) {
			add(s, ev, rule{}, whyNoAttempt)
		}
	}
	for _, o := range []Outcome{OutcomeDelivered, OutcomeRead} {
		for _, s := range stored {
			add(s, OutcomeEvent(o).Name(), rule{}, whyOutcomeDelivr)
		}
	}
	// An agent's callback reopens the journey on the attempt's rung, whatever the
	// ladder said; a number on a do-not-call list is not called back.
	for _, s := range append(append([]ContactStatus{}, live...), ended...) {
		add(s, name(EventCallbackSet), rule{move: callBack}, "")
	}
	add(ContactDoNotCall, name(EventCallbackSet), rule{move: stay}, "")
	// Do-not-call and opt-out end the journey at once, an attempt under way
	// included (its outcome then leaves the contact there); a journey already
	// over keeps how it ended.
	for _, k := range []EventKind{EventAddedToDNC, EventOptedOut} {
		for _, s := range live {
			add(s, name(k), rule{move: finish, status: ContactDoNotCall}, "")
		}
		for _, s := range append(ended, ContactDoNotCall) {
			add(s, name(k), rule{move: stay}, "")
		}
	}
	// The gate's refusals: a passing one puts the contact off until the gate allows
	// it; a final one skips the rung (it cannot be taken: no consent for WhatsApp,
	// no call permission), without using an attempt. Do-not-call and opt-out come
	// as their own events.
	add(ContactPending, name(EventRefusedPassing), rule{move: deferUntil}, "")
	add(ContactPending, name(EventRefusedFinal), rule{move: next, free: true}, "")
	for _, k := range []EventKind{EventRefusedPassing, EventRefusedFinal} {
		for _, s := range stored[1:] {
			add(s, name(k), rule{}, whyNotChecked)
		}
	}
	// A preview agent's skip puts the contact off, on its rung and with its attempts,
	// for whichever agent is free when it is due again.
	add(ContactPending, name(EventPreviewSkipped), rule{move: deferUntil}, "")
	for _, s := range stored[1:] {
		add(s, name(EventPreviewSkipped), rule{}, whyNotOffered)
	}
	// A call permission granted puts the contact on the WhatsApp call rung, due now
	// (its calling window still applies), unless an attempt is under way or its
	// journey ended for good.
	for _, s := range []ContactStatus{ContactPending, ContactDone, ContactExhausted} {
		add(s, name(EventPermissionGranted), rule{move: requeueOnRung}, "")
	}
	for _, s := range []ContactStatus{ContactInProgress, ContactInvalid, ContactDoNotCall} {
		add(s, name(EventPermissionGranted), rule{move: stay}, "")
	}
	// A denied or lapsed permission is kept on the contact; the gate reads it before
	// the next WhatsApp call, so the journey itself does not move.
	for _, k := range []EventKind{EventPermissionDenied, EventPermissionExpired} {
		for _, s := range stored {
			add(s, name(k), rule{move: stay}, "")
		}
	}
	// A template's later statuses: delivered and read are kept on the attempt; a late
	// failure means the message never reached the person, so a contact the template
	// had finished is exhausted after all.
	for _, k := range []EventKind{EventTemplateDelivered, EventTemplateRead, EventTemplateFailedLate} {
		for _, s := range stored {
			add(s, name(k), rule{move: stay}, "")
		}
	}
	add(ContactDone, name(EventTemplateFailedLate), rule{move: finish, status: ContactExhausted}, "")
	// A template in doubt that no status settled within the window is recorded not
	// sent: the contact it finished (done) is exhausted, as for a late failure;
	// a status that comes after all makes it sent, and the contact done again.
	for _, k := range []EventKind{EventTemplateUnconfirmed, EventTemplateSentLate} {
		for _, s := range stored {
			add(s, name(k), rule{move: stay}, "")
		}
	}
	add(ContactDone, name(EventTemplateUnconfirmed), rule{move: finish, status: ContactExhausted}, "")
	add(ContactExhausted, name(EventTemplateSentLate), rule{move: finish, status: ContactDone}, "")
	// A person's own call to the business claims the contact whether its journey
	// goes on or ended (they want to talk): the attempt's outcome moves it again.
	for _, s := range append([]ContactStatus{ContactPending}, ended...) {
		add(s, name(EventInboundCall), rule{move: claim}, "")
	}
	add(ContactInProgress, name(EventInboundCall), rule{}, whyInboundBusy)
	add(ContactDoNotCall, name(EventInboundCall), rule{}, whyInboundDNC)
	// A finished campaign dials no more; its contacts keep their place so that the
	// report shows where each stood.
	for _, s := range stored {
		add(s, name(EventCampaignFinished), rule{move: stay}, "")
	}
	return t
}

// Apply moves a contact at pos on ladder through ev at now and returns its new
// position. An event the table does not allow in the contact's status is an error
// wrapping ErrNoTransition, and the position is returned unchanged.
func Apply(ladder []Rung, c Contact, pos Position, ev Event, now time.Time) (Position, error) {
	r, ok := journey()[pos.Status][ev.Name()]
	if !ok {
		return pos, fmt.Errorf("contact %d: %s in status %q: not in the table: %w", c.ID, ev.Name(), pos.Status, ErrNoTransition)
	}
	if r.why != "" {
		return pos, fmt.Errorf("contact %d: %s in status %q: %s: %w", c.ID, ev.Name(), pos.Status, r.why, ErrNoTransition)
	}
	rule := r.do
	if pos.Rung < len(ladder) {
		if on, ok := rule.onChannel[ladder[pos.Rung].Channel]; ok {
			rule = on
		}
	}
	out := pos
	switch rule.move {
	case stay:
		return pos, nil
	case begin:
		return Position{Status: ContactPending, NextAt: time.UnixMilli(0).UTC()}, nil
	case claim:
		out.Status = ContactInProgress
		return out, nil
	case deferUntil:
		out.NextAt = ev.At
		return out, nil
	case requeueOnRung:
		out.Status, out.Rung, out.Attempts, out.NextAt = ContactPending, ev.Rung, 0, now
		return out, nil
	case callBack:
		out.Status, out.Rung, out.Attempts, out.NextAt = ContactPending, ev.Rung, 0, ev.At
		out.CallbackAgent, out.CallbackAt = ev.AgentID, ev.At
		return out, nil
	case callBackFirst:
		return Position{Status: ContactPending, NextAt: time.UnixMilli(0).UTC(), CallbackAt: now}, nil
	case finish:
		if ev.Kind != EventOutcome {
			out.Status = rule.status
			return out, nil
		}
	}
	return advance(ladder, c, pos, rule, now), nil
}

// advance applies an attempt's ladder rule. The callback the attempt answered (if
// any) is over; the agent who asked for it is still preferred.
func advance(ladder []Rung, c Contact, pos Position, r rule, now time.Time) Position {
	keep := func(p Position) Position {
		p.CallbackAgent = pos.CallbackAgent
		return p
	}
	if pos.Rung >= len(ladder) {
		return keep(Position{Rung: pos.Rung, Status: ContactExhausted, NextAt: now})
	}
	rung := ladder[pos.Rung]
	attempts := pos.Attempts
	if !r.free {
		attempts++
	}
	advanceTo := func(i int, status ContactStatus) Position {
		if i >= len(ladder) {
			if status == "" {
				status = ContactExhausted
			}
			return keep(Position{Rung: len(ladder), Status: status, NextAt: now})
		}
		return keep(Position{Rung: i, Status: ContactPending, NextAt: now})
	}
	stayOn := func(delay time.Duration) Position {
		return keep(Position{Rung: pos.Rung, Attempts: attempts, Status: ContactPending, NextAt: now.Add(delay)})
	}
	switch r.move {
	case finish:
		return keep(Position{Rung: pos.Rung, Attempts: attempts, Status: r.status, NextAt: now})
	case retry:
		if attempts < rung.MaxAttempts || r.free {
			delay := time.Duration(rung.RetryDelay)
			if r.delay != 0 {
				delay = r.delay
			}
			return stayOn(delay)
		}
		return advanceTo(pos.Rung+1, "")
	case nextOrWait:
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if ladder[i].Channel != rung.Channel {
				return advanceTo(i, "")
			}
		}
		if attempts < rung.MaxAttempts || r.free {
			return stayOn(r.delay)
		}
		return advanceTo(len(ladder), "")
	case nextOtherNumber:
		failed := NumberFor(rung.Channel, c)
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if NumberFor(ladder[i].Channel, c) != failed {
				return advanceTo(i, "")
			}
		}
		return advanceTo(len(ladder), r.status)
	case nextOffWhatsApp:
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if !OnWhatsApp(ladder[i].Channel) {
				return advanceTo(i, "")
			}
		}
		return advanceTo(len(ladder), r.status)
	case toTemplate:
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if ladder[i].Channel == ChannelWhatsAppTemplate {
				return advanceTo(i, "")
			}
		}
		return stayOn(r.delay)
	}
	return advanceTo(pos.Rung+1, "")
}

// OnWhatsApp reports whether a channel reaches the contact through WhatsApp.
func OnWhatsApp(ch Channel) bool {
	return ch == ChannelWhatsAppCall || ch == ChannelWhatsAppTemplate
}

// NumberFor is the number a channel reaches the contact on.
func NumberFor(ch Channel, c Contact) string {
	if OnWhatsApp(ch) {
		return c.WhatsAppNumber()
	}
	return c.Phone
}
