// Package sip originates calls to SIP trunks (carriers) for the Turbina dialer.
//
// An [Originator] owns one SIP user agent (built on github.com/emiago/sipgo) and a
// set of trunks. [Originator.Dial] picks the preferred healthy trunk that has a
// free channel, waits for its calls-per-second budget, and sends an INVITE with
// a G.711 SDP offer; the returned [Call] reports progress (trying, ringing,
// early media, answer, end) and finally a [Result] with the [Outcome], the SIP
// status, timings and who hung up. Calls whose INVITE proves a trunk broken (no
// response, transport error, 503) move to the next trunk within the same Dial,
// so no contact is lost, and repeated faults open a per-trunk circuit that is
// closed again once the trunk answers an OPTIONS probe.
//
// The package knows nothing about campaigns or agents: the dialer engine wraps
// these types. RTP is only received, counted and exposed (see [Media]) so that
// the media package can bridge it.
package sip
