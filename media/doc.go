// Package media moves call audio: legs (a SIP leg is plain RTP over a UDP socket,
// a WebRTC leg is a pion track pair), a Bridge that relays RTP between a nailed-up
// agent leg and whichever customer leg is connected to it, G.711 codecs and
// transcoding, prompt playback, call recording and RTCP reception reports.
//
// The hot path (one packet in, one packet out) allocates nothing: every goroutine
// that moves packets owns its buffers, and RTP headers are parsed and rewritten in
// place instead of through rtp.Packet, whose Unmarshal allocates.
//
// Answering-machine detection lives in the subpackage media/amd.
package media
