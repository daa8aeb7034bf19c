package dialer

import "github.com/turbina-dialer/turbina/dialer/channel"

// The engine's names for the channel contract, which lives in package channel so
// that the adapters need not import the engine. They are aliases, not new types.
type (
	// Channel is channel.Channel.
	Channel = channel.Channel
	// Leg is channel.Leg.
	Leg = channel.Leg
	// LegEvent is channel.LegEvent.
	LegEvent = channel.LegEvent
	// LegEventKind is channel.LegEventKind.
	LegEventKind = channel.LegEventKind
	// PlaceRequest is channel.PlaceRequest.
	PlaceRequest = channel.PlaceRequest
	// OutcomeError is channel.OutcomeError.
	OutcomeError = channel.OutcomeError
)

// Steps of an attempt, as in package channel.
const (
	LegSetup    = channel.LegSetup
	LegRinging  = channel.LegRinging
	LegAnswered = channel.LegAnswered
	LegEnded    = channel.LegEnded
)

// Errors of Channel.Place, as in package channel.
var (
	ErrChannelDown = channel.ErrChannelDown
	ErrChannelBusy = channel.ErrChannelBusy
)
