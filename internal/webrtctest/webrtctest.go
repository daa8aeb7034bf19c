// Package webrtctest gives tests a pion peer that behaves like a browser agent's
// softphone: two sendrecv audio transceivers, PCMU and Opus, as the agent page
// offers them (or one PCMU transceiver, as older pages did), ICE on loopback,
// gathered before the offer is sent (Turbina's signalling does not trickle).
package webrtctest

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// OpusSilence is the Opus frame the browser's Opus microphone sends: TOC 0xF8
// (CELT fullband, 20 ms, one frame) and the two-byte silence payload. pion has no
// Opus encoder, and the bridge forwards Opus without decoding it.
var OpusSilence = []byte{0xF8, 0xFF, 0xFE}

// Browser is a pion peer playing a browser softphone.
type Browser struct {
	PC *webrtc.PeerConnection
	// Mic is what the "microphone" sends as PCMU; OpusMic sends it as Opus on
	// the second transceiver, nil on a single-codec browser.
	Mic, OpusMic *webrtc.TrackLocalStaticRTP
	// Speaker delivers the tracks the server sends as they arrive, one per path.
	Speaker chan *webrtc.TrackRemote
	// Heard, if set before Listen, is called with every packet heard and the
	// MIME type of its track, from one goroutine per track.
	Heard func(mime string, p *rtp.Packet)
}

// NewBrowser returns a peer offering a PCMU and an Opus audio transceiver, both
// sendrecv with a microphone track, like the agent page; closed at cleanup.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	return newBrowser(t, true)
}

// NewSingleCodecBrowser returns a peer offering one audio transceiver with a
// PCMU microphone, like agent pages before the Opus path; closed at cleanup.
func NewSingleCodecBrowser(t testing.TB) *Browser {
	t.Helper()
	return newBrowser(t, false)
}

func newBrowser(t testing.TB, opus bool) *Browser {
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
	b := &Browser{PC: pc, Speaker: make(chan *webrtc.TrackRemote, 2)}
	// Each transceiver offers every codec, as a browser without
	// setCodecPreferences does: the server picks one per path.
	if b.Mic, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "mic-pcmu", "browser"); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(b.Mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	if opus {
		if b.OpusMic, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic-opus", "browser"); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(b.OpusMic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
			t.Fatal(err)
		}
	}
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

// Talk sends 20 ms frames from the microphones until ctx ends: PCMU on the first
// path, counted in sent, and Opus silence on the second if there is one.
func (b *Browser) Talk(ctx context.Context, sent *atomic.Uint64) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 0xb0b}, Payload: make([]byte, 160)}
		if b.Mic.WriteRTP(pkt) == nil && sent != nil {
			sent.Add(1)
		}
		if b.OpusMic != nil {
			_ = b.OpusMic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960), SSRC: 0x0b05}, Payload: OpusSilence})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Listen reads every track the server sends (one per path) until ctx ends or
// they fail, counting packets and sequence gaps (a gap is any step other than +1
// within a track) over all of them.
func (b *Browser) Listen(ctx context.Context, packets, gaps *atomic.Uint64) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var tr *webrtc.TrackRemote
		select {
		case tr = <-b.Speaker:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.listen(ctx, tr, packets, gaps)
		}()
	}
}

func (b *Browser) listen(ctx context.Context, tr *webrtc.TrackRemote, packets, gaps *atomic.Uint64) {
	stop := context.AfterFunc(ctx, func() { _ = tr.SetReadDeadline(time.Now()) })
	defer stop()
	mime := tr.Codec().MimeType
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
		if b.Heard != nil {
			b.Heard(mime, p)
		}
	}
}
