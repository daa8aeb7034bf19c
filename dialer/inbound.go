package dialer

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/waevents"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// inboundRingLimit is how old a user's call offer may be and still be answered.
const inboundRingLimit = 30 * time.Second

// Answerer is a channel that also takes the calls contacts make to the business:
// Answer returns the channel whose Place accepts the call offer.
type Answerer interface {
	Answer(offer whatsapp.Event) channel.Channel
}

// inboundCall is a WhatsApp call a contact with an open callback made to the
// business: the connect webhook with the user's SDP offer.
type inboundCall struct {
	due   storage.DueContact
	offer whatsapp.Event
}

// RouteInboundCall hands a contact's WhatsApp call to its campaign's run when the
// contact has an open callback: the contact is calling back the call centre that
// promised to call, so an agent takes it (the callback's agent first). Any other
// call to the business stays unanswered and shows as missed in the contact's
// conversation.
func (w waEngine) RouteInboundCall(ctx context.Context, ev whatsapp.Event) error {
	e := w.Engine
	// A connect kept from before a restart is a call that has long stopped ringing.
	if e.cfg.WhatsApp == nil || e.cfg.Now().Sub(ev.Time) > inboundRingLimit {
		return nil
	}
	dc, ok, err := e.store.CallbackByWhatsApp(ctx, waevents.Phone(ev.Call.From))
	if err != nil || !ok {
		return err
	}
	e.mu.Lock()
	r := e.runs[dc.Contact.CampaignID]
	e.mu.Unlock()
	if r == nil {
		return nil
	}
	select {
	case r.updates <- callUpdate{inbound: &inboundCall{due: dc, offer: ev}}:
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// answerInbound answers a routed WhatsApp call as an attempt on the campaign's
// WhatsApp call rung, when the campaign is running and an agent is ready; from
// the answer on, it is connected, abandoned and bridged like any call.
func (r *run) answerInbound(ctx context.Context, in inboundCall) {
	c := r.campaign
	if c.State != campaigns.StateRunning || r.stopping || !r.e.agents.readyFor(r.id) {
		r.e.log.Info("contact's WhatsApp call left unanswered", "campaign", r.id, "contact", in.due.Contact.ID,
			"campaign_state", c.State, "agent_ready", r.e.agents.readyFor(r.id))
		return
	}
	rung := slices.IndexFunc(c.Ladder, func(g campaigns.Rung) bool { return g.Channel == campaigns.ChannelWhatsAppCall })
	answerer, ok := r.e.channels[campaigns.ChannelWhatsAppCall].(Answerer)
	if rung < 0 || !ok {
		return // the campaign, or the engine, does not take WhatsApp calls
	}
	due := in.due
	if due.Rung != rung {
		due.Rung, due.RungAttempts = rung, 0
	}
	attempt, err := r.e.store.StartAttempt(ctx, due.Contact.ID, campaigns.ChannelWhatsAppCall, rung)
	if err != nil {
		if !errors.Is(err, storage.ErrConflict) { // a dial to the contact is already under way
			r.e.log.Error("start inbound attempt", "contact", due.Contact.ID, "err", err)
		}
		return
	}
	now := r.e.cfg.Now()
	cl := r.newCall(attempt, due, c.Ladder[rung], now)
	callCtx, cancel := context.WithCancel(ctx)
	cl.cancel = cancel
	req := channel.PlaceRequest{AttemptID: attempt.ID, Contact: due.Contact, Rung: c.Ladder[rung], To: due.Contact.WhatsAppNumber(),
		Key: "inbound-" + in.offer.Call.ID}
	cl.log.Info("contact's WhatsApp call answered for its callback")
	go r.follow(callCtx, answerer.Answer(in.offer), req, due.CallbackAgentID, true, cl.log)
}
