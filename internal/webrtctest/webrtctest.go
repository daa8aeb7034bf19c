// Package webrtctest gives tests a pion peer that behaves like a browser agent's
// softphone: one sendrecv audio transceiver, ICE on loopback, gathered before the
// offer is sent (Turbina's signalling does not trickle).
package webrtctest

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Browser is a pion peer playing a browser softphone.
type Browser struct {
	PC *webrtc.PeerConnection
	// Mic is what the "microphone" sends.
	Mic *webrtc.TrackLocalStaticRTP
	// Speaker delivers the track the server sends, once it arrives.
	Speaker chan *webrtc.TrackRemote
}

// NewBrowser returns a peer with a PCMU microphone track, closed at cleanup.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "mic", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(mic); err != nil {
		t.Fatal(err)
	}
	b := &Browser{PC: pc, Mic: mic, Speaker: make(chan *webrtc.TrackRemote, 1)}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { b.Speaker <- tr })
	return b
}

// Offer creates the offer and waits for ICE gathering, returning the full SDP.
func (b *Browser) Offer(t testing.TB) string {
	t.Helper()
	offer, err := b.PC.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(b.PC)
	if err := b.PC.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return b.PC.LocalDescription().SDP
}

// Accept applies the server's answer.
func (b *Browser) Accept(t testing.TB, answer string) {
	t.Helper()
	if err := b.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

// Talk sends 20 ms PCMU frames from the microphone until ctx ends, counting them.
func (b *Browser) Talk(ctx context.Context, sent *atomic.Uint64) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 0xb0b}, Payload: make([]byte, 160)}
		if b.Mic.WriteRTP(pkt) == nil && sent != nil {
			sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Listen reads the speaker track until ctx ends or it fails, counting packets and
// sequence gaps (a gap is any step other than +1).
func (b *Browser) Listen(ctx context.Context, packets, gaps *atomic.Uint64) {
	var tr *webrtc.TrackRemote
	select {
	case tr = <-b.Speaker:
	case <-ctx.Done():
		return
	}
	var last uint16
	for first := true; ctx.Err() == nil; first = false {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if !first && p.SequenceNumber != last+1 {
			gaps.Add(1)
		}
		last = p.SequenceNumber
		packets.Add(1)
	}
}
