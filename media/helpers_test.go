package media

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// listenUDP opens a loopback UDP socket closed at the end of the test.
func listenUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// phone is the far end of a UDP leg: a SIP phone or the trunk, sending and
// receiving plain RTP on loopback.
type phone struct {
	conn *net.UDPConn
	leg  *UDPLeg
	ssrc uint32
	seq  uint16
	ts   uint32
	pt   uint8
}

// newPhone returns a UDP leg with codec and the phone at its far end.
func newPhone(t testing.TB, codec Codec, opts ...UDPLegOption) *phone {
	t.Helper()
	peer := listenUDP(t)
	legConn := listenUDP(t)
	leg := NewUDPLeg(legConn, peer.LocalAddr().(*net.UDPAddr), codec, opts...)
	t.Cleanup(func() { _ = leg.Close() })
	return &phone{conn: peer, leg: leg, ssrc: 0x1000 + uint32(time.Now().UnixNano()&0xFFF), seq: 65500, ts: 4294960000, pt: codec.PayloadType}
}

// send sends one RTP packet with the phone's next sequence number; the timestamp
// advances by len(payload) samples (G.711).
func (p *phone) send(t testing.TB, pt uint8, marker bool, payload []byte) {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker, PayloadType: pt, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc}, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDP(b, p.leg.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	p.seq++
	p.ts += uint32(len(payload))
}

// recv reads one RTP packet at the phone, failing the test after timeout.
func (p *phone) recv(t testing.TB, timeout time.Duration) rtp.Packet {
	t.Helper()
	pkt, err := p.tryRecv(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func (p *phone) tryRecv(timeout time.Duration) (rtp.Packet, error) {
	buf := make([]byte, 1500)
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := p.conn.Read(buf)
	if err != nil {
		return rtp.Packet{}, err
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(buf[:n]); err != nil {
		return rtp.Packet{}, err
	}
	return pkt, nil
}

// expectSilence fails if the phone receives anything within d.
func (p *phone) expectSilence(t testing.TB, d time.Duration) {
	t.Helper()
	if pkt, err := p.tryRecv(d); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unexpected packet %v (err %v)", pkt.Header, err)
	}
}

// startBridge runs a bridge over agent until the test ends.
func startBridge(t testing.TB, agent Leg, cfg BridgeConfig) *Bridge {
	t.Helper()
	b := NewBridge(agent, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge Run: %v", err)
		}
	})
	return b
}

func payload(i, n int, base byte) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = base + byte(i) + byte(j)
	}
	return b
}
