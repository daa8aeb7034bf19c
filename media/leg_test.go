package media

import (
	"bytes"
	"net"
	"testing"

	"github.com/pion/rtp"
)

// marshal returns one PCMU RTP packet with sequence number seq and payload p.
func marshal(t testing.TB, seq uint16, p []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, SSRC: 7}, Payload: p}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUDPLegFirstPacket checks that the packet the SIP layer read before handing
// the socket over comes first, and that DiscardQueued weighs it as the oldest.
func TestUDPLegFirstPacket(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   []byte
		queued  int    // packets on the socket before the first read
		discard bool   // DiscardQueued before reading
		dropped int    // what DiscardQueued reports dropped
		want    []byte // payload first returned (DiscardQueued's newest, or ReadRTP's)
	}{
		{name: "read first", first: []byte{1}, queued: 2, want: []byte{1}},
		{name: "read without first", queued: 2, want: []byte{100}},
		{name: "malformed first ignored", first: []byte{0, 1, 2}, queued: 1, want: []byte{100}},
		{name: "discard nothing queued", first: []byte{1}, discard: true, want: []byte{1}},
		{name: "discard keeps newest queued", first: []byte{1}, queued: 3, discard: true, dropped: 3, want: []byte{102}},
		{name: "discard without first", queued: 3, discard: true, dropped: 2, want: []byte{102}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := listenUDP(t)
			conn := listenUDP(t)
			first := tc.first
			if len(first) == 1 {
				first = marshal(t, 1, first)
			}
			leg := NewUDPLeg(conn, peer.LocalAddr().(*net.UDPAddr), PCMU, WithFirstPacket(first))
			for i := range tc.queued {
				// Loopback delivers into the leg's socket before WriteToUDP returns.
				if _, err := peer.WriteToUDP(marshal(t, uint16(100+i), []byte{byte(100 + i)}), leg.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			var got rtp.Packet
			if tc.discard {
				dropped, newest := leg.DiscardQueued()
				if dropped != tc.dropped {
					t.Errorf("dropped %d, want %d", dropped, tc.dropped)
				}
				if err := got.Unmarshal(newest); err != nil {
					t.Fatalf("newest %x: %v", newest, err)
				}
				if _, again := leg.DiscardQueued(); again != nil {
					t.Errorf("second DiscardQueued returned %x, want nothing", again)
				}
			} else {
				buf := make([]byte, maxPacket)
				n, err := leg.ReadRTP(buf)
				if err != nil {
					t.Fatal(err)
				}
				if err := got.Unmarshal(bytes.Clone(buf[:n])); err != nil {
					t.Fatal(err)
				}
				// Then the socket's packets, oldest first.
				if tc.queued > 0 && got.Payload[0] == 1 {
					if n, err = leg.ReadRTP(buf); err != nil || buf[n-1] != 100 {
						t.Errorf("second read %x, %v; want the oldest queued packet", buf[:n], err)
					}
				}
			}
			if !bytes.Equal(got.Payload, tc.want) {
				t.Errorf("first packet payload %x, want %x", got.Payload, tc.want)
			}
		})
	}
}

// TestBridgeForwardsTheFirstPacket connects a customer whose only packet so far
// was read before the hand-over: it reaches the agent at once, marked as the start
// of a new source.
func TestBridgeForwardsTheFirstPacket(t *testing.T) {
	agent := newPhone(t, PCMU)
	peer := listenUDP(t)
	leg := NewUDPLeg(listenUDP(t), peer.LocalAddr().(*net.UDPAddr), PCMU, WithFirstPacket(marshal(t, 9, payload(1, 160, 0))))
	b := startBridge(t, agent.leg, BridgeConfig{})
	if _, err := b.Connect(leg); err != nil {
		t.Fatal(err)
	}
	got := agent.recv(t, recvTimeout)
	if !bytes.Equal(got.Payload, payload(1, 160, 0)) || !got.Marker {
		t.Errorf("agent got marker %v payload %x…, want the first packet, marked", got.Marker, got.Payload[:4])
	}
}
