package media

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/internal/webrtctest"
)

// answerBrowser answers b's offer with a server agent peer, closed at cleanup.
func answerBrowser(t *testing.T, ctx context.Context, b *webrtctest.Browser) *AgentPeer {
	t.Helper()
	peers, err := NewAgentPeers(ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	peer, answer, err := peers.Answer(ctx, b.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	b.Accept(t, answer)
	return peer
}

// rtpmaps returns the encodings an SDP's audio m-lines carry, one line each.
func rtpmaps(sdp string) []string {
	var out []string
	for _, m := range strings.Split(sdp, "m=audio")[1:] {
		var encs []string
		for _, line := range strings.Split(m, "\r\n") {
			if v, ok := strings.CutPrefix(line, "a=rtpmap:"); ok {
				encs = append(encs, v[strings.IndexByte(v, ' ')+1:])
			}
		}
		out = append(out, strings.Join(encs, ","))
	}
	return out
}

func TestAgentPeerCarriesAudioBothWays(t *testing.T) {
	b := webrtctest.NewSingleCodecBrowser(t)
	browser, mic, remote := b.PC, b.Mic, b.Speaker
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peer := answerBrowser(t, ctx, b)
	if got := rtpmaps(browser.RemoteDescription().SDP); len(got) != 1 || got[0] != "PCMU/8000" {
		t.Errorf("single-transceiver offer answered with %q, want PCMU alone", got)
	}

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
	legs, err := peer.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(legs) != 1 || legs[0].Codec().Name != "PCMU" {
		t.Fatalf("agent legs %v, want one PCMU", legs)
	}
	leg := legs[0]
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

// heardPackets collects what a browser hears, by MIME type of the track.
type heardPackets struct {
	mu   sync.Mutex
	by   map[string][]rtp.Packet
	more chan struct{} // signalled on every packet
}

func listenAll(ctx context.Context, b *webrtctest.Browser) *heardPackets {
	h := &heardPackets{by: map[string][]rtp.Packet{}, more: make(chan struct{}, 1)}
	b.Heard = func(mime string, p *rtp.Packet) {
		h.mu.Lock()
		h.by[mime] = append(h.by[mime], *p)
		h.mu.Unlock()
		select {
		case h.more <- struct{}{}:
		default:
		}
	}
	var packets, gaps atomic.Uint64
	go b.Listen(ctx, &packets, &gaps)
	return h
}

func (h *heardPackets) count(mime string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.by[mime])
}

// waitFor waits until the browser heard n packets on mime's track and returns them.
func (h *heardPackets) waitFor(t *testing.T, mime string, n int) []rtp.Packet {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		h.mu.Lock()
		got := h.by[mime]
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-h.more:
		case <-timeout.C:
			t.Fatalf("browser heard %d packets on its %s track, want %d", len(got), mime, n)
		}
	}
}

// TestAgentPeerBridgesEachCodecWithoutTranscoding: a browser offering two audio
// transceivers gets a PCMU path and an Opus path; a PCMU customer, then an Opus
// customer, then a PCMU one again are each bridged to the path of their codec,
// both ways, with payloads unchanged, and each path's stream to the browser stays
// one stream across the calls.
func TestAgentPeerBridgesEachCodecWithoutTranscoding(t *testing.T) {
	b := webrtctest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer := answerBrowser(t, ctx, b)
	if got := rtpmaps(b.PC.RemoteDescription().SDP); len(got) != 2 || got[0] != "PCMU/8000" || got[1] != "opus/48000/2" {
		t.Fatalf("two-transceiver offer answered with %q, want PCMU then Opus, alone each", got)
	}
	heard := listenAll(ctx, b)

	// The agent talks on both paths, as a browser does with one microphone on two
	// transceivers; the payloads say which path and frame they are.
	agentPCMU := func(i int) []byte { return append([]byte{0x5A}, payload(i, 159, 1)...) }
	agentOpus := func(i int) []byte { return append([]byte{0xF8, 0x5A}, payload(i, 38, 2)...) }
	// Whether p is one of the frames, byte for byte (frame i starts with byte(i)+base).
	isPCMU := func(p []byte) bool { return len(p) > 1 && bytes.Equal(p, agentPCMU(int(p[1]-1))) }
	isOpus := func(p []byte) bool { return len(p) > 2 && bytes.Equal(p, agentOpus(int(p[2]-2))) }
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			_ = b.Mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 0xa}, Payload: agentPCMU(i)})
			_ = b.OpusMic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960), SSRC: 0xb}, Payload: agentOpus(i)})
			<-tick.C
		}
	}()
	legs, err := peer.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(legs) != 2 || legs[0].Codec().Name != "PCMU" || legs[1].Codec().Name != "opus" {
		t.Fatalf("agent legs %v, want PCMU and Opus", legs)
	}
	bridge := NewBridgePaths(legs, BridgeConfig{AgentSilence: 5 * time.Second})
	done := make(chan error, 1)
	go func() { done <- bridge.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})

	sipOpus := Opus
	sipOpus.PayloadType = 107
	const n = 20
	for callNo, tc := range []struct {
		codec     Codec
		mime      string
		other     string
		custFrame func(i int) []byte
		fromAgent func(p []byte) bool
	}{
		{PCMU, webrtc.MimeTypePCMU, webrtc.MimeTypeOpus, func(i int) []byte { return payload(i, 160, 0x10) }, isPCMU},
		{sipOpus, webrtc.MimeTypeOpus, webrtc.MimeTypePCMU, func(i int) []byte { return append([]byte{0xF8}, payload(i, 60, 0x20)...) }, isOpus},
		{PCMU, webrtc.MimeTypePCMU, webrtc.MimeTypeOpus, func(i int) []byte { return payload(i, 160, 0x30) }, isPCMU},
	} {
		cust := newPhone(t, tc.codec)
		call, err := bridge.Connect(cust.leg)
		if err != nil {
			t.Fatal(err)
		}
		before, otherBefore := heard.count(tc.mime), heard.count(tc.other)
		// Customer → agent: on the path of the customer's codec, byte for byte.
		for i := range n {
			cust.send(t, tc.codec.PayloadType, i == 0, tc.custFrame(i))
			got := heard.waitFor(t, tc.mime, before+i+1)[before+i]
			if !bytes.Equal(got.Payload, tc.custFrame(i)) {
				t.Fatalf("call %d: browser's %s packet %d: % x…, want % x…", callNo, tc.mime, i, got.Payload[:4], tc.custFrame(i)[:4])
			}
		}
		if got := heard.count(tc.other); got != otherBefore {
			t.Errorf("call %d: %d packets on the browser's %s track, want none", callNo, got-otherBefore, tc.other)
		}
		// Agent → customer: from the path of the customer's codec, byte for byte.
		for i := 0; i < n; i++ {
			got := cust.recv(t, recvTimeout)
			if got.PayloadType != tc.codec.PayloadType || !tc.fromAgent(got.Payload) {
				t.Fatalf("call %d: customer got pt %d payload % x… (%d bytes), not what the agent sent on its %s path",
					callNo, got.PayloadType, got.Payload[:min(3, len(got.Payload))], len(got.Payload), tc.mime)
			}
		}
		if st := call.Stats(); st.ToAgent.Packets != n || st.ToAgent.Dropped != 0 {
			t.Errorf("call %d: to agent %+v", callNo, st.ToAgent)
		}
		bridge.Disconnect()
	}

	// Each path to the browser is one stream: one SSRC, sequence numbers +1, across
	// the two PCMU calls with the Opus call in between.
	pcmu := heard.waitFor(t, webrtc.MimeTypePCMU, 2*n)
	for i := 1; i < len(pcmu); i++ {
		if pcmu[i].SSRC != pcmu[0].SSRC || pcmu[i].SequenceNumber != pcmu[i-1].SequenceNumber+1 {
			t.Fatalf("PCMU path packet %d: ssrc %x seq %d after %d", i, pcmu[i].SSRC, pcmu[i].SequenceNumber, pcmu[i-1].SequenceNumber)
		}
	}
}

// TestAgentPeerMicOnOnePathAtATime: a browser sends its microphone on one path
// at a time, at first the PCMU one. Both paths are legs all the same, a PCMU
// customer is on path 0 and an Opus one on path 1 (Call.Path), the Opus
// customer hears the agent once the browser moves its microphone there, and the
// bridge's silence watchdog takes neither a quiet Opus path (before) nor a quiet
// PCMU path (a long WhatsApp call, and after it) for an agent gone.
func TestAgentPeerMicOnOnePathAtATime(t *testing.T) {
	b := webrtctest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer := answerBrowser(t, ctx, b)
	var onOpus atomic.Bool // which path the microphone is on
	agentOpus := func(i int) []byte { return append([]byte{0xF8, 0x5A}, payload(i, 38, 2)...) }
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			if onOpus.Load() {
				_ = b.OpusMic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960), SSRC: 0xb}, Payload: agentOpus(i)})
			} else {
				_ = b.Mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 0xa}, Payload: make([]byte, 160)})
			}
			<-tick.C
		}
	}()
	legs, err := peer.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(legs) != 2 || legs[0].Codec().Name != "PCMU" || legs[1].Codec().Name != "opus" {
		t.Fatalf("agent legs %v, want PCMU and Opus though the browser sends on PCMU alone", legs)
	}
	if pt := legs[1].Codec().PayloadType; pt != 111 {
		t.Errorf("the quiet Opus path takes payload type %d, want the offer's 111", pt)
	}
	const silence = 300 * time.Millisecond
	bridge := NewBridgePaths(legs, BridgeConfig{AgentSilence: silence})
	done := make(chan error, 1)
	go func() { done <- bridge.Run(ctx) }()
	running := func(when string) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("%s: the bridge ended: %v", when, err)
		case <-time.After(5 * silence):
		}
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})
	running("the microphone on the PCMU path, no call")

	sip := newPhone(t, PCMU)
	call, err := bridge.Connect(sip.leg)
	if err != nil {
		t.Fatal(err)
	}
	if call.Path() != 0 {
		t.Errorf("a PCMU customer is on path %d, want 0", call.Path())
	}
	sip.recv(t, recvTimeout) // the agent, on the path the microphone is on
	bridge.Disconnect()

	wa := newPhone(t, Opus)
	call, err = bridge.Connect(wa.leg)
	if err != nil {
		t.Fatal(err)
	}
	if call.Path() != 1 {
		t.Errorf("an Opus customer is on path %d, want 1", call.Path())
	}
	// Told the path, the browser moves its microphone there: the customer hears
	// the agent untranscoded.
	onOpus.Store(true)
	for range 10 {
		got := wa.recv(t, recvTimeout)
		if len(got.Payload) < 3 || !bytes.Equal(got.Payload, agentOpus(int(got.Payload[2]-2))) {
			t.Fatalf("the Opus customer got % x…, not the agent's Opus", got.Payload[:min(3, len(got.Payload))])
		}
	}
	running("a long WhatsApp call, the PCMU path quiet")
	if st := call.Stats(); st.ToCustomer.Packets < 50 {
		t.Errorf("to the customer %+v, want the agent's packets all along", st.ToCustomer)
	}
	bridge.Disconnect()
	running("after the call, the microphone left on the Opus path")
}

// TestAgentPeerSingleCodecTranscodesOpus: an agent page offering one transceiver
// gets PCMU alone, and an Opus customer is transcoded to it, both ways.
func TestAgentPeerSingleCodecTranscodesOpus(t *testing.T) {
	if !OpusAvailable {
		if testenv.InCI() {
			t.Fatal("built without the opus tag: make test builds with it")
		}
		t.Skip("built without the opus tag")
	}
	b := webrtctest.NewSingleCodecBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer := answerBrowser(t, ctx, b)
	heard := listenAll(ctx, b)
	go b.Talk(ctx, nil)
	legs, err := peer.Legs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(legs) != 1 {
		t.Fatalf("%d agent legs, want 1", len(legs))
	}
	bridge := startBridge(t, legs[0], BridgeConfig{})
	cust := newPhone(t, Opus)
	if _, err := bridge.Connect(cust.leg); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		cust.send(t, Opus.PayloadType, false, webrtctest.OpusSilence)
		if got := heard.waitFor(t, webrtc.MimeTypePCMU, i+1)[i]; len(got.Payload) != 160 {
			t.Fatalf("browser packet %d: %d bytes, want 160 of PCMU", i, len(got.Payload))
		}
	}
	for i := range n {
		got := cust.recv(t, recvTimeout)
		if got.PayloadType != Opus.PayloadType || len(got.Payload) == 0 || len(got.Payload) == 160 {
			t.Fatalf("customer packet %d: pt %d, %d bytes, want Opus", i, got.PayloadType, len(got.Payload))
		}
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
	b := webrtctest.NewSingleCodecBrowser(t)
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

// TestPathCodecs: which codec each audio m-line of an offer is answered with.
func TestPathCodecs(t *testing.T) {
	mline := func(rtpmaps ...string) string {
		s := "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
		for _, r := range rtpmaps {
			s += "a=rtpmap:" + r + "\r\n"
		}
		return s
	}
	const (
		pcmu = "0 PCMU/8000"
		pcma = "8 PCMA/8000"
		opus = "111 opus/48000/2"
		g729 = "18 G729/8000"
	)
	for _, tc := range []struct {
		name   string
		mlines []string
		want   string
	}{
		{"two transceivers offering everything", []string{mline(opus, pcmu, pcma), mline(opus, pcmu, pcma)}, "audio/PCMU audio/opus"},
		{"codec preferences set", []string{mline(pcmu), mline(opus)}, "audio/PCMU audio/opus"},
		{"Opus first", []string{mline(opus), mline(pcmu)}, "audio/opus audio/PCMU"},
		{"A-law only", []string{mline(pcma), mline(opus)}, "audio/PCMA audio/opus"},
		{"one transceiver", []string{mline(opus, pcmu)}, "audio/PCMU"},
		{"one Opus transceiver", []string{mline(opus)}, "audio/opus"},
		{"two without Opus", []string{mline(pcmu), mline(pcmu)}, "audio/PCMU"},
		{"nothing Turbina speaks first", []string{mline(g729), mline(pcmu)}, ""},
	} {
		offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + strings.Join(tc.mlines, "")
		got, err := pathCodecs(offer)
		if tc.want == "" {
			if !errors.Is(err, ErrNoAudioOffer) {
				t.Errorf("%s: %v, %v, want ErrNoAudioOffer", tc.name, got, err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %v, %v, want %s", tc.name, got, err, tc.want)
		}
	}
}
