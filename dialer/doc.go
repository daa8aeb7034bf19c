// Package dialer is Turbina's engine. It walks each contact of a running campaign up
// the escalation ladder (SIP call, WhatsApp call, WhatsApp template), asks package
// dialer/pacing how many calls to place, places them on the channels, routes answered
// calls to agents and records every outcome.
//
// The contact's journey is one state machine, the transition table of
// campaigns/journey.go: the engine turns what happens (an attempt's outcome, a
// refusal, a permission, a template's status) into its events and lets the storage
// write where campaigns.Apply says the contact goes.
package dialer
