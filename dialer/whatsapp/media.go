package whatsapp

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/media"
)

// OpusCodec is the only codec of a WhatsApp call leg: Opus at 48 kHz, as WhatsApp
// negotiates it.
var OpusCodec = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeOpus,
	ClockRate:   48000,
	Channels:    2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// OpusPayloadType is the RTP payload type offered for Opus.
const OpusPayloadType = 111

// MediaConfig configures the WebRTC side of call legs.
type MediaConfig struct {
	// LoopbackOnly gathers host candidates on 127.0.0.1 over UDP only: tests and the
	// emulator, where nothing may leave the machine.
	LoopbackOnly bool `json:"loopback_only"`
	// PublicIPs are advertised instead of the host addresses (1:1 NAT), for a server
	// behind a cloud NAT.
	PublicIPs []string `json:"public_ips"`
	// UDPPortMin and UDPPortMax restrict the media ports (firewall rules); 0 = any.
	UDPPortMin uint16 `json:"udp_port_min"`
	UDPPortMax uint16 `json:"udp_port_max"`
	// STUNURLs gather server-reflexive candidates ("stun:stun.l.google.com:19302").
	STUNURLs []string `json:"stun_urls"`
	// GatherTimeout bounds ICE gathering; the offer is sent only once gathering is
	// complete because the Calls API does not trickle ICE. Default 5 s.
	GatherTimeout time.Duration `json:"gather_timeout"`
}

// Media builds pion peer connections for call legs. One Media is shared by all calls
// of a client.
type Media struct {
	cfg MediaConfig
	api *webrtc.API
}

// NewMedia returns a Media with an Opus-only media engine and cfg's ICE settings.
func NewMedia(cfg MediaConfig) (*Media, error) {
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 5 * time.Second
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: OpusCodec, PayloadType: OpusPayloadType}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("whatsapp media: register opus: %w", err)
	}
	// The same ICE settings as the agents' peers; mDNS candidates (.local names)
	// would mean nothing to Meta's media servers, and are off there too.
	se, err := media.ICEConfig{LoopbackOnly: cfg.LoopbackOnly, PublicIPs: cfg.PublicIPs,
		UDPPortMin: cfg.UDPPortMin, UDPPortMax: cfg.UDPPortMax}.SettingEngine()
	if err != nil {
		return nil, fmt.Errorf("whatsapp media: %w", err)
	}
	return &Media{cfg: cfg, api: webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))}, nil
}

// API returns the pion API, for callers that build their own peer connections with
// the same settings (the emulator's user peer).
func (m *Media) API() *webrtc.API { return m.api }

// NewPeerConnection returns a peer connection with one send-receive Opus transceiver
// fed by the returned local track.
func (m *Media) NewPeerConnection() (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP, error) {
	var ice []webrtc.ICEServer
	if len(m.cfg.STUNURLs) > 0 {
		ice = []webrtc.ICEServer{{URLs: m.cfg.STUNURLs}}
	}
	pc, err := m.api.NewPeerConnection(webrtc.Configuration{ICEServers: ice, BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		return nil, nil, fmt.Errorf("whatsapp media: new peer connection: %w", err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(OpusCodec, "audio", "turbina")
	if err != nil {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("whatsapp media: local track: %w", err)
	}
	tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("whatsapp media: add transceiver: %w", err)
	}
	// The peer's reports and feedback on our audio would otherwise stay queued
	// in pion until the call ends; the caller drains the receiver's in OnTrack.
	go media.DiscardRTCP(tr.Sender())
	return pc, track, nil
}

// SetLocalAndGather sets desc as the local description and waits for ICE gathering to
// complete, returning the local description with every candidate in it.
func (m *Media) SetLocalAndGather(ctx context.Context, pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("whatsapp media: set local description: %w", err)
	}
	t := time.NewTimer(m.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return "", fmt.Errorf("whatsapp media: ICE gathering not complete after %s", m.cfg.GatherTimeout)
	case <-ctx.Done():
		return "", fmt.Errorf("whatsapp media: ICE gathering: %w", ctx.Err())
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", fmt.Errorf("whatsapp media: no local description after gathering")
	}
	return ld.SDP, nil
}
