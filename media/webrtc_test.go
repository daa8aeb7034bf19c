package media

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// webrtcPair connects two pion peers on loopback: "browser" offers a PCMU and an
// Opus track; "server" answers with its own PCMU and Opus tracks. It returns the
// tracks by MIME type once media flows.
type webrtcPair struct {
	browserLocal  map[string]*webrtc.TrackLocalStaticRTP
	serverLocal   map[string]*webrtc.TrackLocalStaticRTP
	serverRemote  map[string]*webrtc.TrackRemote
	browserRemote map[string]*webrtc.TrackRemote
}

func newWebRTCPair(t *testing.T) *webrtcPair {
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
	browser, server := newPC(), newPC()
	p := &webrtcPair{
		browserLocal: map[string]*webrtc.TrackLocalStaticRTP{}, serverLocal: map[string]*webrtc.TrackLocalStaticRTP{},
		serverRemote: map[string]*webrtc.TrackRemote{}, browserRemote: map[string]*webrtc.TrackRemote{},
	}
	caps := map[string]webrtc.RTPCodecCapability{
		webrtc.MimeTypePCMU: {MimeType: webrtc.MimeTypePCMU, ClockRate: 8000},
		webrtc.MimeTypeOpus: {MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	}
	var mu sync.Mutex
	got := make(chan struct{}, 4)
	onTrack := func(m map[string]*webrtc.TrackRemote) func(*webrtc.TrackRemote, *webrtc.RTPReceiver) {
		return func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			mu.Lock()
			m[tr.Codec().MimeType] = tr
			mu.Unlock()
			got <- struct{}{}
		}
	}
	browser.OnTrack(onTrack(p.browserRemote))
	server.OnTrack(onTrack(p.serverRemote))
	for _, mime := range []string{webrtc.MimeTypePCMU, webrtc.MimeTypeOpus} {
		tr, err := webrtc.NewTrackLocalStaticRTP(caps[mime], "b-"+mime, "browser")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := browser.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
		p.browserLocal[mime] = tr
	}
	offer, err := browser.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather := webrtc.GatheringCompletePromise(browser)
	if err := browser.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := server.SetRemoteDescription(*browser.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	for _, mime := range []string{webrtc.MimeTypePCMU, webrtc.MimeTypeOpus} {
		tr, err := webrtc.NewTrackLocalStaticRTP(caps[mime], "s-"+mime, "server")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
		p.serverLocal[mime] = tr
	}
	answer, err := server.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather = webrtc.GatheringCompletePromise(server)
	if err := server.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := browser.SetRemoteDescription(*server.LocalDescription()); err != nil {
		t.Fatal(err)
	}

	// Tracks surface with their first packet: prime all four directions.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prime := func(tr *webrtc.TrackLocalStaticRTP) {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: 1}, Payload: []byte{0xFF}}
		_ = tr.WriteRTP(&pkt)
	}
	for n := 0; n < 4; {
		for _, m := range []map[string]*webrtc.TrackLocalStaticRTP{p.browserLocal, p.serverLocal} {
			for _, tr := range m {
				prime(tr)
			}
		}
		select {
		case <-got:
			n++
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("WebRTC tracks did not come up")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return p
}

// drain reads a track until ctx ends, sending the packets whose payload starts
// with marker to out.
func drain(ctx context.Context, tr *webrtc.TrackRemote, marker byte, out chan<- rtp.Packet) {
	go func() { <-ctx.Done(); _ = tr.SetReadDeadline(time.Now()) }()
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if len(pkt.Payload) > 0 && pkt.Payload[0] == marker {
			select {
			case out <- *pkt:
			case <-ctx.Done():
				return
			}
		}
	}
}

// TestWebRTCLeg relays between a UDP (SIP) customer leg and a WebRTC agent leg,
// both ways, for PCMU and for Opus (forwarded, with the payload type mapped from
// the SIP side's 107 to the WebRTC side's).
func TestWebRTCLeg(t *testing.T) {
	p := newWebRTCPair(t)
	sipOpus := Opus
	sipOpus.PayloadType = 107
	for _, tc := range []struct {
		mime  string
		codec Codec
	}{
		{webrtc.MimeTypePCMU, PCMU},
		{webrtc.MimeTypeOpus, sipOpus},
	} {
		t.Run(tc.codec.Name, func(t *testing.T) {
			agentLeg := NewWebRTCLeg(p.serverRemote[tc.mime], p.serverLocal[tc.mime])
			if !agentLeg.Codec().SameFormat(tc.codec) {
				t.Fatalf("WebRTC leg codec %v", agentLeg.Codec())
			}
			ctx, cancel := context.WithCancel(context.Background())
			b := NewBridge(agentLeg, BridgeConfig{})
			done := make(chan error, 1)
			go func() { done <- b.Run(ctx) }()
			defer func() {
				cancel()
				<-done
				_ = agentLeg.SetReadDeadline(time.Time{})
			}()
			cust := newPhone(t, tc.codec)
			call, err := b.Connect(cust.leg)
			if err != nil {
				t.Fatal(err)
			}
			atBrowser := make(chan rtp.Packet, 64)
			dctx, dcancel := context.WithCancel(ctx)
			defer dcancel()
			go drain(dctx, p.browserRemote[tc.mime], 0xA5, atBrowser)

			// Customer → agent (browser).
			for i := range 10 {
				cust.send(t, tc.codec.PayloadType, false, append([]byte{0xA5}, payload(i, 80, 0)...))
				select {
				case got := <-atBrowser:
					if !bytes.Equal(got.Payload[1:], payload(i, 80, 0)) {
						t.Fatalf("browser packet %d payload differs", i)
					}
				case <-time.After(recvTimeout):
					t.Fatalf("browser packet %d not received", i)
				}
			}
			// Agent (browser) → customer: the browser keeps sending until the
			// customer has them all (the first may race the bridge's reader).
			var seen int
			for i := 0; seen < 10 && i < 200; i++ {
				pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 42, SequenceNumber: uint16(i), Timestamp: uint32(i) * 160}, Payload: append([]byte{0x5A}, payload(i, 80, 1)...)}
				if err := p.browserLocal[tc.mime].WriteRTP(&pkt); err != nil {
					t.Fatal(err)
				}
				got, err := cust.tryRecv(100 * time.Millisecond)
				if err != nil {
					continue
				}
				if len(got.Payload) > 0 && got.Payload[0] == 0xFF {
					continue // a priming packet still queued
				}
				if got.PayloadType != tc.codec.PayloadType || got.Payload[0] != 0x5A {
					t.Fatalf("customer got pt %d payload %x…", got.PayloadType, got.Payload[:2])
				}
				seen++
			}
			if seen < 10 {
				t.Fatalf("customer received %d packets from the browser", seen)
			}
			// The counter is bumped just after the write the customer may already have read.
			if st := call.Stats(); st.ToAgent.Packets < 9 || st.ToCustomer.Packets < 9 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
