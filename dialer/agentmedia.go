package dialer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/media"
)

// ErrNoAgentMedia means the engine takes no WebRTC agent legs (none configured).
var ErrNoAgentMedia = errors.New("agent media is not configured")

// MediaCarrier is a Leg whose audio the engine can bridge once it is answered.
type MediaCarrier interface {
	// MediaLeg returns the answered call's audio; the first call hands the leg
	// over to the caller, later calls return the same leg.
	MediaLeg() (media.Leg, error)
}

// agentLeg is an agent's nailed-up media session and the bridge on it.
type agentLeg struct {
	bridge *media.Bridge
	cancel context.CancelFunc
	end    func() error // ends the session (the WebRTC peer, the phone call)
	once   sync.Once
}

// agentLegs keeps every agent's nailed-up leg. Safe for concurrent use.
type agentLegs struct {
	mu      sync.Mutex
	byAgent map[int64]*agentLeg
	// closed: the engine has stopped, and takes no more legs.
	closed bool
	// running counts the bridges' goroutines, for the engine to wait on at its end.
	running sync.WaitGroup
}

func (l *agentLegs) bridge(agentID int64) *media.Bridge {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := l.byAgent[agentID]; ok {
		return a.bridge
	}
	return nil
}

// AttachAgentLeg nails up leg as agentID's audio: a bridge runs on it until done is
// closed or the leg fails, and answered customers are switched onto it. end, if
// not nil, ends the underlying session when the leg is replaced or detached.
func (e *Engine) AttachAgentLeg(agentID int64, leg media.Leg, end func() error, done <-chan struct{}) {
	e.AttachAgentLegs(agentID, []media.Leg{leg}, end, done)
}

// AttachAgentLegs is AttachAgentLeg for a session that carries one leg per codec
// (a browser's PCMU and Opus paths), most preferred first: each customer is
// bridged to the leg of its codec, or transcoded onto the first.
func (e *Engine) AttachAgentLegs(agentID int64, legs []media.Leg, end func() error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &agentLeg{bridge: media.NewBridgePaths(legs, media.BridgeConfig{Logger: e.log, AgentSilence: e.cfg.AgentSilence}), cancel: cancel, end: end}
	e.legs.mu.Lock()
	if e.legs.closed {
		e.legs.mu.Unlock()
		a.stop()
		return
	}
	old := e.legs.byAgent[agentID]
	e.legs.byAgent[agentID] = a
	e.legs.running.Add(1)
	e.legs.mu.Unlock()
	if old != nil {
		old.stop()
	}
	e.agents.setAudio(agentID, true)
	go func() {
		defer e.legs.running.Done()
		if err := a.bridge.Run(ctx); errors.Is(err, media.ErrAgentSilent) {
			e.log.Warn("agent audio lost: nothing received", "agent", agentID, "after", e.cfg.AgentSilence)
		} else if err != nil {
			e.log.Info("agent audio ended", "agent", agentID, "err", err)
		}
		e.detachAgentLeg(agentID, a)
	}()
	if done != nil {
		go func() {
			select {
			case <-done:
				e.detachAgentLeg(agentID, a)
			case <-ctx.Done():
			}
		}()
	}
}

// stop ends the bridge and the session, once however many paths ask.
func (a *agentLeg) stop() {
	a.once.Do(func() {
		a.cancel()
		if a.end != nil {
			a.end()
		}
	})
}

// stopAgentLegs ends every agent's session as the engine stops, and waits for
// their bridges to finish.
func (e *Engine) stopAgentLegs() {
	e.legs.mu.Lock()
	e.legs.closed = true
	legs := maps.Clone(e.legs.byAgent)
	e.legs.mu.Unlock()
	for id, a := range legs {
		e.detachAgentLeg(id, a)
	}
	e.legs.running.Wait()
}

// detachAgentLeg ends an agent's leg if it is still the current one.
func (e *Engine) detachAgentLeg(agentID int64, a *agentLeg) {
	e.legs.mu.Lock()
	current := e.legs.byAgent[agentID] == a
	if current {
		delete(e.legs.byAgent, agentID)
	}
	e.legs.mu.Unlock()
	a.stop()
	if !current {
		return
	}
	e.agents.setAudio(agentID, false)
	// An agent whose audio died mid-call (a closed browser, a lost network) leaves
	// a customer in silence: apologise to the customer and end the call.
	if ag, ok := e.agents.Get(agentID); ok && ag.State == AgentOnCall {
		if r := e.runFor(ag.Campaigns, ag.AttemptID); r != nil {
			r.do(func() { r.agentLost(ag.AttemptID) })
		}
	}
}

// AgentOffer answers a browser agent's WebRTC offer and nails up its audio once it
// flows. It returns the SDP answer.
func (e *Engine) AgentOffer(ctx context.Context, agentID int64, offer string) (string, error) {
	if e.cfg.AgentPeers == nil {
		return "", ErrNoAgentMedia
	}
	if _, ok := e.agents.Get(agentID); !ok {
		return "", fmt.Errorf("agent %d: %w", agentID, ErrAgentNotLoggedIn)
	}
	peer, answer, err := e.cfg.AgentPeers.Answer(ctx, offer)
	if err != nil {
		return "", err
	}
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		legs, err := peer.Legs(wctx)
		if err != nil {
			e.log.Warn("agent audio did not arrive", "agent", agentID, "err", err)
			peer.Close()
			return
		}
		codecs := make([]string, len(legs))
		for i, l := range legs {
			codecs[i] = l.Codec().Name
		}
		e.log.Debug("agent audio up", "agent", agentID, "codecs", codecs)
		e.AttachAgentLegs(agentID, legs, peer.Close, peer.Done())
	}()
	return answer, nil
}

// AgentAudioPath returns the audio_path event of an agent's current call (its
// audio path), false when the agent has no call bridged: a page whose event
// stream reconnects mid-call moves its microphone to the call's path.
func (e *Engine) AgentAudioPath(agentID int64) (AgentEvent, bool) {
	b := e.legs.bridge(agentID)
	if b == nil {
		return AgentEvent{}, false
	}
	c := b.Current()
	if c == nil {
		return AgentEvent{}, false
	}
	return AgentEvent{Kind: EventAudioPath, AudioPath: c.Path(), At: e.cfg.Now()}, true
}

// AgentAudioStats reports the packets the bridge forwarded on an agent's current
// call, both ways; false when the agent has no call bridged. Supervisors (and
// tests) use it to see that a call has audio.
func (e *Engine) AgentAudioStats(agentID int64) (media.CallStats, bool) {
	b := e.legs.bridge(agentID)
	if b == nil {
		return media.CallStats{}, false
	}
	c := b.Current()
	if c == nil {
		return media.CallStats{}, false
	}
	return c.Stats(), true
}
