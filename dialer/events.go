package dialer

import (
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// AgentEventKind names what an agent is told.
type AgentEventKind string

// Agent event kinds.
const (
	// EventState carries the agent's state after any change.
	EventState AgentEventKind = "state"
	// EventScreenPop: a customer is connected; who it is and what happened before.
	EventScreenPop AgentEventKind = "screen_pop"
	// EventCallEnded: the customer's call ended; wrap-up begins.
	EventCallEnded AgentEventKind = "call_ended"
	// EventAudioPath: a customer's audio is on the agent's audio path AudioPath.
	// Sent the moment the audio switches, before the screen-pop: a browser
	// sends its microphone on that path alone.
	EventAudioPath AgentEventKind = "audio_path"
	// EventPreview: the contact offered to a preview agent, before any call;
	// without Preview, the offer was taken back (expired, agent not ready).
	EventPreview AgentEventKind = "preview"
	// EventPreviewEnded: the agent's preview call ended before it was put
	// through (Outcome says how); the agent is ready again.
	EventPreviewEnded AgentEventKind = "preview_ended"
	// EventDraining: the node is draining before it stops (Engine.Drain): it
	// places no new call; a call under way goes on to its end.
	EventDraining AgentEventKind = "draining"
	// EventReconnect: the agent's work on a draining node is done (its
	// wrap-up ended): the page reconnects, to a node that takes calls.
	EventReconnect AgentEventKind = "reconnect"
)

// ScreenPop is what an agent sees the moment a customer's audio connects.
type ScreenPop struct {
	AttemptID    int64             `json:"attempt_id,string"`
	CampaignID   int64             `json:"campaign_id,string"`
	CampaignName string            `json:"campaign_name"`
	Channel      campaigns.Channel `json:"channel"`
	// Direction is storage.DirectionInbound for the contact's own call to the
	// business (the agent answers a caller, not a person Turbina called), else
	// storage.DirectionOutbound.
	Direction string            `json:"direction"`
	Contact   campaigns.Contact `json:"contact"`
	History   []storage.Attempt `json:"history"`
	// Refusals are the actions the policy gate refused on the contact.
	Refusals     []storage.PolicyRefusal `json:"refusals"`
	Dispositions []campaigns.Disposition `json:"dispositions"`
	// Script is the campaign's script for the call, its placeholders unfilled.
	Script      string    `json:"script,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
}

// AgentEvent is one message to an agent's session.
type AgentEvent struct {
	Kind      AgentEventKind `json:"type"`
	Agent     *Agent         `json:"agent,omitempty"`
	ScreenPop *ScreenPop     `json:"screen_pop,omitempty"`
	Preview   *PreviewOffer  `json:"preview,omitempty"`
	// Outcome, in preview_ended events, is how the call ended.
	Outcome string `json:"outcome,omitempty"`
	// AttemptID names the call a call_ended or audio_path event is about.
	AttemptID int64 `json:"attempt_id,string,omitempty"`
	// AudioPath, in audio_path events, is the index of the agent's audio path
	// (the browser's audio transceiver) the call is on; absent means 0.
	AudioPath int       `json:"audio_path,omitempty"`
	At        time.Time `json:"at"`
}

// hub fans agent events out to their subscribers (an agent's browser tabs).
type hub struct {
	mu   sync.Mutex
	subs map[int64]map[chan AgentEvent]struct{}
}

func newHub() *hub { return &hub{subs: map[int64]map[chan AgentEvent]struct{}{}} }

// subscribe returns a channel of the agent's events and a function to stop them.
func (h *hub) subscribe(agentID int64) (<-chan AgentEvent, func()) {
	ch := make(chan AgentEvent, 32)
	h.mu.Lock()
	if h.subs[agentID] == nil {
		h.subs[agentID] = map[chan AgentEvent]struct{}{}
	}
	h.subs[agentID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[agentID][ch]; ok {
			delete(h.subs[agentID], ch)
			close(ch)
		}
	}
}

// publishAll sends ev to every subscriber of every agent, as publish does.
func (h *hub) publishAll(ev AgentEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for ch := range subs {
			select {
			case ch <- ev:
			default:
			}
		}
	}
}

// publish sends ev to every subscriber of the agent. A subscriber too slow to keep
// 32 events is skipped for this one rather than holding the engine up: the next
// state event brings it up to date.
func (h *hub) publish(agentID int64, ev AgentEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[agentID] {
		select {
		case ch <- ev:
		default:
		}
	}
}
