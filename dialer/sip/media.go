package sip

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Media is the RTP side of an answered call: one local UDP socket and the
// carrier's address and codec from its SDP answer. The Call owns the socket
// and closes it when the call ends. A single goroutine reads it (counting
// packets); a bridge receives them through [Media.SetReceiver] and sends with
// [Media.WriteRTP] or [Media.Write].
type Media struct {
	conn *net.UDPConn

	mu     sync.Mutex
	remote *net.UDPAddr
	codec  Codec
	dtmf   uint8
	// held: the peer's SDP says it receives nothing (RFC 3264 §8.4); what
	// Write is given is dropped.
	held bool
	// follow, when set, hears of every change the SDP makes (Follow).
	follow func(MediaState)

	// quiet: the peer's SDP says it sends nothing, so its silence is no sign
	// of a dead call; quietUntil is when it last stopped being quiet (unix ns).
	quiet      atomic.Bool
	quietUntil atomic.Int64

	recv atomic.Uint64
	sent atomic.Uint64
	// lastRecv is when the newest RTP packet arrived (unix ns, 0: none); after
	// Detach only the new reader's NoteReceived moves it, and reported says it does.
	lastRecv atomic.Int64
	reported atomic.Bool
	promised atomic.Bool // WillNoteReceived
	receiver atomic.Pointer[func(pkt []byte)]

	silenceStop chan struct{}
	silenceOnce sync.Once
	closeOnce   sync.Once
	readerDone  chan struct{}
	detached    atomic.Bool
	detachOnce  sync.Once

	// answered is set when the 200 OK arrives; from then on the reader keeps a
	// copy of the newest packet in last, for Detach.
	answered atomic.Bool
	last     []byte

	// sec is the attempt's SRTP (srtp.go), nil on a trunk that does not offer it;
	// relayAddr is where a bridge sends after an SRTP call's Detach.
	sec       atomic.Pointer[srtpState]
	relayAddr atomic.Pointer[net.UDPAddr]
}

// Detach stops Media's own reading and silence and hands the socket over to a
// bridge that reads and writes it directly. The call still closes the socket when
// it ends, which is how the bridge learns of it; the counters stop counting.
//
// last is the newest RTP packet Media read after the 200 OK (nil if none), a copy
// the caller owns. The far end starts talking as soon as it has the ACK, so
// Media's reader may have taken the person's first packet off the socket before
// the hand-over: given to the new reader first, it is not lost. Only the first
// Detach returns it.
//
// On an SRTP call the bridge gets instead a plain RTP socket on loopback, and
// sends to RemoteAddr: Media keeps the trunk's socket and relays, decrypting
// what comes and encrypting what goes.
func (m *Media) Detach() (conn *net.UDPConn, last []byte) {
	if conn, last, ok := m.detachSRTP(); ok {
		return conn, last
	}
	m.StopSilence()
	m.detachOnce.Do(func() {
		m.detached.Store(true)
		// Wake the reader out of ReadFromUDP; it sees detached and returns.
		_ = m.conn.SetReadDeadline(time.Now())
		<-m.readerDone
		_ = m.conn.SetReadDeadline(time.Time{})
		if len(m.last) > 0 {
			last = m.last // the reader has returned: nobody else touches it
		}
		m.last = nil
	})
	return m.conn, last
}

// LocalAddr returns the local RTP address offered in the INVITE.
func (m *Media) LocalAddr() *net.UDPAddr { return m.conn.LocalAddr().(*net.UDPAddr) }

// RemoteAddr returns where RTP goes, from the SDP answer (nil before it); after
// an SRTP call's Detach, the relay that encrypts it on its way there.
func (m *Media) RemoteAddr() *net.UDPAddr {
	if a := m.relayAddr.Load(); a != nil {
		return a
	}
	return m.carrierAddr()
}

// carrierAddr is the carrier's RTP address from the SDP answer (nil before it).
func (m *Media) carrierAddr() *net.UDPAddr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.remote
}

// Codec returns the negotiated audio codec (PCMU or PCMA).
func (m *Media) Codec() Codec {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.codec
}

// TelephoneEvent returns the RFC 4733 payload type the carrier accepted, 0 if none.
func (m *Media) TelephoneEvent() uint8 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dtmf
}

// PacketsReceived counts RTP packets received on the socket.
func (m *Media) PacketsReceived() uint64 { return m.recv.Load() }

// PacketsSent counts RTP packets sent through this Media.
func (m *Media) PacketsSent() uint64 { return m.sent.Load() }

// NoteReceived tells the call that an RTP packet arrived at at. A bridge that
// took the socket with Detach calls it (for every packet, or at least every
// 100 ms while packets flow): the trunk's health watch judges a trunk whose
// answered calls all went silent as suspect, and ends such calls when the trunk
// is down. A detached Media never told is not judged.
func (m *Media) NoteReceived(at time.Time) {
	m.reported.Store(true)
	m.lastRecv.Store(at.UnixNano())
}

// WillNoteReceived tells the call that the reader that took the socket with
// Detach calls NoteReceived for each packet it reads, from now on: a call from
// which nothing at all arrives after the hand-over can then be ended after
// Config.RTPTimeout, as one whose socket Media still reads.
func (m *Media) WillNoteReceived() { m.promised.Store(true) }

// LastReceived is when the newest RTP packet arrived, and whether that is
// known: false before any packet, and after Detach until NoteReceived is called.
func (m *Media) LastReceived() (time.Time, bool) {
	if m.detached.Load() && !m.reported.Load() {
		return time.Time{}, false
	}
	ns := m.lastRecv.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// SetReceiver installs fn to be called, on the reading goroutine, with each
// RTP packet received. pkt is reused after fn returns; fn must not block.
func (m *Media) SetReceiver(fn func(pkt []byte)) {
	if fn == nil {
		m.receiver.Store(nil)
		return
	}
	m.receiver.Store(&fn)
}

// Write sends one raw RTP packet to the carrier, encrypted on an SRTP call.
func (m *Media) Write(pkt []byte) (int, error) {
	remote, held := m.carrierAddr(), m.isHeld()
	if held {
		return len(pkt), nil
	}
	if remote == nil {
		return 0, errors.New("media: no remote address yet")
	}
	n, secure, err := m.writeSRTP(pkt, remote)
	if !secure {
		n, err = m.conn.WriteToUDP(pkt, remote)
	}
	if err != nil {
		return n, fmt.Errorf("media: write rtp: %w", err)
	}
	m.sent.Add(1)
	return n, nil
}

// WriteRTP marshals and sends one RTP packet to the carrier.
func (m *Media) WriteRTP(p *rtp.Packet) error {
	buf, err := p.Marshal()
	if err != nil {
		return fmt.Errorf("media: marshal rtp: %w", err)
	}
	_, err = m.Write(buf)
	return err
}

// StopSilence stops the silence that Config.SendSilence starts on answer, so
// a bridge can send its own stream with its own SSRC.
func (m *Media) StopSilence() {
	m.silenceOnce.Do(func() { close(m.silenceStop) })
}

// MediaState is where a call's RTP goes and how, as the latest offer and
// answer agreed.
type MediaState struct {
	// Remote is the peer's RTP address.
	Remote *net.UDPAddr
	// Codec is the agreed audio codec.
	Codec Codec
	// TelephoneEvent is the RFC 4733 payload type, 0 when none.
	TelephoneEvent uint8
	// Held is set while the peer receives nothing: send nothing.
	Held bool
}

// Follow installs fn to hear of every change a new offer and answer make in
// the middle of the call (a re-INVITE or UPDATE moving RTP, changing the codec,
// holding or resuming), so a bridge that took the socket with Detach follows
// it. fn is called at once with the current state, then on each change, on
// the goroutine of the SIP request; it must not block.
func (m *Media) Follow(fn func(MediaState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.follow = fn
	if fn != nil {
		fn(m.stateLocked())
	}
}

// State returns where the call's RTP goes and how, as last agreed.
func (m *Media) State() MediaState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateLocked()
}

// stateLocked is the state a bridge follows: its Remote is the SRTP relay's
// address, not the carrier's, on an SRTP call handed over with Detach.
func (m *Media) stateLocked() MediaState {
	remote := m.remote
	if a := m.relayAddr.Load(); a != nil {
		remote = a
	}
	return MediaState{Remote: remote, Codec: m.codec, TelephoneEvent: m.dtmf, Held: m.held}
}

func (m *Media) isHeld() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// setAnswer applies an agreed offer and answer. a.Remote nil (an old-style
// hold, c=0.0.0.0) keeps the address; a.Direction is the peer's.
func (m *Media) setAnswer(a Answer) {
	dir := a.Direction
	if dir == "" {
		dir = DirSendRecv
	}
	if a.Remote == nil {
		dir = DirSendOnly // RFC 3264 §8.4: the peer wants nothing sent to it
	}
	if !dir.sends() {
		m.quiet.Store(true)
	} else if m.quiet.Swap(false) {
		// The allowance for silence starts again from the resume.
		m.quietUntil.Store(time.Now().UnixNano())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.Remote != nil {
		m.remote = a.Remote
	}
	m.codec, m.dtmf, m.held = a.Codec, a.TelephoneEvent, !dir.receives()
	if m.follow != nil {
		m.follow(m.stateLocked())
	}
}

// expectsMedia reports whether the peer's SDP says it sends RTP, and since
// when the silence may be judged (zero: the answer).
func (m *Media) expectsMedia() (bool, time.Time) {
	if m.quiet.Load() {
		return false, time.Time{}
	}
	if ns := m.quietUntil.Load(); ns != 0 {
		return true, time.Unix(0, ns)
	}
	return true, time.Time{}
}

// read counts (and forwards) packets until the socket is closed.
func (m *Media) read() {
	defer close(m.readerDone)
	buf, plain := make([]byte, 1500), make([]byte, 0, 1500)
	for {
		n, _, err := m.conn.ReadFromUDP(buf)
		// Count only what looks like RTP v2 so stray datagrams do not inflate it.
		rtp := err == nil && n >= 12 && buf[0]>>6 == 2
		pkt := buf[:n]
		if rtp {
			// SRTP (srtp.go): decrypted, or dropped when it fails authentication.
			pkt, rtp = m.unprotect(plain, pkt)
		}
		if rtp && m.relayed(pkt) {
			m.recv.Add(1)
			m.lastRecv.Store(time.Now().UnixNano())
			continue
		}
		if rtp && m.answered.Load() {
			// Kept even when a Detach is under way: a packet read as the
			// hand-over began is the person's first words, not to be lost.
			m.last = append(m.last[:0], pkt...)
		}
		if m.detached.Load() {
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable surfacing on Linux
		}
		if !rtp {
			continue
		}
		m.recv.Add(1)
		m.lastRecv.Store(time.Now().UnixNano())
		if fn := m.receiver.Load(); fn != nil {
			(*fn)(pkt)
		}
	}
}

// sendSilence sends 20 ms G.711 silence frames until stopped or closed.
func (m *Media) sendSilence(done <-chan struct{}) {
	codec := m.Codec()
	var seed [6]byte
	_, _ = rand.Read(seed[:])
	p := &rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			PayloadType:    codec.PayloadType,
			SequenceNumber: binary.BigEndian.Uint16(seed[0:2]),
			SSRC:           binary.BigEndian.Uint32(seed[2:6]),
		},
		Payload: make([]byte, 160),
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// The codec may change mid-call (a re-INVITE): each frame in the current one.
		codec = m.Codec()
		fill := byte(0xFF) // µ-law silence
		if codec.Name == "PCMA" {
			fill = 0xD5
		}
		for i := range p.Payload {
			p.Payload[i] = fill
		}
		p.PayloadType = codec.PayloadType
		if err := m.WriteRTP(p); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
		p.SequenceNumber++
		p.Timestamp += 160
		select {
		case <-tick.C:
		case <-m.silenceStop:
			return
		case <-done:
			return
		}
	}
}

func (m *Media) close() {
	m.closeOnce.Do(func() {
		m.StopSilence()
		_ = m.conn.Close()
		m.closeSRTP()
	})
}

// portAllocator hands out local RTP ports from a range, round robin, so a
// port just released is not reused at once (late packets of the old call).
type portAllocator struct {
	mu       sync.Mutex
	ip       net.IP
	min, max int
	next     int
}

func (a *portAllocator) open() (*Media, error) {
	conn, err := a.listen()
	if err != nil {
		return nil, err
	}
	m := &Media{conn: conn, silenceStop: make(chan struct{}), readerDone: make(chan struct{})}
	go m.read()
	return m, nil
}

func (a *portAllocator) listen() (*net.UDPConn, error) {
	if a.min == 0 && a.max == 0 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: a.ip})
		if err != nil {
			return nil, fmt.Errorf("rtp listen: %w", err)
		}
		return c, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	base := a.min + a.min%2 // RTP on even ports; RTCP would take the odd one
	span := (a.max-base)/2 + 1
	var lastErr error = errors.New("range holds no even port")
	for i := 0; i < span; i++ {
		port := base + 2*a.next
		a.next = (a.next + 1) % span
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: a.ip, Port: port})
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("rtp listen: no free port in %d-%d: %w", a.min, a.max, lastErr)
}
