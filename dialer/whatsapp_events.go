package dialer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// whatsappSink keeps webhook events durably, then has the engine apply them: the
// webhook is answered as soon as they are safe, and a crash in between loses none.
type whatsappSink struct{ e *Engine }

// WhatsAppSink is where the WhatsApp webhook handler delivers its events.
func (e *Engine) WhatsAppSink() whatsapp.Sink { return whatsappSink{e} }

// HandleEvents implements whatsapp.Sink.
func (s whatsappSink) HandleEvents(ctx context.Context, events []whatsapp.Event) error {
	kept := make([]storage.WebhookEvent, 0, len(events))
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		kept = append(kept, storage.WebhookEvent{Key: ev.Key, Type: string(ev.Type), Payload: b, At: ev.Time})
	}
	if _, err := s.e.store.SaveWebhookEvents(ctx, kept); err != nil {
		return err
	}
	select {
	case s.e.webhooks <- struct{}{}:
	default:
	}
	return nil
}

// applyWebhooks applies kept webhook events, in event-time order, until ctx ends.
func (e *Engine) applyWebhooks(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for e.applyPendingWebhooks(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-e.webhooks:
		case <-t.C:
		}
	}
}

// applyPendingWebhooks applies one page of kept events and reports whether there
// may be more.
func (e *Engine) applyPendingWebhooks(ctx context.Context) bool {
	const page = 200
	pending, err := e.store.PendingWebhookEvents(ctx, page)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("webhook events", "err", err)
		}
		return false
	}
	keys := make([]string, 0, len(pending))
	for _, p := range pending {
		var ev whatsapp.Event
		if err := json.Unmarshal(p.Payload, &ev); err != nil {
			e.log.Error("kept webhook event unreadable", "key", p.Key, "err", err)
		} else if err := e.applyWebhook(ctx, ev); err != nil {
			e.log.Error("apply webhook event", "key", p.Key, "err", err)
			return false // kept: tried again on the next round
		}
		keys = append(keys, p.Key)
	}
	if err := e.store.MarkWebhookEventsApplied(ctx, keys); err != nil {
		e.log.Error("webhook events", "err", err)
		return false
	}
	return len(pending) == page
}

func (e *Engine) applyWebhook(ctx context.Context, ev whatsapp.Event) error {
	switch {
	case ev.Call != nil:
		if ev.Type == whatsapp.EventCallConnect && ev.Call.Direction == "USER_INITIATED" {
			if err := e.applyInboundCall(ctx, ev.Call, ev.Time); err != nil {
				return err
			}
			// The offer is for a call this process has not answered yet: the client
			// holds no call to apply it to.
			return e.routeInboundCall(ctx, ev)
		}
		if e.cfg.WhatsApp != nil {
			return e.cfg.WhatsApp.HandleEvents(ctx, []whatsapp.Event{ev})
		}
	case ev.Status != nil:
		return e.applyMessageStatus(ctx, ev.Status)
	case ev.Permission != nil:
		return e.applyPermission(ctx, ev.Permission, ev.Time)
	case ev.Message != nil:
		return e.applyInbound(ctx, ev.Message, ev.Time)
	}
	return nil
}

// statusOutcomes are the attempt outcomes of a template's delivery statuses.
var statusOutcomes = map[string]campaigns.Outcome{"delivered": campaigns.OutcomeDelivered, "read": campaigns.OutcomeRead, "failed": campaigns.OutcomeSendFailed}

// statusEvents are the journey's events of a template's delivery statuses.
var statusEvents = map[campaigns.Outcome]campaigns.EventKind{campaigns.OutcomeDelivered: campaigns.EventTemplateDelivered,
	campaigns.OutcomeRead: campaigns.EventTemplateRead, campaigns.OutcomeSendFailed: campaigns.EventTemplateFailedLate}

// applyMessageStatus records a template's delivery on its attempt, and settles a
// send a crash left in doubt.
func (e *Engine) applyMessageStatus(ctx context.Context, st *whatsapp.MessageStatus) error {
	if st.BizOpaque != "" {
		if err := e.store.MarkSentByKey(ctx, st.BizOpaque); err != nil {
			return err
		}
	}
	outcome, ok := statusOutcomes[st.Status]
	if !ok {
		return nil
	}
	a, err := e.store.AttemptByExternalID(ctx, st.ID)
	if err != nil {
		return nil // not a campaign's message (a permission request, a reply)
	}
	// Statuses may arrive out of order: read outranks delivered, failure is final.
	if campaigns.Outcome(a.Outcome) == campaigns.OutcomeRead && outcome == campaigns.OutcomeDelivered {
		return nil
	}
	if err := e.store.SetAttemptOutcome(ctx, a.ID, string(outcome)); err != nil {
		return err
	}
	// The template's statuses need no ladder: none moves the contact along it.
	ev := campaigns.Event{Kind: statusEvents[outcome]}
	return e.store.MoveContact(ctx, a.ContactID, e.journeyMove(nil, ev, e.cfg.Now(), nil))
}

// applyPermission records a contact's answer to a call-permission request; a grant
// queues the contact for a WhatsApp call, inside its calling window as always.
func (e *Engine) applyPermission(ctx context.Context, p *whatsapp.PermissionReply, at time.Time) error {
	contacts, err := e.store.ContactsByWhatsApp(ctx, "+"+trimPlus(p.From))
	if err != nil {
		return err
	}
	state := storage.PermissionDenied
	if p.Granted {
		state = storage.PermissionGranted
	}
	for _, c := range contacts {
		if err := e.store.SetWhatsAppPermission(ctx, c.ID, state, p.Expires); err != nil {
			return err
		}
		camp, err := e.store.GetCampaign(ctx, c.CampaignID)
		if err != nil {
			return err
		}
		ev := campaigns.Event{Kind: campaigns.EventPermissionDenied}
		if p.Granted {
			rung := slices.IndexFunc(camp.Ladder, func(r campaigns.Rung) bool { return r.Channel == campaigns.ChannelWhatsAppCall })
			if rung < 0 {
				continue // no WhatsApp call on this campaign's ladder
			}
			ev = campaigns.Event{Kind: campaigns.EventPermissionGranted, Rung: rung}
		}
		if err := e.store.MoveContact(ctx, c.ID, e.journeyMove(camp.Ladder, ev, e.cfg.Now(), nil)); err != nil {
			return err
		}
	}
	e.CampaignChanged()
	return nil
}

// applyInbound keeps a message a contact sent, on every campaign contact it is.
func (e *Engine) applyInbound(ctx context.Context, m *whatsapp.InboundMessage, at time.Time) error {
	return e.keepInbound(ctx, storage.WAMessage{Direction: "in", WAID: m.ID, Phone: "+" + trimPlus(m.From), Type: m.Type, Body: m.Text, At: at})
}

// applyInboundCall keeps a call a contact made to the business in the contact's
// conversation, so the agent and the supervisor see that the contact tried to
// reach the campaign.
func (e *Engine) applyInboundCall(ctx context.Context, c *whatsapp.CallEvent, at time.Time) error {
	return e.keepInbound(ctx, storage.WAMessage{Direction: "in", WAID: c.ID, Phone: "+" + trimPlus(c.From), Type: "call", At: at})
}

// keepInbound saves what a WhatsApp user sent on every campaign contact with the
// user's number, or alone when the number is no contact's.
func (e *Engine) keepInbound(ctx context.Context, msg storage.WAMessage) error {
	contacts, err := e.store.ContactsByWhatsApp(ctx, msg.Phone)
	if err != nil {
		return err
	}
	if len(contacts) == 0 {
		return e.store.SaveWAMessage(ctx, msg)
	}
	id := msg.WAID
	for i, c := range contacts {
		msg.ContactID = c.ID
		if i > 0 {
			// One message shown on each campaign's contact; wa_id stays unique.
			msg.WAID = fmt.Sprintf("%s#%d", id, c.CampaignID)
		}
		if err := e.store.SaveWAMessage(ctx, msg); err != nil {
			return err
		}
	}
	return nil
}

func trimPlus(s string) string {
	for len(s) > 0 && s[0] == '+' {
		s = s[1:]
	}
	return s
}
