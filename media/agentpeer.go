package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
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
// nailed-up media session. A browser that offers two audio transceivers gets one
// answered with G.711 (PCMU preferred) and the other with Opus, so that SIP and
// WhatsApp customers alike reach it without transcoding; an offer with a single
// audio transceiver is answered with one codec, PCMU preferred, and customers of
// another codec are transcoded.
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
	for _, mime := range []string{webrtc.MimeTypePCMU, webrtc.MimeTypePCMA, webrtc.MimeTypeOpus} {
		if err := me.RegisterCodec(agentCodec(mime), webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("agent peers: register %s: %w", mime, err)
		}
	}
	se, err := cfg.SettingEngine()
	if err != nil {
		return nil, err
	}
	// A browser sends its microphone on one path at a time (the one carrying the
	// call): the paths it is quiet on must still be legs, ready for the moment it
	// moves there. Their tracks are announced by the SSRCs of the offer, not by a
	// first packet.
	se.SetFireOnTrackBeforeFirstRTP(true)
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("agent peers: interceptors: %w", err)
	}
	for _, f := range extra {
		ir.Add(f)
	}
	return &AgentPeers{api: webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), ice: cfg}, nil
}

// agentCodec returns the parameters the agent peers register mime with.
func agentCodec(mime string) webrtc.RTPCodecParameters {
	switch mime {
	case webrtc.MimeTypePCMA:
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 8000}, PayloadType: 8}
	case webrtc.MimeTypeOpus:
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}
	}
	return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}
}

// pathGrace is how long an agent session waits, once one of its paths has its
// track, for the others. Tracks whose SSRC the offer carries (browsers') all come
// when the connection is up; one that does not is only known by its first
// packet: a client that never sends on a path gets its customers transcoded onto
// the paths it does send on.
const pathGrace = 2 * time.Second

// AgentPeer is the server side of one agent's WebRTC session: one audio path per
// codec answered, each a sendrecv transceiver.
type AgentPeer struct {
	pc      *webrtc.PeerConnection
	mimes   []string // the paths' codecs, in m-line order
	local   []*webrtc.TrackLocalStaticRTP
	senders []*webrtc.RTPSender
	pts     []uint8 // the payload type the browser sends each path's codec with

	mu    sync.Mutex
	legs  []*WebRTCLeg  // by path, as the browser's tracks are announced
	n     int           // legs not nil
	first chan struct{} // closed when the first path's track is announced
	all   chan struct{} // closed when every path's track has been
	done  chan struct{}
	close sync.Once
}

// ErrNoAudioOffer means the browser's offer has no audio codec Turbina speaks.
var ErrNoAudioOffer = errors.New("agent peer: offer has no PCMU, PCMA or Opus audio")

// Answer accepts a browser's SDP offer (ICE gathered, not trickled) and returns the
// peer and the SDP answer with every candidate in it.
func (a *AgentPeers) Answer(ctx context.Context, offer string) (*AgentPeer, string, error) {
	mimes, err := pathCodecs(offer)
	if err != nil {
		return nil, "", err
	}
	pc, err := a.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("agent peer: %w", err)
	}
	p := &AgentPeer{pc: pc, mimes: mimes, legs: make([]*WebRTCLeg, len(mimes)),
		first: make(chan struct{}), all: make(chan struct{}), done: make(chan struct{})}
	fail := func(err error) (*AgentPeer, string, error) {
		p.Close()
		return nil, "", err
	}
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			p.Close()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("agent peer: offer: %w", err))
	}
	for _, mime := range mimes {
		codec := agentCodec(mime)
		// One stream, told apart by track ID: "audio-pcmu", "audio-opus".
		track, err := webrtc.NewTrackLocalStaticRTP(codec.RTPCodecCapability, "audio-"+strings.ToLower(strings.TrimPrefix(mime, "audio/")), "turbina")
		if err != nil {
			return fail(fmt.Errorf("agent peer: local track: %w", err))
		}
		// Added after the offer, tracks take over the browser's audio
		// transceivers in order (pathCodecs keeps the paths on the first ones),
		// which then answer sendrecv.
		sender, err := pc.AddTrack(track)
		if err != nil {
			return fail(fmt.Errorf("agent peer: add track: %w", err))
		}
		p.mu.Lock()
		p.local, p.senders = append(p.local, track), append(p.senders, sender)
		p.mu.Unlock()
		go DiscardRTCP(sender) // the session lasts hours: its RTCP must not pile up
		// Answer each path with its codec alone: the browser then sends it too,
		// and a customer of that codec is forwarded without transcoding.
		for _, tr := range pc.GetTransceivers() {
			if tr.Sender() != sender {
				continue
			}
			if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{codec}); err != nil {
				return fail(fmt.Errorf("agent peer: codec: %w", err))
			}
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
	p.mu.Lock()
	p.pts = answeredPayloadTypes(answer.SDP, mimes)
	p.mu.Unlock()
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

// onTrack pairs the browser's track on a path with the server's track of that
// path into the path's leg. The track may come before its first packet, its
// codec not known yet: the path is told by its transceiver, and the leg takes
// the codec the path was answered with.
func (p *AgentPeer) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	go DiscardRTCP(receiver) // the session lasts hours: its RTCP must not pile up
	var sender *webrtc.RTPSender
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == receiver {
			sender = tr.Sender()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.senders {
		if s != sender || sender == nil || p.legs[i] != nil || i >= len(p.pts) {
			continue
		}
		c := codecFromWebRTC(p.local[i].Codec(), p.pts[i])
		p.legs[i] = newWebRTCLeg(remote, p.local[i], c)
		if p.n++; p.n == 1 {
			close(p.first)
		}
		if p.n == len(p.mimes) {
			close(p.all)
		}
		return
	}
}

// answeredPayloadTypes returns, for each path in m-line order, the payload type
// of its codec in the answer: the one the browser sends it with.
func answeredPayloadTypes(answer string, mimes []string) []uint8 {
	pts := make([]uint8, len(mimes))
	for i, mime := range mimes {
		pts[i] = uint8(agentCodec(mime).PayloadType)
	}
	var sd sdp.SessionDescription
	if sd.UnmarshalString(answer) != nil {
		return pts
	}
	i := 0
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		if i == len(mimes) {
			break
		}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			pt, enc, _ := strings.Cut(a.Value, " ")
			if n, err := strconv.ParseUint(pt, 10, 7); err == nil && encodes(enc, mimes[i]) {
				pts[i] = uint8(n)
				break
			}
		}
		i++
	}
	return pts
}

// encodes reports whether an rtpmap encoding ("opus/48000/2") is mime's codec as
// the agent peers register it.
func encodes(enc, mime string) bool {
	name := strings.TrimPrefix(mime, "audio/")
	return strings.HasPrefix(strings.ToLower(enc), strings.ToLower(name)+"/"+strconv.Itoa(int(agentCodec(mime).ClockRate)))
}

// pathCodecs picks the codec of each audio path to answer, in m-line order. The
// first two audio m-lines become two paths when one offers G.711 and the other
// Opus; otherwise the first is the only path, with PCMU, PCMA or Opus in that
// order of preference.
func pathCodecs(offer string) ([]string, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, fmt.Errorf("agent peer: offer: %w", err)
	}
	var audio []map[string]bool // the codecs each audio m-line offers, by MIME type
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		offered := map[string]bool{}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "111 opus/48000/2"
			if _, enc, ok := strings.Cut(a.Value, " "); ok {
				for _, mime := range []string{webrtc.MimeTypePCMU, webrtc.MimeTypePCMA, webrtc.MimeTypeOpus} {
					if encodes(enc, mime) {
						offered[mime] = true
					}
				}
			}
		}
		audio = append(audio, offered)
	}
	g711 := func(offered map[string]bool) string {
		switch {
		case offered[webrtc.MimeTypePCMU]:
			return webrtc.MimeTypePCMU
		case offered[webrtc.MimeTypePCMA]:
			return webrtc.MimeTypePCMA
		}
		return ""
	}
	if len(audio) >= 2 {
		switch {
		case g711(audio[0]) != "" && audio[1][webrtc.MimeTypeOpus]:
			return []string{g711(audio[0]), webrtc.MimeTypeOpus}, nil
		case audio[0][webrtc.MimeTypeOpus] && g711(audio[1]) != "":
			return []string{webrtc.MimeTypeOpus, g711(audio[1])}, nil
		}
	}
	if len(audio) > 0 {
		if mime := g711(audio[0]); mime != "" {
			return []string{mime}, nil
		}
		if audio[0][webrtc.MimeTypeOpus] {
			return []string{webrtc.MimeTypeOpus}, nil
		}
	}
	return nil, ErrNoAudioOffer
}

// Legs waits for the browser's tracks and returns the session's legs to bridge,
// one per path, in m-line order (the browser's transceivers'): the index of a
// leg is what a Call's Path reports. A bridge transcodes customers of a codec
// without a leg onto the first; pathCodecs puts G.711 first but for an offer
// whose first m-line is Opus alone. The first track is waited for until ctx
// ends; the others then get pathGrace to follow, and a path whose track did not
// is left out (the indices after it then no longer match the m-lines).
func (p *AgentPeer) Legs(ctx context.Context) ([]Leg, error) {
	select {
	case <-p.first:
	case <-p.done:
		return nil, errors.New("agent peer closed before its audio arrived")
	case <-ctx.Done():
		return nil, fmt.Errorf("agent peer: waiting for audio: %w", ctx.Err())
	}
	grace := time.NewTimer(pathGrace)
	defer grace.Stop()
	select {
	case <-p.all:
	case <-grace.C:
	case <-p.done:
		return nil, errors.New("agent peer closed before its audio arrived")
	case <-ctx.Done():
		return nil, fmt.Errorf("agent peer: waiting for audio: %w", ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var legs []Leg
	for _, l := range p.legs {
		if l != nil {
			legs = append(legs, l)
		}
	}
	return legs, nil
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
