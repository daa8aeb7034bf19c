// Package channel holds what the engine and the channel adapters share: a Channel
// places an attempt to reach a contact and the Attempt reports how it goes. It is a
// leaf, so that the adapters (dialer/sipchannel, dialer/wachannel) and the engine
// (dialer) can each import it and the engine's own tests can dial through the
// real adapters.
package channel

import (
	"context"
	"errors"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// ErrChannelDown is returned by Channel.Place when the channel cannot take any call
// now (every SIP trunk's circuit is open, the WhatsApp API is unreachable): the
// contact then moves to the next rung at once instead of waiting.
var ErrChannelDown = errors.New("channel down")

// ErrChannelBusy is returned by Channel.Place when the channel is up but at its
// capacity (every trunk at its channel limit): the contact is tried again shortly,
// without losing an attempt.
var ErrChannelBusy = errors.New("channel busy")

// OutcomeError is returned by Channel.Place when no attempt could start and the
// reason says where the contact goes next (no permission, not on WhatsApp, …).
type OutcomeError struct {
	Outcome campaigns.Outcome
	Err     error
}

func (e *OutcomeError) Error() string { return string(e.Outcome) + ": " + e.Err.Error() }
func (e *OutcomeError) Unwrap() error { return e.Err }

// PlaceRequest asks a channel to reach one contact.
type PlaceRequest struct {
	AttemptID int64
	// Key identifies this try of this rung for this contact across restarts: an
	// attempt interrupted by a crash is tried again under the same key, so a side
	// effect it may have had is never repeated.
	Key      string
	Contact  campaigns.Contact
	Rung     campaigns.Rung
	To       string // E.164
	CallerID string // E.164
	// RingTimeout is how long a call rings before it is given up; 0 on a message rung.
	RingTimeout time.Duration
	// Permission is how the campaign asks for WhatsApp call permission.
	Permission campaigns.CallPermission
}

// Channel reaches contacts one way: the SIP trunks, WhatsApp calls, WhatsApp templates.
type Channel interface {
	// Place starts an attempt and returns it at once; its events report how it
	// goes. ErrChannelDown means no attempt could start.
	Place(ctx context.Context, req PlaceRequest) (Attempt, error)
}

// Health is implemented by a Channel that knows whether it can take calls now
// (the SIP channel: some trunk's circuit is closed). The run asks it before each
// pacing decision, so the forecast for new dials uses the channel they will go to
// (the next rung's) from the moment this one goes down, not once its failed
// attempts have taught the pacer. A Channel without it is taken to be up.
type Health interface {
	// Up reports whether the channel can take a call now. It must not block.
	Up() bool
}

// Attempt is one attempt under way on a channel. (An audio leg is media.Leg:
// an answered call's Attempt may hand one over, see dialer.MediaCarrier.)
type Attempt interface {
	// Events delivers the attempt's progress and is closed after the Ended event.
	Events() <-chan AttemptEvent
	// Hangup ends the attempt: cancels it before answer, hangs up after.
	Hangup(ctx context.Context) error
}

// AttemptEventKind is a step of an attempt.
type AttemptEventKind uint8

// Steps of an attempt.
const (
	// AttemptSetup: the request left Turbina (INVITE sent, call API accepted).
	AttemptSetup AttemptEventKind = iota + 1
	// AttemptRinging: the far end is ringing (180/183, WhatsApp RINGING).
	AttemptRinging
	// AttemptAnswered: someone answered; audio may flow.
	AttemptAnswered
	// AttemptEnded: the attempt is over; campaigns.Outcome says how (for an answered call the
	// engine decides between connected and abandoned).
	AttemptEnded
)

// HangupByTrunk is AttemptEvent.HangupBy for an answered call whose trunk went down
// under it: nobody hung up, the line dropped.
const HangupByTrunk = "trunk"

// HangupByTimeout is AttemptEvent.HangupBy for an answered call the channel
// found dead and ended: no media for its timeout, or its session timer ran out
// unrefreshed; Detail says which.
const HangupByTimeout = "timeout"

// AttemptEvent reports one step of an attempt.
type AttemptEvent struct {
	Kind    AttemptEventKind
	At      time.Time
	Outcome campaigns.Outcome // on AttemptEnded of an unanswered attempt
	// SIPStatus is the final SIP response code, when the channel is SIP.
	SIPStatus int
	// Trunk names the SIP trunk (or WhatsApp number) that carried the attempt.
	Trunk string
	// HangupBy says who ended an answered call: "remote", "local",
	// HangupByTrunk when the trunk went down under it, or HangupByTimeout
	// when the channel found it dead.
	HangupBy string
	// Detail is a short human-readable reason (SIP reason phrase, API error).
	Detail string
	// ExternalID is the far end's id for the attempt (a WhatsApp call or message id).
	ExternalID string
	// SetupAt and RingAt, on AttemptEnded, are the channel's own record of when the
	// request left and when the far end first rang; they fill in steps whose
	// events were not seen (a 180 overtaken by its 200).
	SetupAt, RingAt time.Time
}
