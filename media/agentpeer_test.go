package media

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/internal/webrtctest"
)

func TestAgentPeerCarriesAudioBothWays(t *testing.T) {
	peers, err := NewAgentPeers(ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	b := webrtctest.NewBrowser(t)
	browser, mic, remote := b.PC, b.Mic, b.Speaker
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peer, answer, err := peers.Answer(ctx, b.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	b.Accept(t, answer)

	// Browser to server: the microphone's packets come out of the agent leg.
	go func() {
		for i := range 200 {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 1}, Payload: make([]byte, 160)}
			if mic.WriteRTP(pkt) != nil || ctx.Err() != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	leg, err := peer.Leg(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := leg.Codec(); c.Name != "PCMU" {
		t.Errorf("agent leg codec %v, want PCMU", c)
	}
	buf := make([]byte, 1500)
	for range 5 {
		leg.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := leg.ReadRTP(buf); err != nil {
			t.Fatalf("read from browser: %v", err)
		}
	}
	// Server to browser: what the bridge writes reaches the browser's speaker track.
	go func() {
		for i := range 200 {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 7}, Payload: make([]byte, 160)}
			b, _ := pkt.Marshal()
			if leg.WriteRTP(b) != nil || ctx.Err() != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var speaker *webrtc.TrackRemote
	select {
	case speaker = <-remote:
	case <-ctx.Done():
		t.Fatal("no audio from the server")
	}
	for range 5 {
		if _, _, err := speaker.ReadRTP(); err != nil {
			t.Fatalf("read at browser: %v", err)
		}
	}
	browser.Close()
	select {
	case <-peer.Done():
	case <-time.After(40 * time.Second):
		t.Error("server peer did not notice the browser leaving")
	}
}

func TestAgentPeerRefusesOffersWithoutAudioItSpeaks(t *testing.T) {
	peers, err := NewAgentPeers(ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 18\r\na=rtpmap:18 G729/8000\r\n"
	if _, _, err := peers.Answer(context.Background(), offer); err != ErrNoAudioOffer {
		t.Fatalf("G.729-only offer: %v", err)
	}
	if _, _, err := peers.Answer(context.Background(), "not sdp pcmu/8000"); err == nil {
		t.Fatal("garbage offer accepted")
	}
}

// TestAgentPeerAdvertisesPublicAddresses: behind a 1:1 NAT the answer's host
// candidates carry the public address instead of the machine's own.
func TestAgentPeerAdvertisesPublicAddresses(t *testing.T) {
	peers, err := NewAgentPeers(ICEConfig{LoopbackOnly: true, PublicIPs: []string{"203.0.113.7"}})
	if err != nil {
		t.Fatal(err)
	}
	b := webrtctest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peer, answer, err := peers.Answer(ctx, b.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	if !strings.Contains(answer, " 203.0.113.7 ") || strings.Contains(answer, " 127.0.0.1 ") {
		t.Errorf("answer candidates, want 203.0.113.7 only:\n%s", answer)
	}
}
