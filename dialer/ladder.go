package dialer

import (
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// move is what an outcome does to the contact's place on the ladder.
type move uint8

const (
	// retry tries the same rung again after its retry delay while attempts remain,
	// then moves on.
	retry move = iota + 1
	// next moves to the next rung at once.
	next
	// nextOrWait moves to the next rung at once; on the last rung the contact waits
	// the rule's delay instead (the channel is down for now, and no other is left
	// to reach the contact on: the list must not be used up by an outage).
	nextOrWait
	// nextOtherNumber moves to the next rung that reaches the contact on a different
	// number than the one that failed (e.g. a separate WhatsApp number).
	nextOtherNumber
	// nextOffWhatsApp moves to the next rung that is not on WhatsApp.
	nextOffWhatsApp
	// toTemplate jumps to the template rung (a "sorry we missed you" message); without
	// one the rung is retried after the rule's delay.
	toTemplate
	// finish ends the contact's journey.
	finish
)

// rule is one row of the ladder's state machine.
type rule struct {
	move move
	// status is the contact's final status when the move finishes the journey.
	status campaigns.ContactStatus
	// free attempts do not use up the rung's attempts: they failed on Turbina's side.
	free bool
	// delay replaces the rung's retry delay when set.
	delay time.Duration
}

// AbandonQuietPeriod is how long an abandoned contact is left alone by the dialer.
const AbandonQuietPeriod = 72 * time.Hour

// trunkFaultDelay is how soon a call that every trunk failed is tried again.
const trunkFaultDelay = time.Minute

// channelDownDelay is how long a contact with no rung left waits for its channel
// to come back.
const channelDownDelay = 30 * time.Second

// channelBusyDelay is how soon a contact is tried again when the channel was full.
const channelBusyDelay = 5 * time.Second

// rules is the contact's journey: for every outcome, what happens next.
var rules = map[campaigns.Outcome]rule{
	campaigns.OutcomeConnected:      {move: finish, status: campaigns.ContactDone},
	campaigns.OutcomeSent:           {move: finish, status: campaigns.ContactDone},
	campaigns.OutcomeAbandoned:      {move: toTemplate, delay: AbandonQuietPeriod},
	campaigns.OutcomeMachine:        {move: retry},
	campaigns.OutcomeMachineNext:    {move: next},
	campaigns.OutcomeMachineMessage: {move: next},
	campaigns.OutcomeBusy:           {move: retry},
	campaigns.OutcomeNoAnswer:       {move: retry},
	campaigns.OutcomeMediaFailed:    {move: retry},
	campaigns.OutcomeTrunkFault:     {move: retry, delay: trunkFaultDelay},
	campaigns.OutcomeRejected:       {move: next},
	campaigns.OutcomeNoPermission:   {move: next},
	campaigns.OutcomeSendFailed:     {move: next},
	campaigns.OutcomeChannelDown:    {move: nextOrWait, free: true, delay: channelDownDelay},
	campaigns.OutcomeNoChannel:      {move: next, free: true},
	campaigns.OutcomeChannelBusy:    {move: retry, free: true, delay: channelBusyDelay},
	campaigns.OutcomeInterrupted:    {move: retry, free: true, delay: time.Nanosecond},
	campaigns.OutcomeInvalidNumber:  {move: nextOtherNumber, status: campaigns.ContactInvalid},
	campaigns.OutcomeNotOnWhatsApp:  {move: nextOffWhatsApp, status: campaigns.ContactExhausted},
}

// Position is a contact's place on its campaign's ladder.
type Position struct {
	// Rung is the index of the rung to try next.
	Rung int
	// Attempts counts attempts already made on that rung.
	Attempts int
	// NextAt is the earliest time of the next attempt.
	NextAt time.Time
	// Status is pending while the journey goes on, else how it ended.
	Status campaigns.ContactStatus
}

// Advance applies the outcome of an attempt made at pos on ladder and returns the
// contact's next position. An outcome the table does not know is treated as a fault
// of the rung, so that a contact is never stuck.
func Advance(ladder []campaigns.Rung, c campaigns.Contact, pos Position, o campaigns.Outcome, now time.Time) Position {
	r, ok := rules[o]
	if !ok {
		r = rule{move: retry}
	}
	if pos.Rung >= len(ladder) {
		return Position{Rung: pos.Rung, Status: campaigns.ContactExhausted, NextAt: now}
	}
	rung := ladder[pos.Rung]
	attempts := pos.Attempts
	if !r.free {
		attempts++
	}
	advanceTo := func(i int, status campaigns.ContactStatus) Position {
		if i >= len(ladder) {
			if status == "" {
				status = campaigns.ContactExhausted
			}
			return Position{Rung: len(ladder), Status: status, NextAt: now}
		}
		return Position{Rung: i, Status: campaigns.ContactPending, NextAt: now}
	}
	switch r.move {
	case finish:
		return Position{Rung: pos.Rung, Attempts: attempts, Status: r.status, NextAt: now}
	case retry:
		if attempts < rung.MaxAttempts || r.free {
			delay := time.Duration(rung.RetryDelay)
			if r.delay != 0 {
				delay = r.delay
			}
			return Position{Rung: pos.Rung, Attempts: attempts, Status: campaigns.ContactPending, NextAt: now.Add(delay)}
		}
		return advanceTo(pos.Rung+1, "")
	case next:
		return advanceTo(pos.Rung+1, "")
	case nextOrWait:
		if pos.Rung+1 < len(ladder) {
			return advanceTo(pos.Rung+1, "")
		}
		return Position{Rung: pos.Rung, Attempts: attempts, Status: campaigns.ContactPending, NextAt: now.Add(r.delay)}
	case nextOtherNumber:
		failed := numberFor(rung.Channel, c)
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if numberFor(ladder[i].Channel, c) != failed {
				return advanceTo(i, "")
			}
		}
		return advanceTo(len(ladder), r.status)
	case nextOffWhatsApp:
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if !onWhatsApp(ladder[i].Channel) {
				return advanceTo(i, "")
			}
		}
		return advanceTo(len(ladder), r.status)
	case toTemplate:
		for i := pos.Rung + 1; i < len(ladder); i++ {
			if ladder[i].Channel == campaigns.ChannelWhatsAppTemplate {
				return advanceTo(i, "")
			}
		}
		return Position{Rung: pos.Rung, Attempts: attempts, Status: campaigns.ContactPending, NextAt: now.Add(r.delay)}
	}
	return advanceTo(pos.Rung+1, "")
}

func onWhatsApp(ch campaigns.Channel) bool {
	return ch == campaigns.ChannelWhatsAppCall || ch == campaigns.ChannelWhatsAppTemplate
}

// numberFor is the number a channel reaches the contact on.
func numberFor(ch campaigns.Channel, c campaigns.Contact) string {
	if onWhatsApp(ch) {
		return c.WhatsAppNumber()
	}
	return c.Phone
}
