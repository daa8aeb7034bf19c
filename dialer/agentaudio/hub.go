// Package agentaudio keeps every agent's nailed-up audio: the WebRTC or SIP-phone
// leg opened when the agent logs in, and the bridge on it that customers are
// switched onto. Connecting a customer is then only switching where packets go,
// with no new negotiation.
//
// The hub knows nothing of runs or calls: the engine hands it the few things it
// needs of the agent pool (Agents) and asks it for an agent's bridge.
package agentaudio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/media"
)

// ErrNoAgentMedia means the hub takes no WebRTC agent legs (none configured).
var ErrNoAgentMedia = errors.New("agent media is not configured")

// Agents is what the hub needs of the agent pool.
type Agents interface {
	// LoggedIn is nil when the agent is logged in, else an error saying why not:
	// only a logged-in agent's audio is nailed up.
	LoggedIn(agentID int64) error
	// AudioUp is told that the agent's audio is nailed up.
	AudioUp(agentID int64)
	// AudioDown is told that the agent's audio ended (detached, failed or
	// replaced by nothing): a customer it was bridged to is left in silence.
	AudioDown(agentID int64)
}

// Config tunes a Hub.
type Config struct {
	// Peers answers browser agents' WebRTC offers; nil refuses them.
	Peers *media.AgentPeers
	// Registrar is where agents' SIP phones register; nil without one.
	Registrar *sip.Registrar
	// Silence is how long a leg may send no audio before it is taken as lost
	// (0: never).
	Silence time.Duration
	// Logger receives the legs' comings and goings.
	Logger *slog.Logger
}

// Hub keeps every agent's nailed-up leg and the bridge on it. Safe for
// concurrent use: calls' goroutines switch customers onto bridges while the
// agents' sessions come and go.
type Hub struct {
	cfg    Config
	agents Agents

	mu      sync.Mutex
	byAgent map[int64]*agentLeg
	// closed: the hub has stopped, and takes no more legs.
	closed bool
	// running counts the bridges' goroutines, for Close to wait on.
	running sync.WaitGroup
}

// New returns a hub that tells agents of the legs it nails up and loses.
func New(cfg Config, agents Agents) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, agents: agents, byAgent: map[int64]*agentLeg{}}
}

// agentLeg is an agent's nailed-up media session and the bridge on it.
type agentLeg struct {
	bridge *media.Bridge
	cancel context.CancelFunc
	end    func() error // ends the session (the WebRTC peer, the phone call)
	once   sync.Once
}

// Bridge returns agentID's bridge, nil when the agent has no audio leg.
func (h *Hub) Bridge(agentID int64) *media.Bridge {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.byAgent[agentID]; ok {
		return a.bridge
	}
	return nil
}

// Attach nails up leg as agentID's audio: a bridge runs on it until done is
// closed or the leg fails, and answered customers are switched onto it. end, if
// not nil, ends the underlying session when the leg is replaced or detached.
func (h *Hub) Attach(agentID int64, leg media.Leg, end func() error, done <-chan struct{}) {
	h.AttachPaths(agentID, []media.Leg{leg}, end, done)
}

// AttachPaths is Attach for a session that carries one leg per codec (a
// browser's PCMU and Opus paths), most preferred first: each customer is
// bridged to the leg of its codec, or transcoded onto the first.
func (h *Hub) AttachPaths(agentID int64, legs []media.Leg, end func() error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &agentLeg{bridge: media.NewBridgePaths(legs, media.BridgeConfig{Logger: h.cfg.Logger, AgentSilence: h.cfg.Silence}), cancel: cancel, end: end}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		a.stop()
		return
	}
	old := h.byAgent[agentID]
	h.byAgent[agentID] = a
	h.running.Add(1)
	h.mu.Unlock()
	if old != nil {
		old.stop()
	}
	h.agents.AudioUp(agentID)
	go func() {
		defer h.running.Done()
		if err := a.bridge.Run(ctx); errors.Is(err, media.ErrAgentSilent) {
			h.cfg.Logger.Warn("agent audio lost: nothing received", "agent", agentID, "after", h.cfg.Silence)
		} else if err != nil {
			h.cfg.Logger.Info("agent audio ended", "agent", agentID, "err", err)
		}
		h.detach(agentID, a)
	}()
	if done != nil {
		go func() {
			select {
			case <-done:
				h.detach(agentID, a)
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

// Close ends every agent's session, takes no more, and waits for their bridges
// to finish: the engine closes it as it stops, once no run can bridge a call.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	legs := maps.Clone(h.byAgent)
	h.mu.Unlock()
	for id, a := range legs {
		h.detach(id, a)
	}
	h.running.Wait()
}

// detach ends an agent's leg if it is still the current one.
func (h *Hub) detach(agentID int64, a *agentLeg) {
	h.mu.Lock()
	current := h.byAgent[agentID] == a
	if current {
		delete(h.byAgent, agentID)
	}
	h.mu.Unlock()
	// The bridge stops at once; the agents hear of it before the session is
	// ended, which for a dead phone is a BYE that waits seconds for no answer:
	// a customer on the line must not wait for it.
	a.cancel()
	if current {
		h.agents.AudioDown(agentID)
	}
	a.stop()
}

// TakesBrowsers reports whether the hub answers browsers' WebRTC offers.
func (h *Hub) TakesBrowsers() bool { return h.cfg.Peers != nil }

// Offer answers a browser agent's WebRTC offer and nails up its audio once it
// flows. It returns the SDP answer.
func (h *Hub) Offer(ctx context.Context, agentID int64, offer string) (string, error) {
	return h.OfferUntil(ctx, agentID, offer, nil)
}

// OfferUntil is Offer for a leg that belongs to a page: it ends when session is
// closed (the page's event stream), as the browser's peer does when the page
// goes, instead of when the browser's network gives up on it seconds later.
func (h *Hub) OfferUntil(ctx context.Context, agentID int64, offer string, session <-chan struct{}) (string, error) {
	if h.cfg.Peers == nil {
		return "", ErrNoAgentMedia
	}
	if err := h.agents.LoggedIn(agentID); err != nil {
		return "", fmt.Errorf("agent %d: %w", agentID, err)
	}
	peer, answer, err := h.cfg.Peers.Answer(ctx, offer)
	if err != nil {
		return "", err
	}
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if session != nil {
			// A page gone before its audio flowed has no leg to wait for.
			go func() {
				select {
				case <-session:
					cancel()
				case <-wctx.Done():
				}
			}()
		}
		legs, err := peer.Legs(wctx)
		if err != nil {
			h.cfg.Logger.Warn("agent audio did not arrive", "agent", agentID, "err", err)
			peer.Close()
			return
		}
		codecs := make([]string, len(legs))
		for i, l := range legs {
			codecs[i] = l.Codec().Name
		}
		h.cfg.Logger.Debug("agent audio up", "agent", agentID, "codecs", codecs)
		done := peer.Done()
		if session != nil {
			done = either(done, session)
		}
		h.AttachPaths(agentID, legs, peer.Close, done)
	}()
	return answer, nil
}

// current is the call bridged to agentID, nil when none is.
func (h *Hub) current(agentID int64) *media.Connection {
	b := h.Bridge(agentID)
	if b == nil {
		return nil
	}
	return b.Current()
}

// Path returns the audio path of an agent's current call, false when the agent
// has no call bridged: a page whose event stream reconnects mid-call moves its
// microphone to the call's path.
func (h *Hub) Path(agentID int64) (int, bool) {
	c := h.current(agentID)
	if c == nil {
		return 0, false
	}
	return c.Path(), true
}

// Stats reports the packets the bridge forwarded on an agent's current call,
// both ways; false when the agent has no call bridged. Supervisors (and tests)
// use it to see that a call has audio.
func (h *Hub) Stats(agentID int64) (media.CallStats, bool) {
	c := h.current(agentID)
	if c == nil {
		return media.CallStats{}, false
	}
	return c.Stats(), true
}

// either is closed once a or b is. Its goroutine ends with it: the peer's Done
// closes when the peer is closed, which ending the leg does.
func either(a, b <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		defer close(out)
		select {
		case <-a:
		case <-b:
		}
	}()
	return out
}
