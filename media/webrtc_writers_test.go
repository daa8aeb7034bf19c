package media

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestWebRTCLegKeepsOneStreamAcrossWriters: on an SRTP track, a call's audio is
// written by the bridge and then, its agent gone, by the safe-harbour message,
// each numbering its packets from its own random start. The leg makes them one
// stream, so the receiver (pion's SRTP, as WhatsApp's) gets the second writer's
// packets too, whichever way its numbers jump.
func TestWebRTCLegKeepsOneStreamAcrossWriters(t *testing.T) {
	for _, tc := range []struct {
		name string
		jump uint16 // from the first writer's last number to the second's first
	}{
		{"second writer far ahead", 40000},
		{"second writer behind", 65536 - 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := opusSRTPPair(t)
			leg := NewWebRTCLeg(nil, local)
			var heardA, heardB atomic.Int32
			go func() {
				for {
					p, _, err := remote().ReadRTP()
					if err != nil {
						return
					}
					switch {
					case len(p.Payload) > 0 && p.Payload[0] == 0xA1:
						heardA.Add(1)
					case len(p.Payload) > 0 && p.Payload[0] == 0xB2:
						heardB.Add(1)
					}
				}
			}()
			write := func(ssrc uint32, seq uint16, ts uint32, mark byte, n int) {
				t.Helper()
				for i := range n {
					p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq + uint16(i),
						Timestamp: ts + uint32(i)*960, SSRC: ssrc}, Payload: []byte{mark, 0xFF, 0xFE}}
					b, err := p.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					if err := leg.WriteRTP(b); err != nil {
						t.Fatal(err)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			const n = 50
			write(0xAAAA, 1000, 5000, 0xA1, n)
			waitCount(t, &heardA, n*9/10, "the first writer's packets")
			write(0xBBBB, 1000+n+tc.jump, 777, 0xB2, n)
			waitCount(t, &heardB, n*9/10, "the second writer's packets")
		})
	}
}

// waitCount waits until c reaches at least want.
func waitCount(t *testing.T, c *atomic.Int32, want int, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); int(c.Load()) < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %s received, want at least %d", c.Load(), what, want)
		}
	}
}

// opusSRTPPair connects two pion peers on loopback, one sending an Opus track the
// other receives, and returns the sending track once the connection is up (no
// packet sent yet) and a function returning the receiving track once it surfaces.
func opusSRTPPair(t *testing.T) (*webrtc.TrackLocalStaticRTP, func() *webrtc.TrackRemote) {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me))
	newPC := func() *webrtc.PeerConnection {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		return pc
	}
	sender, receiver := newPC(), newPC()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "call")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	remotes := make(chan *webrtc.TrackRemote, 1)
	receiver.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { remotes <- tr })
	connected := make(chan struct{})
	var once atomic.Bool
	sender.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected && once.CompareAndSwap(false, true) {
			close(connected)
		}
	})
	offer, err := sender.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather := webrtc.GatheringCompletePromise(sender)
	if err := sender.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := receiver.SetRemoteDescription(*sender.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := receiver.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather = webrtc.GatheringCompletePromise(receiver)
	if err := receiver.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := sender.SetRemoteDescription(*receiver.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the pair never connected")
	}
	var tr *webrtc.TrackRemote
	return track, func() *webrtc.TrackRemote {
		if tr == nil {
			tr = <-remotes
		}
		return tr
	}
}
