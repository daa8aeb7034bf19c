package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// ICEConfig is where Turbina's WebRTC peers (browser agents, WhatsApp calls) gather
// ICE candidates.
type ICEConfig struct {
	// LoopbackOnly gathers host candidates on 127.0.0.1 over UDP only: tests and the
	// demo, where nothing may leave the machine.
	LoopbackOnly bool `json:"loopback_only,omitempty"`
	// PublicIPs are advertised instead of the host addresses (1:1 NAT).
	PublicIPs []string `json:"public_ips,omitempty"`
	// UDPPortMin and UDPPortMax restrict the media ports (firewall rules); 0 = any.
	UDPPortMin uint16 `json:"udp_port_min,omitempty"`
	UDPPortMax uint16 `json:"udp_port_max,omitempty"`
	// GatherTimeout bounds ICE gathering (default 5 s): answers carry every
	// candidate because Turbina's signalling does not trickle ICE.
	GatherTimeout time.Duration `json:"-"`
}

// SettingEngine returns pion settings that apply c.
func (c ICEConfig) SettingEngine() (webrtc.SettingEngine, error) {
	se := webrtc.SettingEngine{}
	// mDNS candidates (.local names) need multicast, which servers rarely have.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if c.LoopbackOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
		se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if len(c.PublicIPs) > 0 {
		// 1:1 NAT: the public addresses are advertised in place of the host ones.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: c.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace}); err != nil {
			return se, fmt.Errorf("ice public addresses: %w", err)
		}
	}
	if c.UDPPortMin != 0 || c.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(c.UDPPortMin, c.UDPPortMax); err != nil {
			return se, fmt.Errorf("ice port range: %w", err)
		}
	}
	return se, nil
}

func (c ICEConfig) gatherTimeout() time.Duration {
	if c.GatherTimeout <= 0 {
		return 5 * time.Second
	}
	return c.GatherTimeout
}

// AgentPeers answers browser agents' WebRTC offers with the server side of their
// nailed-up media leg. It prefers PCMU, which a SIP customer leg can be bridged to
// without transcoding, and accepts Opus.
type AgentPeers struct {
	api *webrtc.API
	ice ICEConfig
}

// NewAgentPeers returns an AgentPeers gathering candidates as cfg says.
func NewAgentPeers(cfg ICEConfig) (*AgentPeers, error) { return newAgentPeers(cfg) }

// newAgentPeers is NewAgentPeers with interceptors added after pion's defaults
// (tests watch the RTCP the peers read).
func newAgentPeers(cfg ICEConfig, extra ...interceptor.Factory) (*AgentPeers, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("agent peers: register %s: %w", c.MimeType, err)
		}
	}
	se, err := cfg.SettingEngine()
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("agent peers: interceptors: %w", err)
	}
	for _, f := range extra {
		ir.Add(f)
	}
	return &AgentPeers{api: webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), ice: cfg}, nil
}

// agentPayloadType are the payload types the agent peers register their codecs with.
var agentPayloadType = map[string]webrtc.PayloadType{webrtc.MimeTypePCMU: 0, webrtc.MimeTypePCMA: 8, webrtc.MimeTypeOpus: 111}

// AgentPeer is the server side of one agent's WebRTC session.
type AgentPeer struct {
	pc    *webrtc.PeerConnection
	local *webrtc.TrackLocalStaticRTP

	legOnce sync.Once
	leg     chan *WebRTCLeg
	done    chan struct{}
	close   sync.Once
}

// ErrNoAudioOffer means the browser's offer has no audio codec Turbina speaks.
var ErrNoAudioOffer = errors.New("agent peer: offer has no PCMU, PCMA or Opus audio")

// Answer accepts a browser's SDP offer (ICE gathered, not trickled) and returns the
// peer and the SDP answer with every candidate in it.
func (a *AgentPeers) Answer(ctx context.Context, offer string) (*AgentPeer, string, error) {
	mime, ok := preferredMime(offer)
	if !ok {
		return nil, "", ErrNoAudioOffer
	}
	pc, err := a.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("agent peer: %w", err)
	}
	p := &AgentPeer{pc: pc, leg: make(chan *WebRTCLeg, 1), done: make(chan struct{})}
	fail := func(err error) (*AgentPeer, string, error) {
		p.Close()
		return nil, "", err
	}
	capability := webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 8000}
	if mime == webrtc.MimeTypeOpus {
		capability = webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	}
	if p.local, err = webrtc.NewTrackLocalStaticRTP(capability, "audio", "turbina"); err != nil {
		return fail(fmt.Errorf("agent peer: local track: %w", err))
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		go DiscardRTCP(receiver) // the session lasts hours: its RTCP must not pile up
		p.legOnce.Do(func() { p.leg <- NewWebRTCLeg(remote, p.local) })
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			p.Close()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("agent peer: offer: %w", err))
	}
	// Added after the offer, the track takes over the browser's audio transceiver,
	// which then answers sendrecv.
	sender, err := pc.AddTrack(p.local)
	if err != nil {
		return fail(fmt.Errorf("agent peer: add track: %w", err))
	}
	go DiscardRTCP(sender)
	// Answer with the chosen codec alone: the browser then sends it too, and a
	// PCMU customer is forwarded to the agent without transcoding.
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() != webrtc.RTPCodecTypeAudio {
			continue
		}
		if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{{RTPCodecCapability: capability, PayloadType: agentPayloadType[mime]}}); err != nil {
			return fail(fmt.Errorf("agent peer: codec: %w", err))
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("agent peer: answer: %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("agent peer: set answer: %w", err))
	}
	timer := time.NewTimer(a.ice.gatherTimeout())
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C:
		return fail(errors.New("agent peer: ICE gathering did not complete"))
	case <-ctx.Done():
		return fail(fmt.Errorf("agent peer: %w", ctx.Err()))
	}
	return p, pc.LocalDescription().SDP, nil
}

// preferredMime picks the codec for the agent leg from an offer: PCMU first.
func preferredMime(offer string) (string, bool) {
	lower := strings.ToLower(offer)
	for _, c := range []struct{ rtpmap, mime string }{
		{" pcmu/8000", webrtc.MimeTypePCMU},
		{" pcma/8000", webrtc.MimeTypePCMA},
		{" opus/48000", webrtc.MimeTypeOpus},
	} {
		if strings.Contains(lower, c.rtpmap) {
			return c.mime, true
		}
	}
	return "", false
}

// Leg waits for the browser's audio to arrive and returns the leg to bridge.
func (p *AgentPeer) Leg(ctx context.Context) (*WebRTCLeg, error) {
	select {
	case l := <-p.leg:
		p.leg <- l // keep it for the next caller
		return l, nil
	case <-p.done:
		return nil, errors.New("agent peer closed before its audio arrived")
	case <-ctx.Done():
		return nil, fmt.Errorf("agent peer: waiting for audio: %w", ctx.Err())
	}
}

// Done is closed when the session ends (closed, or its connection failed).
func (p *AgentPeer) Done() <-chan struct{} { return p.done }

// Close ends the session.
func (p *AgentPeer) Close() error {
	var err error
	p.close.Do(func() {
		close(p.done)
		err = p.pc.Close()
	})
	return err
}
