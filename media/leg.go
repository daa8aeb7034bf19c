package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Leg is one side of a call's media: something RTP can be read from and written
// to. A SIP leg is a UDP socket (UDPLeg), a WebRTC leg is a pion track pair
// (WebRTCLeg). Legs follow net.Conn conventions rather than taking a context per
// read, so the packet path allocates nothing: a blocked ReadRTP is interrupted with
// SetReadDeadline or Close.
type Leg interface {
	// ReadRTP reads one valid RTP packet into buf and returns its length.
	// Malformed datagrams are dropped inside the leg and never returned.
	ReadRTP(buf []byte) (int, error)
	// WriteRTP sends one marshalled RTP packet. The caller keeps pkt.
	WriteRTP(pkt []byte) error
	// SetReadDeadline makes a pending and future ReadRTP fail with an error
	// wrapping os.ErrDeadlineExceeded after t; the zero time means no deadline.
	SetReadDeadline(t time.Time) error
	// Codec returns the negotiated codec of the leg.
	Codec() Codec
	// Close releases the leg; a blocked ReadRTP returns an error.
	Close() error
}

// ErrNoRemote is returned by UDPLeg.WriteRTP while the remote address is not yet
// known (latching mode, nothing received yet).
var ErrNoRemote = errors.New("media: remote RTP address not known yet")

// UDPLeg is a Leg over a UDP socket: the RTP of a SIP call, to a customer through
// the trunk or to an agent's phone.
type UDPLeg struct {
	conn   *net.UDPConn
	codec  atomic.Pointer[Codec]
	remote atomic.Pointer[netip.AddrPort]
	// muted: the peer put the call on hold (its SDP says it receives nothing),
	// so what the leg is given to send is dropped (RFC 3264 §8.4).
	muted atomic.Bool
	latch bool
	unmap bool // the socket is IPv4: send to plain IPv4 addresses

	// first is a packet read off conn before the leg took it over, returned
	// before anything the socket holds (WithFirstPacket).
	first atomic.Pointer[[]byte]

	malformed atomic.Uint64
	log       *slog.Logger
	rtcp      *rtcpSession
	closeOnce sync.Once
}

// UDPLegOption configures a UDPLeg.
type UDPLegOption func(*UDPLeg)

// WithLatching makes the leg send to the source address of the latest packet it
// received (symmetric RTP, RFC 4961), for phones behind NAT whose SDP address is
// not reachable. With a nil remote address, latching is implied.
func WithLatching() UDPLegOption { return func(l *UDPLeg) { l.latch = true } }

// WithRTCP makes the leg answer RTCP (RFC 3550): it reads the peer's reports on
// conn and sends a receiver report (or sender report, once the leg sends RTP)
// about the stream it receives every interval and in answer to each sender report.
// remote is the peer's RTCP address, usually the RTP port + 1. The leg owns conn.
func WithRTCP(conn *net.UDPConn, remote *net.UDPAddr, interval time.Duration) UDPLegOption {
	return func(l *UDPLeg) {
		l.rtcp = newRTCPSession(conn, remote, interval, l.Codec().ClockRate)
	}
}

// WithFirstPacket gives the leg a packet its socket received before the leg took
// the socket over (the SIP layer read it between the answer and the hand-over):
// the leg's first ReadRTP returns it, and DiscardQueued counts it as the oldest
// queued packet. A nil or malformed pkt is ignored. The leg keeps pkt.
func WithFirstPacket(pkt []byte) UDPLegOption {
	return func(l *UDPLeg) {
		if _, err := parseRTP(pkt); err == nil {
			l.first.Store(&pkt)
		}
	}
}

// WithLogger sets the logger for the leg's background work (RTCP); the default
// is slog.Default().
func WithLogger(log *slog.Logger) UDPLegOption {
	return func(l *UDPLeg) { l.log = log }
}

// NewUDPLeg returns a leg that reads RTP from conn and sends it to remote. The SIP
// layer owns the socket's creation (it put its port in the SDP); the leg owns it
// from here on and closes it in Close. A nil remote waits for the first packet
// and latches to its source.
func NewUDPLeg(conn *net.UDPConn, remote *net.UDPAddr, codec Codec, opts ...UDPLegOption) *UDPLeg {
	l := &UDPLeg{conn: conn, log: slog.Default()}
	l.codec.Store(&codec)
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil && !la.IP.IsUnspecified() {
		l.unmap = true
	}
	if remote == nil {
		l.latch = true
	} else {
		l.SetRemote(remote)
	}
	for _, o := range opts {
		o(l)
	}
	if l.rtcp != nil {
		l.rtcp.start(l.log)
	}
	return l
}

// ReadRTP implements Leg.
func (l *UDPLeg) ReadRTP(buf []byte) (int, error) {
	if p := l.first.Swap(nil); p != nil && len(buf) >= len(*p) {
		n := copy(buf, *p)
		if l.rtcp != nil {
			v, _ := parseRTP(buf[:n]) // checked by WithFirstPacket
			l.rtcp.received(v, n)
		}
		return n, nil
	}
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return 0, fmt.Errorf("read RTP: %w", err)
		}
		v, err := parseRTP(buf[:n])
		if err != nil {
			l.malformed.Add(1)
			continue
		}
		if l.latch {
			if cur := l.remote.Load(); cur == nil || *cur != from {
				l.remote.Store(&from) // rare: a new source address, so the allocation is fine
			}
		}
		if l.rtcp != nil {
			l.rtcp.received(v, n)
		}
		return n, nil
	}
}

// SetRemote moves where the leg sends RTP: the peer's new offer or answer in
// the middle of the call named another address (RFC 3264 §8.3.1). A latching
// leg still follows the source of what it receives. A nil addr is ignored.
func (l *UDPLeg) SetRemote(addr *net.UDPAddr) {
	if addr == nil {
		return
	}
	ap := addr.AddrPort()
	if l.unmap {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	l.remote.Store(&ap)
}

// SetCodec changes the leg's codec after a new offer and answer; a bridge the
// leg is connected to follows it (transcoding when the agent's differs).
func (l *UDPLeg) SetCodec(c Codec) { l.codec.Store(&c) }

// SetMuted makes WriteRTP drop what it is given while the peer holds the call
// and receives nothing, and send again once it resumes.
func (l *UDPLeg) SetMuted(muted bool) { l.muted.Store(muted) }

// WriteRTP implements Leg.
func (l *UDPLeg) WriteRTP(pkt []byte) error {
	if l.muted.Load() {
		return nil
	}
	to := l.remote.Load()
	if to == nil {
		return ErrNoRemote
	}
	if _, err := l.conn.WriteToUDPAddrPort(pkt, *to); err != nil {
		return fmt.Errorf("write RTP: %w", err)
	}
	if l.rtcp != nil && len(pkt) >= rtpFixedHeader {
		l.rtcp.sent(pkt)
	}
	return nil
}

// SetReadDeadline implements Leg.
func (l *UDPLeg) SetReadDeadline(t time.Time) error { return l.conn.SetReadDeadline(t) }

// Codec implements Leg.
func (l *UDPLeg) Codec() Codec { return *l.codec.Load() }

// LocalAddr returns the socket's local address.
func (l *UDPLeg) LocalAddr() *net.UDPAddr { return l.conn.LocalAddr().(*net.UDPAddr) }

// Malformed returns how many datagrams were dropped as not RTP.
func (l *UDPLeg) Malformed() uint64 { return l.malformed.Load() }

// Close implements Leg: it closes the RTP socket and the RTCP socket if any.
func (l *UDPLeg) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.conn.Close()
		if l.rtcp != nil {
			err = errors.Join(err, l.rtcp.close())
		}
	})
	return err
}

// WebRTCLeg is a Leg over pion WebRTC: the browser agent's softphone or a WhatsApp
// call. pion handles SRTP, RTCP and the negotiated payload types itself.
type WebRTCLeg struct {
	remote *webrtc.TrackRemote
	local  *webrtc.TrackLocalStaticRTP
	codec  Codec

	// wmu serialises writes; out renumbers them into one stream. Writers take
	// turns on one leg (a bridge, then the safe-harbour message when the agent
	// is gone), each with sequence numbers of its own, and on an SRTP track a
	// receiver drops a writer whose numbers jump back or far ahead as replayed
	// or from another rollover: the person would hear nothing.
	wmu sync.Mutex
	out outStream
	buf []byte
}

// NewWebRTCLeg returns a leg reading from remote and writing to local; either may
// be nil for a one-way leg. The codec is taken from local (whose payload type
// pion assigns per peer) or, when local is nil, from remote.
//
// pion's TrackLocalStaticRTP rewrites every packet's payload type to the track's
// codec, so telephone-events cannot be sent into a WebRTC leg: Codec reports no
// TelephoneEvent and the bridge drops DTMF towards it (browsers ignore it anyway).
func NewWebRTCLeg(remote *webrtc.TrackRemote, local *webrtc.TrackLocalStaticRTP) *WebRTCLeg {
	var c Codec
	switch {
	case remote != nil:
		rc := remote.Codec()
		c = codecFromWebRTC(rc.RTPCodecCapability, uint8(rc.PayloadType))
	case local != nil:
		c = codecFromWebRTC(local.Codec(), 0)
	}
	return newWebRTCLeg(remote, local, c)
}

// newWebRTCLeg is NewWebRTCLeg with the codec given: a remote track announced
// before its first packet does not know its own yet.
func newWebRTCLeg(remote *webrtc.TrackRemote, local *webrtc.TrackLocalStaticRTP, c Codec) *WebRTCLeg {
	return &WebRTCLeg{remote: remote, local: local, codec: c, out: newOutStream(c.ClockRate, 20*time.Millisecond)}
}

func codecFromWebRTC(c webrtc.RTPCodecCapability, pt uint8) Codec {
	name := c.MimeType
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	switch {
	case strings.EqualFold(name, "PCMU"):
		name = "PCMU"
	case strings.EqualFold(name, "PCMA"):
		name = "PCMA"
	case strings.EqualFold(name, "opus"):
		name = "opus"
	}
	return Codec{Name: name, PayloadType: pt, ClockRate: c.ClockRate, Channels: uint8(c.Channels)}
}

// ErrOneWay is returned when reading from a WebRTC leg without a remote track or
// writing to one without a local track.
var ErrOneWay = errors.New("media: one-way WebRTC leg")

// ReadRTP implements Leg.
func (l *WebRTCLeg) ReadRTP(buf []byte) (int, error) {
	if l.remote == nil {
		return 0, ErrOneWay
	}
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return 0, fmt.Errorf("read WebRTC track: %w", err)
		}
		if _, err := parseRTP(buf[:n]); err == nil {
			return n, nil
		}
	}
}

// WriteRTP implements Leg.
func (l *WebRTCLeg) WriteRTP(pkt []byte) error {
	if l.local == nil {
		return ErrOneWay
	}
	v, err := parseRTP(pkt)
	if err != nil {
		return fmt.Errorf("write WebRTC track: %w", err)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	seq, ts, first := l.out.next(v.ssrc(), v.seq(), v.timestamp(), 0)
	l.buf = append(l.buf[:0], pkt...)
	rewriteRTPHeader(l.buf, v.marker() || first, v.payloadType(), seq, ts, l.out.ssrc)
	if _, err := l.local.Write(l.buf); err != nil {
		return fmt.Errorf("write WebRTC track: %w", err)
	}
	return nil
}

// SetReadDeadline implements Leg.
func (l *WebRTCLeg) SetReadDeadline(t time.Time) error {
	if l.remote == nil {
		return nil
	}
	return l.remote.SetReadDeadline(t)
}

// Codec implements Leg.
func (l *WebRTCLeg) Codec() Codec { return l.codec }

// Close implements Leg. The tracks belong to their PeerConnection, which the
// caller closes; Close only unblocks a pending read.
func (l *WebRTCLeg) Close() error {
	return l.SetReadDeadline(time.Now())
}
