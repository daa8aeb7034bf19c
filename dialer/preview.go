package dialer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// Preview mode: the run offers each ready agent of the campaign the next due
// contact, reserved for that agent alone, with its screen-pop before any call. The
// agent dials it (the call goes through the run's start, with the agent reserved
// for it: the answer reaches that agent and cannot be abandoned) or skips it with
// a reason. An offer the agent leaves alone longer than Config.PreviewHold goes
// back to the pool; a skipped contact is due again Config.PreviewSkipDelay later,
// for whichever agent is free then, the skip kept in its history.

// PreviewSkipReasons are the reason codes an agent may give for a skip. "other"
// needs a note.
var PreviewSkipReasons = []string{"not_now", "missing_data", "wrong_contact", "other"}

// Errors of preview operations.
var (
	// ErrNoPreviewOffer: the agent has no offer of that contact (expired, taken
	// back, or never made).
	ErrNoPreviewOffer = errors.New("no preview offer of this contact")
	// ErrBadSkipReason: the skip's reason is not one of PreviewSkipReasons, or
	// "other" came without a note.
	ErrBadSkipReason = errors.New("invalid skip reason")
	// ErrPreviewNotPlaced: the run would not place the call (the contact moved on
	// meanwhile, or the engine refused it).
	ErrPreviewNotPlaced = errors.New("the call was not placed")
)

// PreviewOffer is what a preview agent sees of the contact offered to it, before
// any call: the screen-pop, without a call yet.
type PreviewOffer struct {
	CampaignID   int64                   `json:"campaign_id,string"`
	CampaignName string                  `json:"campaign_name"`
	Channel      campaigns.Channel       `json:"channel"`
	Contact      campaigns.Contact       `json:"contact"`
	History      []storage.Attempt       `json:"history"`
	Skips        []storage.PreviewSkip   `json:"skips"`
	Dispositions []campaigns.Disposition `json:"dispositions"`
	SkipReasons  []string                `json:"skip_reasons"`
	// Script is the campaign's script, its placeholders unfilled.
	Script    string    `json:"script,omitempty"`
	OfferedAt time.Time `json:"offered_at"`
	// ExpiresAt is when the offer goes back to the pool if the agent neither dials
	// nor skips it.
	ExpiresAt time.Time `json:"expires_at"`
}

// PreviewSkip is an agent's skip of the contact it was offered.
type PreviewSkip struct {
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// previewState is a run's preview desk, touched only by its loop.
type previewState struct {
	// offers are the contacts offered, by agent.
	offers map[int64]*previewOffer
	// dialing are agents' preview calls not yet put through, by agent.
	dialing map[int64]*call
}

type previewOffer struct {
	due storage.DueContact
	pop PreviewOffer
}

// is reports whether o is an offer of contactID; a nil offer is none.
func (o *previewOffer) is(contactID int64) bool { return o != nil && o.due.Contact.ID == contactID }

func (p *previewState) init() {
	if p.offers == nil {
		p.offers, p.dialing = map[int64]*previewOffer{}, map[int64]*call{}
	}
}

// offered reports whether contactID is offered to an agent.
func (p *previewState) offered(contactID int64) bool {
	for _, o := range p.offers {
		if o.due.Contact.ID == contactID {
			return true
		}
	}
	return false
}

// previewTick runs the preview desk at every turn of the loop in preview mode:
// it releases agents whose call ended unanswered, takes back stale offers and
// offers the next due contacts to ready agents that have none.
func (r *run) previewTick(ctx context.Context, now time.Time, rungs []int) {
	p := &r.preview
	p.init()
	for agentID, o := range p.offers {
		a, ok := r.e.agents.Get(agentID)
		if ok && a.State == AgentReady && !a.LoggingOff && slices.Contains(a.Campaigns, r.id) && now.Before(o.pop.ExpiresAt) {
			continue
		}
		delete(p.offers, agentID)
		r.e.events.publish(agentID, AgentEvent{Kind: EventPreview, At: now})
	}
	agents := r.e.agents.readyIn(r.id)
	agents = slices.DeleteFunc(agents, func(id int64) bool { _, ok := p.offers[id]; return ok })
	if len(agents) == 0 || len(rungs) == 0 {
		return
	}
	due, err := r.e.store.DueContacts(ctx, r.id, rungs, now, len(agents)+len(p.offers))
	if err != nil {
		r.e.log.Error("preview due contacts", "campaign", r.id, "err", err)
		return
	}
	for _, dc := range due {
		if len(agents) == 0 {
			return
		}
		if p.offered(dc.Contact.ID) || dc.Rung >= len(r.campaign.Ladder) {
			continue
		}
		if err := r.admit(ctx, dc, now, true); err != nil {
			if !errors.As(err, new(*campaigns.RefusedError)) {
				r.e.log.Error("preview policy", "contact", dc.Contact.ID, "err", err)
			}
			continue
		}
		agentID := agents[0]
		agents = agents[1:]
		o := &previewOffer{due: dc, pop: r.previewPop(ctx, dc, now)}
		p.offers[agentID] = o
		pop := o.pop
		r.e.events.publish(agentID, AgentEvent{Kind: EventPreview, Preview: &pop, At: now})
	}
}

// previewIdle runs at every turn of the loop, whatever the mode: agents whose
// preview call ended unanswered are let go, and when the campaign no longer
// previews (mode changed, paused, closed) its offers are taken back.
func (r *run) previewIdle(now time.Time, previewing bool) {
	r.previewEnded(now)
	if previewing {
		return
	}
	for agentID := range r.preview.offers {
		delete(r.preview.offers, agentID)
		r.e.events.publish(agentID, AgentEvent{Kind: EventPreview, At: now})
	}
}

// previewEnded lets go of agents whose preview call ended before it was put
// through (no answer, busy, refused by the trunk): ready again, told the outcome.
func (r *run) previewEnded(now time.Time) {
	for agentID, c := range r.preview.dialing {
		if cur, ok := r.calls[c.attempt.ID]; ok && cur == c && c.state != callConnected {
			continue
		}
		delete(r.preview.dialing, agentID)
		if c.state == callConnected {
			continue // a call like any other now: its end brings the wrap-up
		}
		r.e.agents.unreserve(agentID, c.attempt.ID)
		r.e.events.publish(agentID, AgentEvent{Kind: EventPreviewEnded, AttemptID: c.attempt.ID, Outcome: c.attempt.Outcome, At: now})
	}
}

// previewPop gathers what the agent sees of an offered contact.
func (r *run) previewPop(ctx context.Context, dc storage.DueContact, now time.Time) PreviewOffer {
	history, err := r.e.store.ListAttempts(ctx, dc.Contact.ID)
	if err != nil {
		r.e.log.Error("preview history", "contact", dc.Contact.ID, "err", err)
	}
	skips, err := r.e.store.ListSkips(ctx, dc.Contact.ID)
	if err != nil {
		r.e.log.Error("preview skips", "contact", dc.Contact.ID, "err", err)
	}
	return PreviewOffer{CampaignID: r.id, CampaignName: r.campaign.Name, Channel: r.campaign.Ladder[dc.Rung].Channel,
		Contact: dc.Contact, History: history, Skips: skips, Dispositions: r.campaign.Dispositions,
		SkipReasons: PreviewSkipReasons, Script: r.campaign.Script, OfferedAt: now, ExpiresAt: now.Add(r.e.cfg.PreviewHold)}
}

// previewDial places the call to the contact offered to agentID, with the agent
// reserved for it. It returns the attempt.
func (r *run) previewDial(ctx context.Context, agentID, contactID int64) (int64, error) {
	p := &r.preview
	p.init()
	if !p.offers[agentID].is(contactID) {
		return 0, fmt.Errorf("agent %d, contact %d: %w", agentID, contactID, ErrNoPreviewOffer)
	}
	if r.e.Draining() { // its offer is taken back at the loop's next turn
		return 0, fmt.Errorf("contact %d: %w", contactID, ErrDraining)
	}
	delete(p.offers, agentID)
	now := r.e.cfg.Now()
	dc, err := r.e.store.ContactPosition(ctx, contactID)
	if err != nil {
		return 0, fmt.Errorf("contact %d: %w", contactID, err)
	}
	if !r.placeable(dc, now) {
		return 0, fmt.Errorf("contact %d: rung %d cannot be tried now: %w", contactID, dc.Rung, ErrPreviewNotPlaced)
	}
	// The gate first, and only once, its agent reserved (no abandon can follow): a
	// number put on the do-not-call list since the offer is a refusal the agent is
	// told the reason of, not a contact that moved on.
	if err := r.admit(ctx, dc, now, true); err != nil {
		return 0, err
	}
	if dc.Contact.Status != campaigns.ContactPending {
		return 0, fmt.Errorf("contact %d is %s: %w", contactID, dc.Contact.Status, ErrPreviewNotPlaced)
	}
	ch := r.campaign.Ladder[dc.Rung].Channel
	if !r.e.agents.reserveAgent(agentID, r.id, ch, now) {
		return 0, fmt.Errorf("agent %d is not ready: %w", agentID, ErrAgentBusy)
	}
	placed := r.startAdmitted(r.life, now, dc)
	var c *call
	for _, cl := range r.calls {
		if cl.due.Contact.ID == contactID {
			c = cl
		}
	}
	if !placed || c == nil {
		r.e.agents.unreserve(agentID, 0)
		return 0, fmt.Errorf("contact %d: %w", contactID, ErrPreviewNotPlaced)
	}
	c.reserved = agentID
	r.e.agents.reservedFor(agentID, c.attempt.ID)
	p.dialing[agentID] = c
	return c.attempt.ID, nil
}

// previewSkip records the agent's skip of the contact offered to it.
func (r *run) previewSkip(ctx context.Context, agentID, contactID int64, s PreviewSkip) error {
	p := &r.preview
	p.init()
	if !p.offers[agentID].is(contactID) {
		return fmt.Errorf("agent %d, contact %d: %w", agentID, contactID, ErrNoPreviewOffer)
	}
	now := r.e.cfg.Now()
	skip := storage.PreviewSkip{ContactID: contactID, CampaignID: r.id, AgentID: agentID, Reason: s.Reason, Note: s.Note, At: now}
	ev := campaigns.Event{Kind: campaigns.EventPreviewSkipped, At: now.Add(r.e.cfg.PreviewSkipDelay)}
	if err := r.e.store.SkipContact(ctx, &skip, r.e.journeyMove(r.campaign.Ladder, ev, now, nil)); err != nil {
		return err
	}
	delete(p.offers, agentID)
	r.poke() // the next contact, at once
	return nil
}

// currentOffer is the offer made to agentID, if any.
func (r *run) currentOffer(agentID int64) (PreviewOffer, bool) {
	if o, ok := r.preview.offers[agentID]; ok {
		return o.pop, true
	}
	return PreviewOffer{}, false
}

// validSkip checks a skip's reason and note.
func validSkip(s PreviewSkip) (PreviewSkip, error) {
	s.Reason, s.Note = strings.TrimSpace(s.Reason), strings.TrimSpace(s.Note)
	switch {
	case !slices.Contains(PreviewSkipReasons, s.Reason):
		return s, fmt.Errorf("reason: must be one of %s: %w", strings.Join(PreviewSkipReasons, ", "), ErrBadSkipReason)
	case s.Reason == "other" && s.Note == "":
		return s, fmt.Errorf("note: required when the reason is other: %w", ErrBadSkipReason)
	case len(s.Note) > 500:
		return s, fmt.Errorf("note: at most 500 characters: %w", ErrBadSkipReason)
	}
	return s, nil
}

// Preview returns the contact offered to a preview agent, if any.
func (e *Engine) Preview(agentID int64) (PreviewOffer, bool) {
	var out PreviewOffer
	found := false
	e.eachAgentRun(agentID, func(r *run) bool {
		out, found = r.currentOffer(agentID)
		return found
	})
	return out, found
}

// PreviewDial has the engine call the contact offered to a preview agent, the agent
// reserved for the call. It returns the attempt; a refusal of the policy gate is a
// *campaigns.RefusedError with its reasons, as every refused action is.
func (e *Engine) PreviewDial(ctx context.Context, agentID, contactID int64) (int64, error) {
	var attemptID int64
	err := fmt.Errorf("agent %d, contact %d: %w", agentID, contactID, ErrNoPreviewOffer)
	e.eachAgentRun(agentID, func(r *run) bool {
		if !r.preview.offers[agentID].is(contactID) {
			return false // an agent of two preview campaigns has an offer in each
		}
		attemptID, err = r.previewDial(ctx, agentID, contactID)
		return true
	})
	return attemptID, err
}

// SkipPreview records a preview agent's skip of the contact offered to it; the
// next contact is offered at once.
func (e *Engine) SkipPreview(ctx context.Context, agentID, contactID int64, s PreviewSkip) error {
	s, err := validSkip(s)
	if err != nil {
		return err
	}
	err = fmt.Errorf("agent %d, contact %d: %w", agentID, contactID, ErrNoPreviewOffer)
	e.eachAgentRun(agentID, func(r *run) bool {
		if !r.preview.offers[agentID].is(contactID) {
			return false
		}
		err = r.previewSkip(ctx, agentID, contactID, s)
		return true
	})
	return err
}

// eachAgentRun runs fn in the loop of each run of the agent's campaigns, one after
// the other, until fn reports true.
func (e *Engine) eachAgentRun(agentID int64, fn func(r *run) bool) {
	a, ok := e.agents.Get(agentID)
	if !ok {
		return
	}
	e.mu.Lock()
	var runs []*run
	for _, id := range a.Campaigns {
		if r, ok := e.runs[id]; ok {
			runs = append(runs, r)
		}
	}
	e.mu.Unlock()
	for _, r := range runs {
		done := make(chan bool, 1)
		if !r.do(func() { done <- fn(r) }) {
			continue
		}
		select {
		case stop := <-done:
			if stop {
				return
			}
		case <-r.done:
		}
	}
}
