// Package sip originates calls to SIP trunks (carriers) for the Turbina dialer.
//
// An [Originator] owns one SIP user agent (built on github.com/emiago/sipgo) and a
// set of trunks. [Originator.Dial] picks the preferred healthy trunk that has a
// free channel, waits for its calls-per-second budget, and sends an INVITE with
// a G.711 SDP offer; the returned [Call] reports progress (trying, ringing,
// early media, answer, end) and finally a [Result] with the [Outcome], the SIP
// status, timings and who hung up. A final response is read through the
// trunk's response table (responses.go: the code, reason phrase or Q.850 cause
// gives the person's outcome, a trunk fault with its alarm, a retry elsewhere,
// a hold for Retry-After, or a redirect to a configured trunk). Calls whose
// INVITE proves a trunk broken (no response, a transport error, a refusal the
// table gives the trunk) move to the next trunk within the same Dial while the
// person has not been alerted, so no contact is lost and nobody rings twice,
// and repeated faults open a per-trunk circuit that is closed again once the
// trunk answers its OPTIONS probes.
//
// A trunk over TCP or TLS (transport.go) names the originator's TCP or TLS
// listener in Contact and Via (with alias, RFC 5923), never the connection's
// ephemeral port, so a carrier that closed the connection can open its own for
// a BYE; its digests sign the Request-URI as sent, parameters included.
//
// Each trunk has a monitor (health.go) that finds its death in about a second:
// the first sign (an INVITE with no response after SuspectAfter, a transport
// error, no RTP on any of its answered calls, a failed keepalive OPTIONS) starts
// a burst of OPTIONS, and when none is answered the trunk is down: its circuit
// opens, every unanswered call on it ends [OutcomeTrunkDown] at once (CANCEL
// after a provisional response; a 200 that still comes is ACKed and BYEd) and
// every answered call whose media stopped ends hung up by [PartyTrunk].
// Recovery takes RecoverAfter answered probes in a row, then the trunk's
// admission ramps up from one call in flight. Config.OnTrunkChange reports each
// change at once.
//
// The package knows nothing about campaigns or agents: the dialer engine wraps
// these types. RTP is only received, counted and exposed (see [Media]) so that
// the media package can bridge it.
package sip
