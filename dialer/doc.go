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
// The call inside a run is the other state machine: step, in callstep.go, is a
// pure function from a call's state and what happened to it (placed, ringing,
// answered, screened, an agent free, the patience run out, the agent's audio
// lost, the leg ended, the place failed, the engine stopping) to its next state
// and the effects the run must carry out, as data (tell the pacer, queue for an
// agent, connect, play the safe-harbour message, hang up, record the outcome).
// Its table lists every pair that can happen; the pairs that cannot are listed
// with why. run.go keeps the loop: it turns the channels' updates into those
// events, feeds step and carries out the effects (run.apply), and logs about a
// call with the call's own logger, which carries its campaign, attempt, contact
// and channel.
//
// The engine reaches contacts through the Channel contract of package
// dialer/channel (a Channel places an Attempt); the adapters that fulfil it live
// beside it, named for what they own: dialer/sipchannel (the SIP trunks) and
// dialer/wachannel (WhatsApp calls, permission requests and templates). The
// engine never imports them: cmd/turbina builds them and hands them to New.
//
// Two more parts live beside the engine, each seeing it through a small
// interface of its own: dialer/agentaudio keeps every agent's nailed-up audio
// and the bridge customers are switched onto (Engine.AgentAudio; run.go asks it
// for an agent's bridge), and dialer/waevents keeps and applies WhatsApp's
// webhook events (Engine.WhatsAppSink).
package dialer
