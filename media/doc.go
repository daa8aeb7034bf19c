// Package media moves call audio: legs (a SIP leg is plain RTP over a UDP socket,
// a WebRTC leg is a pion track pair), a Bridge that relays RTP between an agent's
// nailed-up legs and whichever customer leg is connected to one of them, G.711
// codecs and transcoding, prompt playback, call recording and RTCP reception
// reports.
//
// A browser agent's WebRTC session carries two audio paths, one answered with
// PCMU and one with Opus (AgentPeers), so that SIP customers (PCMU) and WhatsApp
// customers (Opus) are both forwarded without transcoding; the browser sends its
// microphone on the path of the current call alone (Call.Path), so it uploads
// one stream. A SIP phone agent, or a browser offering one transceiver, has one
// leg and gets the other codec transcoded.
//
// The hot path (one packet in, one packet out) allocates nothing: every goroutine
// that moves packets owns its buffers, and RTP headers are parsed and rewritten in
// place instead of through rtp.Packet, whose Unmarshal allocates.
//
// Answering-machine detection lives in the subpackage media/amd.
package media
