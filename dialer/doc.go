// Package dialer is Turbina's engine. It walks each contact of a running campaign up
// the escalation ladder (SIP call, WhatsApp call, WhatsApp template), asks package
// dialer/pacing how many calls to place, places them on the channels, routes answered
// calls to agents and records every outcome.
//
// The contact's journey is one state machine, kept in ladder.go as a table of rules:
// what each attempt outcome does to the contact's place on the ladder.
package dialer
