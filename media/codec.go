package media

import (
	"fmt"
	"strings"
)

// Codec describes the audio codec negotiated on one leg.
type Codec struct {
	// Name is the SDP encoding name: "PCMU", "PCMA" or "opus".
	Name string
	// PayloadType is the RTP payload type negotiated for Name on this leg.
	PayloadType uint8
	// ClockRate is the RTP clock rate in Hz (8000 for G.711, 48000 for Opus).
	ClockRate uint32
	// Channels is the number of audio channels (1 for G.711, 2 as signalled for Opus).
	Channels uint8
	// TelephoneEvent is the negotiated RFC 4733 telephone-event payload type on
	// this leg, or 0 when none was negotiated (0 is PCMU and can never be dynamic).
	TelephoneEvent uint8
}

// Well-known codecs with their usual payload types. Copy and change PayloadType or
// TelephoneEvent to what the SDP negotiated.
var (
	// PCMU is G.711 µ-law, static payload type 0, with telephone-event on 101.
	PCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000, Channels: 1, TelephoneEvent: 101}
	// PCMA is G.711 A-law, static payload type 8, with telephone-event on 101.
	PCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000, Channels: 1, TelephoneEvent: 101}
	// Opus is Opus as WebRTC negotiates it (payload type 111, 48 kHz, "2" channels).
	Opus = Codec{Name: "opus", PayloadType: 111, ClockRate: 48000, Channels: 2}
)

// SameFormat reports whether payloads of c can be forwarded to a leg using d
// without transcoding (the payload types may still differ and are then mapped).
func (c Codec) SameFormat(d Codec) bool {
	return strings.EqualFold(c.Name, d.Name) && c.ClockRate == d.ClockRate
}

// String formats c like an SDP rtpmap value, for logs.
func (c Codec) String() string {
	return fmt.Sprintf("%s/%d pt=%d", c.Name, c.ClockRate, c.PayloadType)
}

// samplesPer20ms returns the RTP timestamp increment of one 20 ms frame.
func (c Codec) samplesPer20ms() uint32 {
	if c.ClockRate == 0 {
		return 160
	}
	return c.ClockRate / 50
}
