package media

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/internal/webrtctest"
)

// rtcpMarker marks the reports the test sends: the reporter's SSRC of its receiver
// reports and the octet count of its sender reports.
const rtcpMarker = 0x7e57

// rtcpCounter is an interceptor that counts the marked reports the peer reads.
// pion runs a stream's RTCP through the interceptors only as the application reads
// it, so what it counts is what left pion's per-stream buffers.
type rtcpCounter struct {
	interceptor.NoOp
	receiverReports atomic.Uint64 // about our outbound stream (the RTPSender's)
	senderReports   atomic.Uint64 // about the browser's stream (the RTPReceiver's)
}

func (c *rtcpCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

func (c *rtcpCounter) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		pkts, err := rtcp.Unmarshal(b[:n])
		if err != nil {
			return n, a, nil
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.ReceiverReport:
				if p.SSRC == rtcpMarker {
					c.receiverReports.Add(1)
				}
			case *rtcp.SenderReport:
				if p.OctetCount == rtcpMarker {
					c.senderReports.Add(1)
				}
			}
		}
		return n, a, nil
	})
}

// TestAgentPeerReadsItsRTCP sends an agent session more RTCP than pion's buffer of
// a stream holds (100 kB: some 3,000 of these 30-byte reports), both about the
// server's outbound stream and about the browser's, and checks that the server
// read them: unread, they stay queued as long as the session lasts, which a soak
// of 200 agents saw as a heap growing all along.
func TestAgentPeerReadsItsRTCP(t *testing.T) {
	counter := &rtcpCounter{}
	peers, err := newAgentPeers(ICEConfig{LoopbackOnly: true}, counter)
	if err != nil {
		t.Fatal(err)
	}
	b := webrtctest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	peer, answer, err := peers.Answer(ctx, b.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	b.Accept(t, answer)
	go b.Talk(ctx, nil)
	if _, err := peer.Legs(ctx); err != nil { // the browser's streams have arrived
		t.Fatal(err)
	}
	// The server may see the streams before the browser's DTLS is up, and RTCP
	// cannot be written before it is.
	for b.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
		select {
		case <-ctx.Done():
			t.Fatalf("the browser's connection is %s, want connected", b.PC.ConnectionState())
		case <-time.After(5 * time.Millisecond):
		}
	}
	ours := uint32(peer.pc.GetSenders()[0].GetParameters().Encodings[0].SSRC)
	theirs := uint32(b.PC.GetSenders()[0].GetParameters().Encodings[0].SSRC)

	// Sent in batches, each once the previous one was read (but for a batch's
	// worth of slack for loss), so the loopback's socket buffers never overflow.
	const total, batch = 4000, 100
	read := func() (uint64, uint64) { return counter.receiverReports.Load(), counter.senderReports.Load() }
	waitRead := func(want uint64) {
		t.Helper()
		for rr, sr := read(); rr < want || sr < want; rr, sr = read() {
			select {
			case <-ctx.Done():
				t.Fatalf("the server read %d receiver and %d sender reports of the %d sent of each; want %d", rr, sr, total, want)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	for sent := 0; sent < total; {
		for range batch {
			sent++
			rr := &rtcp.ReceiverReport{SSRC: rtcpMarker, Reports: []rtcp.ReceptionReport{{SSRC: ours, LastSequenceNumber: uint32(sent)}}}
			sr := &rtcp.SenderReport{SSRC: theirs, PacketCount: uint32(sent), OctetCount: rtcpMarker}
			if err := b.PC.WriteRTCP([]rtcp.Packet{rr}); err != nil {
				t.Fatal(err)
			}
			if err := b.PC.WriteRTCP([]rtcp.Packet{sr}); err != nil {
				t.Fatal(err)
			}
		}
		waitRead(uint64(sent - batch))
	}
	// 90 % of 4,000 reports is more than an unread buffer could have held.
	waitRead(total * 9 / 10)
}
