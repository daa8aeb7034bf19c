// Package carrier is a simulated SIP carrier: a user agent server on loopback that
// takes the calls a Turbina trunk places and behaves like the network behind a real
// trunk, so that the dialer can be tried — and tested — without a carrier account.
//
// It is built on github.com/emiago/sipgo and speaks SIP over UDP. Each INVITE gets
// one of five fates, drawn from a seeded random source with the odds in [Odds]
// (or fixed per number with [Carrier.Script]):
//
//   - [Answer]: 100 Trying, 180 Ringing for a ring time drawn between
//     Config.RingMin and Config.RingMax, then 200 OK with a G.711 SDP answer
//     (PCMU, or PCMA when that is all the offer has). Once the ACK arrives the
//     simulated person talks: RTP every 20 ms (speech-like bursts, a tone, the
//     prompt shipped in package media, or silence; see [Audio]) while the
//     caller's RTP is received and counted. The person hangs up (BYE) after a
//     talk time drawn between Config.TalkMin and Config.TalkMax, unless the
//     caller hangs up first.
//   - [RingOut]: 180 Ringing until the caller gives up with CANCEL (487), or
//     Config.MaxRing passes (480).
//   - [Busy]: 486 Busy Here after a short ring.
//   - [Fail]: 503 Service Unavailable at once (a fault of the network).
//   - [Invalid]: 404 Not Found (the number does not exist).
//
// OPTIONS are answered 200, so a trunk whose circuit opened closes it again once
// its probe gets through. [Carrier.Cut] makes the carrier go silent — every SIP
// and RTP datagram in either direction is dropped, as when the trunk's link
// dies — and [Carrier.Cut] with false brings it back.
//
// A Turbina trunk is pointed at it with [Carrier.Addr]:
//
//	c, _ := carrier.Start(ctx, carrier.Config{Seed: 1})
//	defer c.Close()
//	cfg := sip.Config{Trunks: []sip.TrunkConfig{{Name: "sim", Address: c.Addr()}}}
package carrier
