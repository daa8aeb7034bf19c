package sip

import (
	"errors"
	"time"
)

// Errors returned by [Originator.Dial].
var (
	// ErrNoTrunk means every trunk's circuit is open: the contact should move
	// to the next rung of its ladder at once.
	ErrNoTrunk = errors.New("sip: no trunk available (all circuits open)")
	// ErrTrunksBusy means healthy trunks exist but all are at their channel limit.
	ErrTrunksBusy = errors.New("sip: all available trunks are at their channel limit")
	// ErrClosed means the Originator was closed.
	ErrClosed = errors.New("sip: originator closed")
)

// Outcome is how a call attempt ended, in the dialer's terms.
type Outcome string

// Outcomes. The SIP status that led to each is kept in [Result.Status].
const (
	// OutcomeAnswered: 200 OK; the call was connected (whatever ended it later).
	OutcomeAnswered Outcome = "answered"
	// OutcomeBusy: 486 Busy Here, 600 Busy Everywhere.
	OutcomeBusy Outcome = "busy"
	// OutcomeNoAnswer: our ring timeout (CANCEL sent), 480, 408.
	OutcomeNoAnswer Outcome = "no_answer"
	// OutcomeInvalidNumber: 404, 484, 410, 604. The contact is not to be retried.
	OutcomeInvalidNumber Outcome = "invalid_number"
	// OutcomeRejected: 603 Decline and other 6xx: the person declined.
	OutcomeRejected Outcome = "rejected"
	// OutcomeTrunkFault: the carrier refused service (402, 403, 421 and other
	// 4xx the response table does not give the person, 5xx, credentials
	// refused), a redirect not followed, no response or a transport error, on
	// the last trunk tried. Never the person's answer.
	OutcomeTrunkFault Outcome = "trunk_fault"
	// OutcomeTrunkDown: the call's trunk was found down before anyone answered
	// (the call was ringing, or its INVITE had no final response): a CANCEL was
	// sent, best effort, and the call ended at once.
	OutcomeTrunkDown Outcome = "trunk_down"
	// OutcomeMediaFailed: answered with no usable common codec (the call is
	// hung up at once), or 488/606.
	OutcomeMediaFailed Outcome = "media_failed"
	// OutcomeCanceled: hung up locally (Hangup or Close) before any answer.
	OutcomeCanceled Outcome = "canceled"
)

// Party says who ended an answered call.
type Party string

// Parties.
const (
	PartyNone   Party = ""
	PartyLocal  Party = "local"
	PartyRemote Party = "remote"
	// PartyTrunk: the trunk went down under an answered call (its media stopped
	// and the trunk failed its probes); nobody hung up.
	PartyTrunk Party = "trunk"
)

// Attempt is one INVITE to one trunk within a Dial.
type Attempt struct {
	Trunk  string `json:"trunk"`
	CallID string `json:"call_id"`
	// Status is the final SIP status, 0 when none arrived.
	Status int    `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Result is the record of a finished call.
type Result struct {
	Outcome Outcome `json:"outcome"`
	// Status is the final SIP status of the INVITE: 200 when answered, 487
	// after a CANCEL, 0 when no final response came.
	Status int `json:"status"`
	// Reason is the reason phrase, or the error that ended the call.
	Reason string `json:"reason,omitempty"`
	// Trunk and CallID name the last attempt.
	Trunk  string `json:"trunk"`
	CallID string `json:"call_id"`
	// Attempts lists every trunk tried, in order; more than one after failover.
	Attempts []Attempt `json:"attempts"`
	// HangupBy says who ended an answered call.
	HangupBy Party `json:"hangup_by,omitempty"`

	// Timings. Zero when the event did not happen.
	InviteAt time.Time `json:"invite_at"`          // first INVITE of the last attempt sent
	RingAt   time.Time `json:"ring_at,omitzero"`   // first 180 or 183
	AnswerAt time.Time `json:"answer_at,omitzero"` // 200 OK received
	AckAt    time.Time `json:"ack_at,omitzero"`    // ACK sent
	EndAt    time.Time `json:"end_at"`             // BYE done, or final failure
}

// SetupDuration is INVITE sent to ACK sent for an answered call, else 0.
func (r Result) SetupDuration() time.Duration {
	if r.AckAt.IsZero() {
		return 0
	}
	return r.AckAt.Sub(r.InviteAt)
}

// RingDuration is INVITE sent to the first ring, else 0.
func (r Result) RingDuration() time.Duration {
	if r.RingAt.IsZero() {
		return 0
	}
	return r.RingAt.Sub(r.InviteAt)
}

// TalkDuration is answer to hang-up for an answered call, else 0.
func (r Result) TalkDuration() time.Duration {
	if r.AnswerAt.IsZero() || r.EndAt.IsZero() {
		return 0
	}
	return r.EndAt.Sub(r.AnswerAt)
}

// EventKind names a step in a call's progress.
type EventKind string

// Event kinds, in the order they can occur.
const (
	EventTrying     EventKind = "trying"      // 100 Trying
	EventRinging    EventKind = "ringing"     // 180 (and 181/182)
	EventEarlyMedia EventKind = "early_media" // 183 Session Progress
	EventFailover   EventKind = "failover"    // the call moved to another trunk
	EventRedirect   EventKind = "redirect"    // a 301/302 was followed to a trunk's address
	EventAnswered   EventKind = "answered"    // 200 OK, ACK sent, media up
	EventEnded      EventKind = "ended"       // Result is final
)

// Event is one step of a call's progress, delivered to DialRequest.OnEvent.
type Event struct {
	Kind   EventKind
	Time   time.Time
	Trunk  string
	Status int // SIP status for response-driven events
	// Call is the call the event belongs to; the hook may run before Dial returns it.
	Call *Call
}
