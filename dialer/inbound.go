package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"log/slog"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/waevents"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// A person's own WhatsApp call to the business (user-initiated) goes to the
// agents: to its campaign's (the contact with an open callback first, else the
// newest contact of a running campaign with that number), else to the default
// inbound queue's (Config.InboundCampaign). The run answers it at once, as an
// inbound attempt that claims the contact (so nothing dials a person already on
// the line), and puts it through to the next free agent with the screen-pop.
// While every agent is busy the caller is on hold (Config.InboundHold), for up
// to Config.InboundMaxWait; then they hear the apology (Config.InboundSorry),
// the call is hung up, and the attempt ends inbound_missed, whose journey row
// makes the contact the campaign's next call.

// inboundRingLimit is how old a user's call offer may be and still be answered:
// Meta lets the business answer for "about 30 to 60 seconds" after the connect
// webhook (calling/reference, Pre-accept call), so an offer is tried until the
// longest of that window; an accept that comes after Meta ended the call is
// refused, and the attempt ends.
const inboundRingLimit = 60 * time.Second

// Answerer is a channel that also takes the calls contacts make to the business:
// Answer returns the channel whose Place accepts the call offer.
type Answerer interface {
	Answer(offer whatsapp.Event) channel.Channel
}

// inboundCall is a WhatsApp call a person made to the business: the connect
// webhook with the user's SDP offer, and the contact it is taken for.
type inboundCall struct {
	due   storage.DueContact
	offer whatsapp.Event
}

// RouteInboundCall hands a person's WhatsApp call to the run of the campaign
// whose agents take it. A call no running campaign takes (its number unknown
// and no inbound queue configured) stays unanswered and shows as missed in the
// contact's conversation.
func (w waEngine) RouteInboundCall(ctx context.Context, ev whatsapp.Event) error {
	e := w.Engine
	if e.cfg.WhatsApp == nil {
		return nil
	}
	// A connect kept from before a restart (or applied this late) is a call
	// that has long stopped ringing: said, since a customer went unanswered.
	if age := e.cfg.Now().Sub(ev.Time); age > inboundRingLimit {
		e.log.Warn("WhatsApp call to the business left unanswered: its connect came too late to answer", "call", ev.Call.ID, "age", age.Round(time.Second))
		return nil
	}
	phone := waevents.Phone(ev.Call.From)
	r, dc, err := e.inboundRun(ctx, phone)
	if err != nil || r == nil {
		if err == nil {
			e.log.Info("WhatsApp call to the business left unanswered: no running campaign takes it", "call", ev.Call.ID)
		}
		return err
	}
	select {
	case r.updates <- callUpdate{inbound: &inboundCall{due: dc, offer: ev}}:
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// inboundRun finds the run whose agents take a call from phone, and the contact
// the call is for.
func (e *Engine) inboundRun(ctx context.Context, phone string) (*run, storage.DueContact, error) {
	runFor := func(campaignID int64) *run {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.runs[campaignID]
	}
	// The contact an agent promised to call back comes first.
	dc, ok, err := e.store.CallbackByWhatsApp(ctx, phone)
	if err != nil {
		return nil, dc, err
	}
	if r := runFor(dc.Contact.CampaignID); ok && r != nil {
		return r, dc, nil
	}
	known, err := e.store.ContactsByWhatsApp(ctx, phone)
	if err != nil {
		return nil, dc, err
	}
	for _, ct := range slices.Backward(known) {
		r := runFor(ct.CampaignID)
		if r == nil || ct.Status == campaigns.ContactDoNotCall {
			continue
		}
		dc, err := e.store.ContactPosition(ctx, ct.ID)
		return r, dc, err
	}
	if e.cfg.InboundCampaign == 0 {
		return nil, dc, nil
	}
	r := runFor(e.cfg.InboundCampaign)
	if r == nil {
		return nil, dc, nil
	}
	dc, err = e.store.InboundContact(ctx, e.cfg.InboundCampaign, phone)
	return r, dc, err
}

// answerInbound answers a routed WhatsApp call as an inbound attempt when the
// campaign is running: from the answer on, it is queued, connected and ended by
// the call's state machine (callQueued, callMissing).
func (r *run) answerInbound(ctx context.Context, in inboundCall) {
	c := r.campaign
	log := r.e.log.With("campaign", r.id, "contact", in.due.Contact.ID, "call", in.offer.Call.ID)
	answerer, ok := r.e.channels[campaigns.ChannelWhatsAppCall].(Answerer)
	if c.State != campaigns.StateRunning || r.stopping || !ok {
		log.Info("WhatsApp call to the business left unanswered", "campaign_state", c.State, "stopping", r.stopping, "answers_calls", ok)
		return
	}
	// The attempt is on the campaign's WhatsApp call rung; a campaign without
	// one still takes the call (its agents are the queue), on the contact's rung.
	rung := slices.IndexFunc(c.Ladder, func(g campaigns.Rung) bool { return g.Channel == campaigns.ChannelWhatsAppCall })
	step := campaigns.Rung{Channel: campaigns.ChannelWhatsAppCall}
	if rung >= 0 {
		step = c.Ladder[rung]
	} else {
		rung = min(in.due.Rung, max(len(c.Ladder)-1, 0))
	}
	due := in.due
	attempt, err := r.e.store.StartInboundAttempt(ctx, due.Contact.ID, campaigns.ChannelWhatsAppCall, rung)
	if err != nil {
		// A conflict is an attempt of the contact under way (our call to them
		// crossed theirs) or a do-not-call contact: not taken twice.
		log.Warn("WhatsApp call to the business left unanswered", "err", err)
		return
	}
	now := r.e.cfg.Now()
	cl := r.newCall(attempt, due, step, now)
	cl.inbound = true
	callCtx, cancel := context.WithCancel(ctx)
	cl.cancel = cancel
	req := channel.PlaceRequest{AttemptID: attempt.ID, Contact: due.Contact, Rung: step, To: due.Contact.WhatsAppNumber(),
		Key: "inbound-" + in.offer.Call.ID}
	cl.log.Info("WhatsApp call to the business answered for the agents")
	go r.follow(callCtx, answerer.Answer(in.offer), req, due.CallbackAgentID, true, cl.log)
}

// hold queues an inbound caller answered at at for the next free agent, with the
// hold tone until one is free or the longest wait is over.
func (r *run) hold(ctx context.Context, c *call, at time.Time) {
	c.deadline = at.Add(r.e.cfg.InboundMaxWait)
	r.fast.Store(false) // until this caller has an agent
	r.queued = append(r.queued, c)
	if mc, ok := c.leg.(MediaCarrier); ok && r.e.cfg.InboundHold != nil {
		if customer, err := mc.MediaLeg(); err == nil {
			playCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for playCtx.Err() == nil {
					if _, err := r.e.cfg.InboundHold.Play(playCtx, customer); err != nil {
						return
					}
				}
			}()
			// The tone stops before an agent's audio takes the leg: a frame at most.
			c.holding = func() { stop(); <-done }
		}
	}
	r.connectWaiting(ctx, at)
}

// connectQueued gives each inbound caller on hold, in arrival order, the
// longest-idle ready agent (the callback's agent first).
func (r *run) connectQueued(ctx context.Context, now time.Time) {
	for len(r.queued) > 0 {
		c := r.queued[0]
		agent, ok := r.e.agents.reserve(r.id, c.attempt.ID, c.rung.Channel, c.due.CallbackAgentID, now)
		if !ok {
			return
		}
		r.feed(ctx, c, callEvent{kind: evAgentFree, at: now, agent: agent.ID}, channel.AttemptEvent{})
		if c.state != callConnected {
			r.removeWaiting(c)
			r.e.agents.unreserve(agent.ID, c.attempt.ID) // not taken (a pair step does not list)
		}
	}
}

// expireQueued ends the wait of inbound callers on hold past the longest wait.
func (r *run) expireQueued(ctx context.Context, now time.Time) {
	for len(r.queued) > 0 && !r.queued[0].deadline.After(now) {
		c := r.queued[0]
		r.feed(ctx, c, callEvent{kind: evPatienceExpired, at: now}, channel.AttemptEvent{})
		r.removeWaiting(c) // left already, unless a pair step does not list kept it
	}
}

// nextDeadline is when the loop must next wake for a waiting person: the first
// answered person's safe-harbour message, or the first inbound caller's longest
// wait.
func (r *run) nextDeadline() (time.Time, bool) {
	var next time.Time
	if len(r.waiting) > 0 {
		next = r.waiting[0].deadline.Add(-safeHarbourLead)
	}
	if len(r.queued) > 0 && (next.IsZero() || r.queued[0].deadline.Before(next)) {
		next = r.queued[0].deadline
	}
	return next, !next.IsZero()
}

// sorry plays the apology to an inbound caller nobody took, then hangs up. It
// runs on a goroutine of its own.
func (r *run) sorry(ctx context.Context, leg channel.Attempt, log *slog.Logger) {
	if mc, ok := leg.(MediaCarrier); ok && r.e.cfg.InboundSorry != nil {
		if customer, err := mc.MediaLeg(); err == nil {
			if _, err := r.e.cfg.InboundSorry.Play(ctx, customer); err != nil {
				log.Debug("inbound apology", "err", err)
			}
		}
	}
	leg.Hangup(context.WithoutCancel(ctx))
}

// inboundLeg is an inbound call's leg whose audio toward the caller is one RTP
// stream (media.ContinuousLeg) through the hold tone, the agent's bridge and the
// apology: each numbers its packets afresh, and WhatsApp's SRTP would drop those
// that seem older than the last.
type inboundLeg struct {
	channel.Attempt
	mu       sync.Mutex
	customer *media.ContinuousLeg
}

// MediaLeg implements MediaCarrier.
func (l *inboundLeg) MediaLeg() (media.Leg, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.customer != nil {
		return l.customer, nil
	}
	mc, ok := l.Attempt.(MediaCarrier)
	if !ok {
		return nil, errors.New("inbound call without media")
	}
	leg, err := mc.MediaLeg()
	if err != nil {
		return nil, err
	}
	l.customer = media.NewContinuousLeg(leg)
	return l.customer, nil
}

// inboundLegOf wraps an inbound call's leg once: leg is the one it holds already,
// or a new one.
func inboundLegOf(held, leg channel.Attempt) channel.Attempt {
	if il, ok := held.(*inboundLeg); ok && il.Attempt == leg {
		return held
	}
	return &inboundLeg{Attempt: leg}
}

// waitedDetail is the detail of an inbound attempt whose caller left the queue
// for the apology after waiting waited (storage.InboundQueues reads waited_ms).
func waitedDetail(waited time.Duration) []byte {
	b, _ := json.Marshal(map[string]any{"reason": "no agent within the longest wait", "waited_ms": waited.Milliseconds()})
	return b
}

// QueueView is a campaign's inbound queue now: the callers on hold.
type QueueView struct {
	CampaignID int64
	// Waiting callers are on hold; Oldest is when the first of them was answered.
	Waiting int
	Oldest  time.Time
}

// publishQueue refreshes the queue's view for the wallboard when it changed.
func (r *run) publishQueue(now time.Time) {
	v := QueueView{CampaignID: r.id, Waiting: len(r.queued)}
	if len(r.queued) > 0 {
		v.Oldest = r.queued[0].answered
	}
	if old := r.queueView.Load(); old != nil && *old == v {
		return
	}
	r.queueView.Store(&v)
}

// InboundQueue is one campaign's inbound queue on the wallboard.
type InboundQueue struct {
	CampaignID   int64  `json:"campaign_id,string"`
	CampaignName string `json:"campaign_name"`
	// Waiting callers are on hold now; LongestWaitingSeconds is how long the
	// first of them has waited.
	Waiting               int     `json:"waiting"`
	LongestWaitingSeconds float64 `json:"longest_waiting_seconds"`
	// Answered and Abandoned count today's calls put through to an agent and
	// those nobody took; LongestWaitSeconds is the longest wait today, of
	// those and of the callers waiting now.
	Answered           int     `json:"answered"`
	Abandoned          int     `json:"abandoned"`
	LongestWaitSeconds float64 `json:"longest_wait_seconds"`
}

// InboundQueues are the inbound queues of the running campaigns, and of any
// campaign that took an inbound call today (midnight in loc), by campaign ID.
func (e *Engine) InboundQueues(ctx context.Context, loc *time.Location) ([]InboundQueue, error) {
	now := e.cfg.Now().In(loc)
	today, err := e.store.InboundQueues(ctx, time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc))
	if err != nil {
		return nil, err
	}
	byID := map[int64]*InboundQueue{}
	queue := func(id int64) *InboundQueue {
		q, ok := byID[id]
		if !ok {
			q = &InboundQueue{CampaignID: id}
			byID[id] = q
		}
		return q
	}
	e.mu.Lock()
	for id, r := range e.runs {
		q := queue(id)
		if v := r.queueView.Load(); v != nil && v.Waiting > 0 {
			q.Waiting = v.Waiting
			q.LongestWaitingSeconds = max(now.Sub(v.Oldest).Seconds(), 0)
		}
	}
	e.mu.Unlock()
	for id, s := range today {
		q := queue(id)
		q.Answered, q.Abandoned, q.LongestWaitSeconds = s.Answered, s.Abandoned, s.LongestWait.Seconds()
	}
	out := make([]InboundQueue, 0, len(byID))
	for _, q := range byID {
		q.LongestWaitSeconds = max(q.LongestWaitSeconds, q.LongestWaitingSeconds)
		if c, err := e.store.GetCampaign(ctx, q.CampaignID); err == nil {
			q.CampaignName = c.Name
		}
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b InboundQueue) int { return int(a.CampaignID - b.CampaignID) })
	return out, nil
}
