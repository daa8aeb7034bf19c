package dialer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
)

// AgentState is what an agent is doing.
type AgentState string

// Agent states.
const (
	AgentLoggedOut AgentState = "logged_out"
	AgentReady     AgentState = "ready"
	// AgentReserved: chosen for an answered call whose audio is being connected.
	AgentReserved AgentState = "reserved"
	AgentOnCall   AgentState = "on_call"
	AgentWrapUp   AgentState = "wrap_up"
	AgentPaused   AgentState = "paused"
)

// Agent is an agent's state as the engine sees it.
type Agent struct {
	ID        int64             `json:"id,string"`
	Name      string            `json:"name"`
	State     AgentState        `json:"state"`
	Since     time.Time         `json:"since"`
	Reason    string            `json:"reason,omitempty"` // pause reason code
	Campaigns []int64           `json:"-"`
	Channel   campaigns.Channel `json:"channel,omitempty"`           // of the current or last call
	AttemptID int64             `json:"attempt_id,string,omitempty"` // current or last call
	// LoggingOff: the agent leaves when the current call and wrap-up end.
	LoggingOff bool `json:"logging_off,omitempty"`
	// Audio: the agent's nailed-up media leg is up.
	Audio bool `json:"audio"`
	// Media is the audio path the agent works with (presence.go): a customer is
	// put through only while that path is live.
	Media AgentMedia `json:"media,omitempty"`
	// Page: the agent's page (its event socket) is open.
	Page bool `json:"page"`
	// pages counts the agent's open event sockets (tabs).
	pages int
	// needPage: the agent works through its page, so it is away when the page
	// closes (learned from the first socket of the session).
	needPage bool
	// resume: a lost path took the agent out of ready (or wrap-up) at resumeBy;
	// the path back before then makes it ready again, as a reloaded page expects.
	resume   bool
	resumeBy time.Time
	// pop is the screen-pop of the agent's current or last call, shown again to
	// a page that reconnects during the call or its wrap-up.
	pop *ScreenPop
	// closing: the agent's disposition is being stored, so the wrap-up timeout
	// leaves this wrap-up alone.
	closing bool
}

// MarshalJSON writes campaign IDs as strings, like every ID in the API.
func (a Agent) MarshalJSON() ([]byte, error) {
	type plain Agent
	ids := make([]string, len(a.Campaigns))
	for i, id := range a.Campaigns {
		ids[i] = strconv.FormatInt(id, 10)
	}
	return json.Marshal(struct {
		plain
		CampaignIDs []string `json:"campaign_ids"`
	}{plain(a), ids})
}

// Errors of agent operations.
var (
	ErrAgentNotLoggedIn = errors.New("agent is not logged in")
	ErrAgentBusy        = errors.New("agent is on a call")
	// ErrNoCall: the agent is logged in but has no call to hang up or to close.
	ErrNoCall = errors.New("agent has no call to hang up or close")
	// ErrDispositionPending: the agent's disposition of the call is being stored.
	ErrDispositionPending = errors.New("a disposition of this call is already being recorded")
)

// Agents is the pool of logged-in agents, shared by every campaign's run. It is safe
// for concurrent use.
type Agents struct {
	mu   sync.Mutex
	byID map[int64]*Agent
	// onChange is told which campaigns an agent change concerns, so their runs can
	// connect a waiting customer at once.
	onChange func(campaignIDs []int64)
	// watch is told every agent's new state, for its session.
	watch func(Agent)
}

// changed reports an agent's new state to the watcher. Called without p.mu held.
func (p *Agents) changed(a Agent) {
	if p.watch != nil {
		p.watch(a)
	}
}

// snapshotLocked copies an agent for use outside the lock.
func snapshotLocked(a *Agent) Agent {
	out := *a
	out.Campaigns = slices.Clone(a.Campaigns)
	return out
}

// NewAgents returns an empty pool.
func NewAgents() *Agents { return &Agents{byID: map[int64]*Agent{}} }

func (p *Agents) notify(ids []int64) {
	if p.onChange != nil && len(ids) > 0 {
		p.onChange(slices.Clone(ids))
	}
}

// Login logs an agent in to campaigns, paused until it says it is ready. Logging in
// again changes the campaigns. An agent logged in so needs no audio path until
// its audio first comes up (an API client without audio); LoginWith says which
// path a softphone or phone agent needs from the start.
func (p *Agents) Login(id int64, name string, campaignIDs []int64, now time.Time) Agent {
	return p.LoginWith(id, name, campaignIDs, MediaNone, now)
}

// LoginWith is Login for an agent that works with media: the agent cannot go
// ready until that path is live (Ready's ErrNoPath).
func (p *Agents) LoginWith(id int64, name string, campaignIDs []int64, media AgentMedia, now time.Time) Agent {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || a.State == AgentLoggedOut {
		// A media leg nailed up before (or across) logins stays up.
		audio, pages := ok && a.Audio, 0
		if ok {
			pages = a.pages
		}
		a = &Agent{ID: id, State: AgentPaused, Since: now, Reason: "login", Audio: audio, pages: pages, Page: pages > 0, needPage: pages > 0}
		if audio {
			a.Media = MediaAudio
		}
		p.byID[id] = a
	}
	if media != MediaNone {
		// A ready agent that now says it works with audio it lacks is out.
		a.Media = media
		a.pathChanged(now)
	}
	a.Name, a.LoggingOff = name, false
	old := a.Campaigns
	a.Campaigns = slices.Clone(campaignIDs)
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.notify(append(old, campaignIDs...))
	p.changed(out)
	return out
}

// Assign adds a campaign to a logged-in agent's campaigns, as a supervisor's move
// does: the agent takes that campaign's calls from the next pacing decision on. An
// agent not logged in is left alone (the assignment applies at its next login) and
// reported with ErrAgentNotLoggedIn.
func (p *Agents) Assign(id, campaignID int64) (Agent, error) {
	out, err := p.change(id, func(a *Agent) error {
		if !slices.Contains(a.Campaigns, campaignID) {
			a.Campaigns = append(a.Campaigns, campaignID)
		}
		return nil
	})
	p.notify([]int64{campaignID})
	return out, err
}

// Unassign removes a campaign from a logged-in agent's campaigns: no new call of
// that campaign reaches the agent; a call in progress goes on to its end.
func (p *Agents) Unassign(id, campaignID int64) (Agent, error) {
	out, err := p.change(id, func(a *Agent) error {
		a.Campaigns = slices.DeleteFunc(a.Campaigns, func(c int64) bool { return c == campaignID })
		return nil
	})
	p.notify([]int64{campaignID})
	return out, err
}

func (p *Agents) change(id int64, fn func(a *Agent) error) (Agent, error) {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || a.State == AgentLoggedOut {
		p.mu.Unlock()
		return Agent{}, fmt.Errorf("agent %d: %w", id, ErrAgentNotLoggedIn)
	}
	if err := fn(a); err != nil {
		out := snapshotLocked(a)
		p.mu.Unlock()
		return out, err
	}
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.notify(out.Campaigns)
	p.changed(out)
	return out, nil
}

// Ready makes a paused agent available for calls. An agent on a call or in
// wrap-up becomes ready through the call's end and its disposition.
func (p *Agents) Ready(id int64, now time.Time) (Agent, error) {
	return p.change(id, func(a *Agent) error {
		switch a.State {
		case AgentReady:
			return nil
		case AgentReserved, AgentOnCall, AgentWrapUp:
			return fmt.Errorf("agent %d is %s: %w", id, a.State, ErrAgentBusy)
		}
		if err := a.pathErr(); err != nil {
			// The reason shown is what is missing now, which may have changed.
			a.Reason = err.Reason
			return err
		}
		a.State, a.Since, a.Reason, a.resume = AgentReady, now, "", false
		return nil
	})
}

// Pause takes a ready agent out of the dialling pool with a reason code.
func (p *Agents) Pause(id int64, reason string, now time.Time) (Agent, error) {
	return p.change(id, func(a *Agent) error {
		switch a.State {
		case AgentReserved, AgentOnCall, AgentWrapUp:
			return fmt.Errorf("agent %d is %s: %w", id, a.State, ErrAgentBusy)
		}
		a.State, a.Since, a.Reason, a.resume = AgentPaused, now, reason, false
		return nil
	})
}

// Logout logs an agent out, at once when idle, else after the current call's wrap-up.
func (p *Agents) Logout(id int64, now time.Time) (Agent, error) {
	return p.change(id, func(a *Agent) error {
		switch a.State {
		case AgentReserved, AgentOnCall, AgentWrapUp:
			a.LoggingOff = true
		default:
			a.State, a.Since, a.resume = AgentLoggedOut, now, false
		}
		return nil
	})
}

// Get returns one agent's state.
func (p *Agents) Get(id int64) (Agent, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok {
		return Agent{}, false
	}
	return snapshotLocked(a), true
}

// List returns every agent that is logged in, ordered by ID.
func (p *Agents) List() []Agent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Agent, 0, len(p.byID))
	for _, a := range p.byID {
		if a.State != AgentLoggedOut {
			out = append(out, snapshotLocked(a))
		}
	}
	slices.SortFunc(out, func(a, b Agent) int { return int(a.ID - b.ID) })
	return out
}

// readyFor reports whether the agent may take a call of the campaign now: ready,
// not about to leave, and working on it.
func (a *Agent) readyFor(campaignID int64) bool {
	return a.State == AgentReady && !a.LoggingOff && a.missing() == "" && slices.Contains(a.Campaigns, campaignID)
}

// longestIdle orders agents by how long they have waited in their state, the
// longest first, and by id among equals: who gets the next call.
func longestIdle(a, b *Agent) int {
	if c := a.Since.Compare(b.Since); c != 0 {
		return c
	}
	return int(a.ID - b.ID)
}

// reserve picks an agent of a campaign for an answered call: the preferred one (who
// asked for this callback) when ready, else the longest-idle ready agent.
func (p *Agents) reserve(campaignID, attemptID int64, ch campaigns.Channel, preferred int64, now time.Time) (Agent, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *Agent
	if a, ok := p.byID[preferred]; ok && a.readyFor(campaignID) {
		best = a
	}
	for _, a := range p.byID {
		if best != nil && best.ID == preferred {
			break
		}
		if !a.readyFor(campaignID) {
			continue
		}
		if best == nil || longestIdle(a, best) < 0 {
			best = a
		}
	}
	if best == nil {
		return Agent{}, false
	}
	best.State, best.Since, best.AttemptID, best.Channel = AgentReserved, now, attemptID, ch
	return *best, true
}

// readyIn lists the agents ready for the campaign's calls, longest idle first.
func (p *Agents) readyIn(campaignID int64) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ready []*Agent
	for _, a := range p.byID {
		if a.readyFor(campaignID) {
			ready = append(ready, a)
		}
	}
	slices.SortFunc(ready, longestIdle)
	ids := make([]int64, len(ready))
	for i, a := range ready {
		ids[i] = a.ID
	}
	return ids
}

// reserveAgent reserves one ready agent of a campaign for a call it is about to
// place itself (a preview dial); reservedFor then names the call.
func (p *Agents) reserveAgent(id, campaignID int64, ch campaigns.Channel, now time.Time) bool {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || !a.readyFor(campaignID) {
		p.mu.Unlock()
		return false
	}
	a.State, a.Since, a.AttemptID, a.Channel = AgentReserved, now, 0, ch
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.changed(out)
	return true
}

// reservedFor names the call a reserved agent waits for.
func (p *Agents) reservedFor(id, attemptID int64) {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || a.State != AgentReserved {
		p.mu.Unlock()
		return
	}
	a.AttemptID = attemptID
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.changed(out)
}

// unreserve makes an agent reserved for attemptID ready again: the call was not
// put through after all.
func (p *Agents) unreserve(id, attemptID int64) {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || a.State != AgentReserved || a.AttemptID != attemptID {
		p.mu.Unlock()
		return
	}
	a.State = AgentReady
	if a.LoggingOff {
		a.State, a.LoggingOff = AgentLoggedOut, false
	} else {
		a.awayIfLost(a.Since)
	}
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.changed(out)
}

// readyFor reports whether an agent is ready for the campaign's calls now.
func (p *Agents) readyFor(campaignID int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.byID {
		if a.readyFor(campaignID) {
			return true
		}
	}
	return false
}

// connected moves a reserved agent on to the call.
func (p *Agents) connected(id int64, now time.Time) {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || a.State != AgentReserved {
		p.mu.Unlock()
		return
	}
	a.State, a.Since = AgentOnCall, now
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.changed(out)
}

// callEnded moves an agent from the call to wrap-up.
func (p *Agents) callEnded(id int64, now time.Time) {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok || (a.State != AgentOnCall && a.State != AgentReserved) {
		p.mu.Unlock()
		return
	}
	a.State, a.Since = AgentWrapUp, now
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.changed(out)
}

// wrapUpDone ends an agent's wrap-up: ready again, or logged out if it asked to leave.
// It returns the attempt the wrap-up was for and how long it lasted.
func (p *Agents) wrapUpDone(id int64, now time.Time) (attemptID int64, wrap time.Duration, err error) {
	_, err = p.change(id, func(a *Agent) error {
		if a.State != AgentWrapUp {
			return fmt.Errorf("agent %d is %s, not in wrap-up", id, a.State)
		}
		attemptID, wrap, a.closing = a.AttemptID, now.Sub(a.Since), false
		a.Since = now
		if a.LoggingOff {
			a.State, a.LoggingOff = AgentLoggedOut, false
		} else {
			a.State = AgentReady
			a.awayIfLost(now)
		}
		return nil
	})
	return attemptID, wrap, err
}

// resumeWrapUp puts an agent logged in to campaignID and free (paused or
// ready) back in the wrap-up of attemptID, a call on ch that ended at ended
// and whose wrap-up a run elsewhere (another node, or this process before a
// restart) left open, with the call's screen-pop. It reports whether it did.
func (p *Agents) resumeWrapUp(id, campaignID, attemptID int64, ch campaigns.Channel, ended time.Time, pop ScreenPop) bool {
	_, err := p.change(id, func(a *Agent) error {
		if (a.State != AgentPaused && a.State != AgentReady) || !slices.Contains(a.Campaigns, campaignID) {
			return fmt.Errorf("agent %d is %s: %w", id, a.State, ErrAgentBusy)
		}
		a.State, a.Since, a.Reason, a.resume = AgentWrapUp, ended, "", false
		a.AttemptID, a.Channel, a.pop = attemptID, ch, &pop
		return nil
	})
	return err == nil
}

// claimWrapUp marks the agent's wrap-up of attemptID as being closed by its
// disposition: the wrap-up timeout does not close it while the disposition is
// stored, and a store that fails leaves the agent in wrap-up to try again.
func (p *Agents) claimWrapUp(id, attemptID int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	switch {
	case !ok:
		return fmt.Errorf("agent %d: %w", id, ErrAgentNotLoggedIn)
	case a.State != AgentWrapUp || a.AttemptID != attemptID:
		return fmt.Errorf("agent %d is not in wrap-up after call %d: %w", id, attemptID, ErrNoCall)
	case a.closing:
		return fmt.Errorf("agent %d: %w", id, ErrDispositionPending)
	}
	a.closing = true
	return nil
}

// releaseWrapUp undoes claimWrapUp when the disposition could not be stored.
func (p *Agents) releaseWrapUp(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byID[id]; ok {
		a.closing = false
	}
}

// pacingView describes a campaign's agents as package pacing sees them.
func (p *Agents) pacingView(campaignID int64, buf []pacing.Agent) []pacing.Agent {
	p.mu.Lock()
	defer p.mu.Unlock()
	buf = buf[:0]
	for _, a := range p.byID {
		if a.State == AgentLoggedOut || !slices.Contains(a.Campaigns, campaignID) {
			continue
		}
		pa := pacing.Agent{Since: a.Since, Channel: pacing.Channel(a.Channel)}
		switch {
		case a.LoggingOff:
			pa.State = pacing.AgentLoggingOff
		case a.State == AgentReady:
			pa.State = pacing.AgentReady
		case a.State == AgentOnCall, a.State == AgentReserved:
			pa.State = pacing.AgentTalking
		case a.State == AgentWrapUp:
			pa.State = pacing.AgentWrapUp
		default:
			pa.State = pacing.AgentPaused
		}
		buf = append(buf, pa)
	}
	return buf
}

// setScreenPop keeps the screen-pop of the agent's call.
func (p *Agents) setScreenPop(id int64, pop ScreenPop) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byID[id]; ok {
		a.pop = &pop
	}
}

// ScreenPop is the screen-pop of the call an agent is on or wrapping up, false
// when it has none: a page reloaded mid-call or in wrap-up shows the contact and
// the disposition form again, so the call is closed as it should be.
func (p *Agents) ScreenPop(id int64) (ScreenPop, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok || a.pop == nil || (a.State != AgentOnCall && a.State != AgentWrapUp) {
		return ScreenPop{}, false
	}
	return *a.pop, true
}
