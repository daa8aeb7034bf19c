// Package dialer is Turbina's engine. It walks each contact of a running campaign up
// the escalation ladder (SIP call, WhatsApp call, WhatsApp template), asks package
// dialer/pacing how many calls to place, places them on the channels, routes answered
// calls to agents and records every outcome.
//
// The contact's journey is one state machine, the transition table of
// campaigns/journey.go: the engine turns what happens (an attempt's outcome, a
// refusal, a permission, a template's status) into its events and lets the storage
// write where campaigns.Apply says the contact goes.
//
// The engine reaches contacts through the Channel contract of package
// dialer/channel; the adapters that fulfil it live beside it, named for what they
// own: dialer/sipchannel (the SIP trunks) and dialer/wachannel (WhatsApp calls,
// permission requests and templates). The engine never imports them: cmd/turbina
// builds them and hands them to New.
package dialer
