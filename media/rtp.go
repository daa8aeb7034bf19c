package media

import (
	"encoding/binary"
	"errors"
)

// rtpFixedHeader is the size of an RTP header without CSRCs or extension.
const rtpFixedHeader = 12

// maxPacket is the receive buffer size: anything larger than an Ethernet MTU is not
// a voice packet.
const maxPacket = 1500

var (
	errShortRTP   = errors.New("media: RTP packet too short")
	errRTPVersion = errors.New("media: not RTP version 2")
	errRTPIsRTCP  = errors.New("media: RTCP on the RTP port")
)

// rtpView is a parsed view of an RTP packet held in a caller's buffer. Parsing and
// rewriting through it allocates nothing, unlike rtp.Packet.Unmarshal.
type rtpView struct {
	buf        []byte // whole packet
	payloadOff int
	payloadEnd int
}

// parseRTP validates b as an RTP packet (RFC 3550 §5.1) and returns a view of it.
func parseRTP(b []byte) (rtpView, error) {
	if len(b) < rtpFixedHeader {
		return rtpView{}, errShortRTP
	}
	if b[0]>>6 != 2 {
		return rtpView{}, errRTPVersion
	}
	// RFC 5761: payload types 72-76 (with the marker bit, 200-204) are RTCP
	// multiplexed onto the RTP port.
	if pt := b[1] & 0x7F; pt >= 72 && pt <= 76 {
		return rtpView{}, errRTPIsRTCP
	}
	off := rtpFixedHeader + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < off+4 {
			return rtpView{}, errShortRTP
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: the last octet counts the padding octets
		end -= int(b[len(b)-1])
	}
	if off > end || end > len(b) {
		return rtpView{}, errShortRTP
	}
	return rtpView{buf: b, payloadOff: off, payloadEnd: end}, nil
}

func (v rtpView) marker() bool        { return v.buf[1]&0x80 != 0 }
func (v rtpView) payloadType() uint8  { return v.buf[1] & 0x7F }
func (v rtpView) seq() uint16         { return binary.BigEndian.Uint16(v.buf[2:]) }
func (v rtpView) timestamp() uint32   { return binary.BigEndian.Uint32(v.buf[4:]) }
func (v rtpView) ssrc() uint32        { return binary.BigEndian.Uint32(v.buf[8:]) }
func (v rtpView) payload() []byte     { return v.buf[v.payloadOff:v.payloadEnd] }
func (v rtpView) headerLen() int      { return v.payloadOff }
func (v rtpView) withoutPadding() int { return v.payloadEnd }

// putRTPHeader writes a 12-octet RTP header (no CSRC, no extension) into b.
func putRTPHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	b[0] = 0x80
	b[1] = pt & 0x7F
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

// rewriteRTPHeader rewrites the fields the bridge maps, in place.
func rewriteRTPHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	b[1] = pt & 0x7F
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

// seqTracker counts received and lost packets of one RTP source the way RFC 3550
// appendix A.3 does: expected = extended highest sequence - base + 1.
type seqTracker struct {
	started  bool
	ssrc     uint32
	base     uint32
	cycles   uint32
	maxSeq   uint16
	received uint64
	// lostBefore keeps the loss counted before a sequence restart.
	lostBefore uint64
}

// seqJumpReset is how far a sequence number may jump before the tracker treats it
// as a restarted source instead of a burst of loss (RFC 3550 MAX_DROPOUT).
const seqJumpReset = 3000

// update records a packet and reports whether it starts a new source (first packet
// or new SSRC), so callers can rebase their own state.
func (s *seqTracker) update(ssrc uint32, seq uint16) (newSource bool) {
	if !s.started || ssrc != s.ssrc {
		*s = seqTracker{started: true, ssrc: ssrc, base: uint32(seq), maxSeq: seq, received: 1, lostBefore: s.lost()}
		return true
	}
	s.received++
	delta := seq - s.maxSeq
	switch {
	case delta == 0: // duplicate
	case delta < seqJumpReset:
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	case delta > 0xFFFF-100: // late or reordered packet: already counted as expected
	default: // a big jump: the sender restarted its sequence; keep what was lost
		s.lostBefore += s.lost()
		s.received = 1
		s.cycles = 0
		s.base = uint32(seq)
		s.maxSeq = seq
	}
	return false
}

// extendedMax returns the extended highest sequence number received.
func (s *seqTracker) extendedMax() uint32 { return s.cycles + uint32(s.maxSeq) }

// expected returns how many packets should have arrived.
func (s *seqTracker) expected() uint64 {
	if !s.started {
		return 0
	}
	return uint64(s.extendedMax()-s.base) + 1
}

// lost returns expected minus received, never negative (duplicates can exceed it).
func (s *seqTracker) lost() uint64 {
	e := s.expected()
	if s.received >= e {
		return s.lostBefore
	}
	return s.lostBefore + e - s.received
}
