package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// How simulated agents behave by default: they talk a while, then take a short
// wrap-up.
const (
	simTalkMin = 3 * time.Second
	simTalkMax = 8 * time.Second
	simWrapMin = 1 * time.Second
	simWrapMax = 2 * time.Second
)

// Timing is how long simulated agents talk and wrap up: each call draws a time
// uniformly from each span.
type Timing struct {
	Talk, Wrap Span
}

// DefaultTiming is the demo's usual pace: 3–8 s of talk, 1–2 s of wrap-up.
func DefaultTiming() Timing {
	return Timing{Talk: Span{simTalkMin, simTalkMax}, Wrap: Span{simWrapMin, simWrapMax}}
}

// Span is a flag value for a range of durations, written MIN-MAX ("1s-2s") or as
// one duration ("500ms") for a fixed time.
type Span struct{ Min, Max time.Duration }

// String writes the span as Set reads it.
func (d *Span) String() string {
	if d == nil {
		return ""
	}
	if d.Min == d.Max {
		return d.Min.String()
	}
	return d.Min.String() + "-" + d.Max.String()
}

// Set reads MIN-MAX or a single duration.
func (d *Span) Set(s string) error {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	from, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return err
	}
	to, err := time.ParseDuration(strings.TrimSpace(hi))
	if err != nil {
		return err
	}
	if from < 0 || to < from {
		return fmt.Errorf("%q: want MIN-MAX with 0 ≤ MIN ≤ MAX", s)
	}
	d.Min, d.Max = from, to
	return nil
}

// simDispositions are the codes simulated agents close calls with (none asks for a
// callback, which would need a time).
var simDispositions = []string{"sale", "not_interested", "other", "sale", "wrong_person"}

// Team is the demo's simulated agents.
type Team struct {
	agents []*simAgent
	wg     sync.WaitGroup
	// release ends the agents' sessions once the engine has stopped: an agent's
	// audio leg ending first would look like a lost browser mid-call.
	release     chan struct{}
	releaseOnce sync.Once
}

// NewTeam prepares one simulated agent per user, to take calls of a campaign.
// Each agent talks and wraps up for the times timing draws.
func NewTeam(e *dialer.Engine, campaignID int64, users []storage.User, ice media.ICEConfig, timing Timing, seed uint64, log *slog.Logger) *Team {
	t := &Team{release: make(chan struct{})}
	for i, u := range users {
		name := u.DisplayName
		if name == "" {
			name = u.Username
		}
		s := seed + uint64(i+1)*0x9e3779b9
		t.agents = append(t.agents, &simAgent{
			id: u.ID, name: name, engine: e, campaignID: campaignID, ice: ice, timing: timing,
			rng: rand.New(rand.NewPCG(s, s^0xa9e47)), log: log.With("sim_agent", u.Username),
			ready: make(chan struct{}), release: t.release,
		})
	}
	return t
}

// Start logs every agent in; each works until ctx ends.
func (t *Team) Start(ctx context.Context) {
	for _, a := range t.agents {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := a.run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("simulated agent stopped", "err", err)
			}
		}()
	}
}

// WaitReady waits until every agent is ready with its audio up.
func (t *Team) WaitReady(ctx context.Context) error {
	for _, a := range t.agents {
		select {
		case <-a.ready:
		case <-ctx.Done():
			return fmt.Errorf("agent %s: %w", a.name, ctx.Err())
		}
	}
	return nil
}

// Stop ends the agents' sessions (their work ends with the context given to Start)
// and waits until every agent has stopped.
func (t *Team) Stop() {
	t.releaseOnce.Do(func() { close(t.release) })
	t.wg.Wait()
}

// Len is the number of agents in the team.
func (t *Team) Len() int { return len(t.agents) }

// Totals adds up the agents' records up to now.
func (t *Team) Totals(now time.Time) AgentStats {
	var s AgentStats
	for _, a := range t.agents {
		s.add(a.stats(now))
	}
	return s
}

// AgentStats is what simulated agents did.
type AgentStats struct {
	// LoggedIn is time spent ready or working since the first ready.
	LoggedIn time.Duration
	// Talk is time on calls; Wrap is time in wrap-up.
	Talk, Wrap time.Duration
	// Calls counts calls the agents disposed of.
	Calls int
}

func (s *AgentStats) add(o AgentStats) {
	s.LoggedIn += o.LoggedIn
	s.Talk += o.Talk
	s.Wrap += o.Wrap
	s.Calls += o.Calls
}

// simAgent is a pion WebRTC peer playing an agent at a browser softphone: it nails
// up its audio through the engine's AgentAudio().Offer, goes ready, and for every call it gets
// talks a drawn time, hangs up and disposes of it after a short wrap-up.
type simAgent struct {
	id         int64
	name       string
	engine     *dialer.Engine
	campaignID int64
	ice        media.ICEConfig
	timing     Timing
	rng        *rand.Rand // used by run's goroutine only
	log        *slog.Logger
	ready      chan struct{}
	release    <-chan struct{}

	mu        sync.Mutex
	readyAt   time.Time
	stoppedAt time.Time
	callSince time.Time // on a call since; zero when not
	wrapSince time.Time // in wrap-up since; zero when not
	done      AgentStats
}

// stats returns the agent's record up to now, counting a call or wrap-up in progress.
func (a *simAgent) stats(now time.Time) AgentStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.done
	end := now
	if !a.stoppedAt.IsZero() {
		end = a.stoppedAt
	}
	if !a.readyAt.IsZero() {
		s.LoggedIn = end.Sub(a.readyAt)
	}
	if !a.callSince.IsZero() {
		s.Talk += end.Sub(a.callSince)
	}
	if !a.wrapSince.IsZero() {
		s.Wrap += end.Sub(a.wrapSince)
	}
	return s
}

func (a *simAgent) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(a.rng.Int64N(int64(hi-lo)))
}

// run logs the agent in and works calls until ctx ends.
func (a *simAgent) run(ctx context.Context) error {
	events, unsubscribe := a.engine.Subscribe(a.id)
	defer unsubscribe()
	agents := a.engine.Agents()
	agents.Login(a.id, a.name, []int64{a.campaignID}, time.Now())
	defer agents.Logout(a.id, time.Now())
	pc, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer pc.Close()
	defer func() { <-a.release }()
	defer func() {
		a.mu.Lock()
		a.stoppedAt = time.Now()
		a.mu.Unlock()
	}()
	for st, _ := agents.Get(a.id); !st.Audio; st, _ = agents.Get(a.id) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	st, err := agents.Ready(a.id, time.Now())
	if err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	a.mu.Lock()
	a.readyAt = st.Since
	a.mu.Unlock()
	close(a.ready)

	var (
		hangup, dispose <-chan time.Time
		callID          int64
		hangupAt        time.Time     // when the drawn talk time ends
		left            time.Duration // talk time left when the line dropped
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("agent events ended")
			}
			// A person whose line dropped is being called back on WhatsApp: like
			// a person at the softphone, the agent waits to hear whether they are
			// back (the talk goes on) or not reached (wrap-up follows), instead of
			// hanging up on the call back.
			switch ev.Kind {
			case dialer.EventResuming:
				if hangup != nil {
					hangup, left = nil, max(time.Until(hangupAt), 0)
				}
				continue
			case dialer.EventResumed:
				hangupAt = time.Now().Add(left)
				hangup = time.After(left)
				continue
			}
			if ev.Kind != dialer.EventState || ev.Agent == nil {
				continue
			}
			switch ag := ev.Agent; ag.State {
			case dialer.AgentOnCall:
				if ag.AttemptID != callID {
					callID = ag.AttemptID
					a.mu.Lock()
					a.callSince = ag.Since
					a.mu.Unlock()
					talk := a.between(a.timing.Talk.Min, a.timing.Talk.Max)
					hangupAt = time.Now().Add(talk)
					hangup = time.After(talk)
				}
			case dialer.AgentWrapUp:
				if dispose == nil {
					hangup = nil // the customer hung up first, or we did
					a.mu.Lock()
					if !a.callSince.IsZero() {
						a.done.Talk += ag.Since.Sub(a.callSince)
					}
					a.callSince, a.wrapSince = time.Time{}, ag.Since
					a.mu.Unlock()
					dispose = time.After(a.between(a.timing.Wrap.Min, a.timing.Wrap.Max))
				}
			}
		case <-hangup:
			hangup = nil
			go func() {
				hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := a.engine.Hangup(hctx, a.id); err != nil && ctx.Err() == nil {
					a.log.Debug("simulated agent hang-up", "err", err)
				}
			}()
		case <-dispose:
			dispose = nil
			code := simDispositions[a.rng.IntN(len(simDispositions))]
			err := a.engine.Disposition(ctx, a.id, dialer.Close{Code: code})
			now := time.Now()
			a.mu.Lock()
			if !a.wrapSince.IsZero() {
				a.done.Wrap += now.Sub(a.wrapSince)
			}
			a.wrapSince = time.Time{}
			if err == nil {
				a.done.Calls++
			}
			a.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				a.log.Debug("simulated agent disposition", "err", err)
			}
		}
	}
}

// connect nails up the agent's audio as the agent page does: two transceivers,
// a PCMU path for SIP customers and an Opus path for WhatsApp ones, each with a
// microphone sending silence every 20 ms and a speaker that drains whatever the
// customer says.
func (a *simAgent) connect(ctx context.Context) (*webrtc.PeerConnection, error) {
	se, err := a.ice.SettingEngine()
	if err != nil {
		return nil, err
	}
	pcmu := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}
	opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	me := &webrtc.MediaEngine{}
	for _, c := range []webrtc.RTPCodecParameters{{RTPCodecCapability: pcmu, PayloadType: 0}, {RTPCodecCapability: opus, PayloadType: 111}} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("simulated agent: %w", err)
		}
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("simulated agent: %w", err)
	}
	fail := func(err error) (*webrtc.PeerConnection, error) {
		pc.Close()
		return nil, fmt.Errorf("simulated agent: %w", err)
	}
	var mics []*webrtc.TrackLocalStaticRTP
	for _, c := range []webrtc.RTPCodecCapability{pcmu, opus} {
		mic, err := webrtc.NewTrackLocalStaticRTP(c, "mic-"+strings.TrimPrefix(c.MimeType, "audio/"), a.name)
		if err != nil {
			return fail(err)
		}
		tr, err := pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		if err != nil {
			return fail(err)
		}
		// A browser reads its RTCP; unread, pion would queue it for the whole session.
		go media.DiscardRTCP(tr.Sender())
		mics = append(mics, mic)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		go media.DiscardRTCP(receiver)
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	answer, err := a.engine.AgentAudio().Offer(ctx, a.id, pc.LocalDescription().SDP)
	if err != nil {
		return fail(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fail(err)
	}
	go talk(ctx, mics[0], mics[1])
	return pc, nil
}

// talk sends 20 ms frames of silence on both paths until ctx ends: µ-law on the
// PCMU one, Opus on the other.
func talk(ctx context.Context, pcmuMic, opusMic *webrtc.TrackLocalStaticRTP) {
	silence := make([]byte, 160)
	for i := range silence {
		silence[i] = 0xFF
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pcmu := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}, Payload: silence}
	opus := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}, Payload: emulator.OpusSilence}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_ = pcmuMic.WriteRTP(pcmu)
		pcmu.SequenceNumber++
		pcmu.Timestamp += 160
		_ = opusMic.WriteRTP(opus)
		opus.SequenceNumber++
		opus.Timestamp += 960
	}
}

// reportChannels lists the ladder channels in report order.
var reportChannels = []campaigns.Channel{campaigns.ChannelSIP, campaigns.ChannelWhatsAppCall, campaigns.ChannelWhatsAppTemplate}
