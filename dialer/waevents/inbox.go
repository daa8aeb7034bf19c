// Package waevents applies what WhatsApp's webhooks tell: template deliveries,
// call-permission answers, the contacts' replies (opt-out words among them) and
// their calls to the business. Events are kept durably before the webhook is
// answered, then applied in event-time order, so a crash in between loses none
// and an event applied twice changes nothing twice.
//
// The package depends on the engine only through Engine: the journey's moves,
// the opt-out, routing a contact's call to its run and waking the runs.
package waevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// Store is what applying webhook events needs of storage.
type Store interface {
	storage.WhatsAppStore
	storage.Outbox
	// MoveContact moves a contact as move says.
	MoveContact(ctx context.Context, contactID int64, move storage.MoveFunc) error
	// GetCampaign returns a campaign.
	GetCampaign(ctx context.Context, id int64) (campaigns.Campaign, error)
	// OptedOut reports whether a number opted out.
	OptedOut(ctx context.Context, phone string) (bool, error)
}

// Engine is what applying webhook events needs of the engine.
type Engine interface {
	// JourneyMove is the move of a contact through ev at now on ladder, as the
	// journey's table decides (ladder nil for events that need none).
	JourneyMove(ladder []campaigns.Rung, ev campaigns.Event, now time.Time) storage.MoveFunc
	// OptOut puts a person's numbers on the do-not-call list as their own wish
	// and stops their calls still ringing.
	OptOut(ctx context.Context, who storage.Actor, phones []string, source string) ([]string, error)
	// RouteInboundCall hands a contact's call to the business to its campaign's
	// run when the contact has an open callback.
	RouteInboundCall(ctx context.Context, ev whatsapp.Event) error
	// CampaignChanged wakes the runs: a granted permission queues a contact.
	CampaignChanged()
}

// Config tunes an Inbox.
type Config struct {
	// Client is the Cloud API client: business-initiated calls' events go to it,
	// opt-out confirmations go through it. Nil without a WhatsApp account.
	Client *whatsapp.Client
	// OptOutWords are the replies that put the person's number on the
	// do-not-call list.
	OptOutWords []string
	// OptOutReply is the one confirmation an opted-out person gets.
	OptOutReply string
	// Now is the clock.
	Now func() time.Time
	// Logger receives what could not be applied.
	Logger *slog.Logger
	// InDoubtWindow is how long a message a crash left in doubt waits for
	// WhatsApp's status before it is recorded not sent (default 1 h).
	InDoubtWindow time.Duration
	// DeferFirst is the first wait of a status that overtook its send's record
	// (default 250 ms); the wait doubles up to DeferMax (default 30 s), and the
	// status is given up DeferGiveUp after it was kept (default 10 min).
	DeferFirst, DeferMax, DeferGiveUp time.Duration
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.InDoubtWindow <= 0 {
		c.InDoubtWindow = time.Hour
	}
	if c.DeferFirst <= 0 {
		c.DeferFirst = 250 * time.Millisecond
	}
	if c.DeferMax <= 0 {
		c.DeferMax = 30 * time.Second
	}
	if c.DeferGiveUp <= 0 {
		c.DeferGiveUp = 10 * time.Minute
	}
	return c
}

// Inbox keeps WhatsApp's webhook events and applies them. It is the
// whatsapp.Sink the webhook handler delivers to.
type Inbox struct {
	store  Store
	engine Engine
	cfg    Config
	// kept is poked when events were kept, so they are applied at once.
	kept chan struct{}
}

// New returns an Inbox applying events to store and engine.
func New(store Store, engine Engine, cfg Config) *Inbox {
	return &Inbox{store: store, engine: engine, cfg: cfg.withDefaults(), kept: make(chan struct{}, 1)}
}

// HandleEvents implements whatsapp.Sink: the events are kept durably, then
// applied by Run, so the webhook is answered as soon as they are safe.
func (in *Inbox) HandleEvents(ctx context.Context, events []whatsapp.Event) error {
	kept := make([]storage.WebhookEvent, 0, len(events))
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		kept = append(kept, storage.WebhookEvent{Key: ev.Key, Type: string(ev.Type), Payload: b, At: ev.Time})
	}
	if _, err := in.store.SaveWebhookEvents(ctx, kept); err != nil {
		return err
	}
	select {
	case in.kept <- struct{}{}:
	default:
	}
	return nil
}

// Run applies kept webhook events, in event-time order, until ctx ends, and
// records not sent the messages in doubt that no status settled in the window.
func (in *Inbox) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	// The window is checked a few times per window, at least once a minute.
	checkEvery := min(in.cfg.InDoubtWindow/4, time.Minute)
	var checked time.Time
	for {
		var soonest time.Duration
		for {
			more, wait := in.applyPending(ctx)
			if wait > 0 && (soonest == 0 || wait < soonest) {
				soonest = wait
			}
			if !more {
				break
			}
		}
		if soonest > 0 {
			retry.Reset(soonest)
		}
		if now := in.cfg.Now(); now.Sub(checked) >= checkEvery {
			checked = now
			if err := in.recordUnconfirmed(ctx); err != nil && ctx.Err() == nil {
				in.cfg.Logger.Error("record messages in doubt past their window", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-in.kept:
		case <-t.C:
		case <-retry.C:
		}
	}
}

// applyPending applies one page of kept events and reports whether there may
// be more, and how soon the first event it deferred is due again (0: none).
// An event that cannot be applied yet is deferred, never held at the head of
// the queue: the events after it go on.
func (in *Inbox) applyPending(ctx context.Context) (more bool, retryIn time.Duration) {
	const page = 200
	pending, err := in.store.PendingWebhookEvents(ctx, page)
	if err != nil {
		if ctx.Err() == nil {
			in.cfg.Logger.Error("webhook events", "err", err)
		}
		return false, 0
	}
	keys := make([]string, 0, len(pending))
	for _, p := range pending {
		var ev whatsapp.Event
		if err := json.Unmarshal(p.Payload, &ev); err != nil {
			in.cfg.Logger.Error("kept webhook event unreadable", "key", p.Key, "err", err)
		} else if err := in.Apply(ctx, ev); errors.Is(err, errNotRecordedYet) {
			wait, ok := in.deferral(p)
			if ok {
				if err := in.store.DeferWebhookEvent(ctx, p.Key, in.cfg.Now().Add(wait)); err != nil {
					in.cfg.Logger.Error("defer webhook event", "key", p.Key, "err", err)
					return false, 0
				}
				if retryIn == 0 || wait < retryIn {
					retryIn = wait
				}
				continue
			}
			in.cfg.Logger.Warn("webhook event given up: what it applies to was never recorded", "key", p.Key,
				"kept_at", p.ReceivedAt.Format(time.RFC3339), "tries", p.Tries, "err", err)
		} else if err != nil {
			in.cfg.Logger.Error("apply webhook event", "key", p.Key, "err", err)
			return false, retryIn // kept: tried again on the next round
		}
		keys = append(keys, p.Key)
	}
	if err := in.store.MarkWebhookEventsApplied(ctx, keys); err != nil {
		in.cfg.Logger.Error("webhook events", "err", err)
		return false, retryIn
	}
	return len(pending) == page, retryIn
}

// deferral is how long an event that cannot be applied yet waits before its
// next try: DeferFirst doubling with each try up to DeferMax; false once it was
// kept longer than DeferGiveUp.
func (in *Inbox) deferral(p storage.WebhookEvent) (time.Duration, bool) {
	if in.cfg.Now().Sub(p.ReceivedAt) >= in.cfg.DeferGiveUp {
		return 0, false
	}
	return min(in.cfg.DeferFirst<<min(p.Tries, 30), in.cfg.DeferMax), true
}

// recordUnconfirmed records not sent the messages in doubt longer than the
// window: no status came, so nothing says WhatsApp has them, and they are
// never sent again (that could send them twice). A template's attempt goes from
// in_doubt to send_failed through the journey's table. A status that comes
// later still settles them sent (applyMessageStatus).
func (in *Inbox) recordUnconfirmed(ctx context.Context) error {
	const page = 200
	cause := fmt.Sprintf("no status from WhatsApp within %s: recorded not sent", shortDuration(in.cfg.InDoubtWindow))
	for {
		list, err := in.store.InDoubtBefore(ctx, in.cfg.Now().Add(-in.cfg.InDoubtWindow), page)
		if err != nil || len(list) == 0 {
			return err
		}
		for _, m := range list {
			// The attempt first: were the outbox's record made first, a crash in
			// between would leave an attempt in doubt that nothing finds again.
			if m.Kind == storage.OutboxKindTemplate {
				a, err := in.store.AttemptByExternalID(ctx, m.IdempotencyKey)
				switch {
				case err == nil:
					ev := campaigns.Event{Kind: campaigns.EventTemplateUnconfirmed}
					if _, err := in.store.SwapAttemptOutcome(ctx, a.ID, []string{string(campaigns.OutcomeInDoubt)},
						string(campaigns.OutcomeSendFailed), in.engine.JourneyMove(nil, ev, in.cfg.Now())); err != nil {
						return err
					}
				case !errors.Is(err, storage.ErrNotFound):
					return err
				}
			}
			done, err := in.store.RecordNotSent(ctx, m.ID, cause)
			if err != nil {
				return err
			}
			if done {
				in.cfg.Logger.Warn("WhatsApp message in doubt recorded not sent: no status came within the window",
					"kind", m.Kind, "key", m.IdempotencyKey, "in_doubt_since", m.InDoubtSince.Format(time.RFC3339), "window", in.cfg.InDoubtWindow)
			}
		}
		if len(list) < page {
			return nil
		}
	}
}

// Apply applies one event. Run applies the kept ones; an event applied again
// (after a crash between applying and marking it) changes nothing twice.
func (in *Inbox) Apply(ctx context.Context, ev whatsapp.Event) error {
	switch {
	case ev.Call != nil:
		if ev.Type == whatsapp.EventCallConnect && ev.Call.Direction == "USER_INITIATED" {
			if err := in.applyInboundCall(ctx, ev.Call, ev.Time); err != nil {
				return err
			}
			// The offer is for a call this process has not answered yet: the client
			// holds no call to apply it to.
			return in.engine.RouteInboundCall(ctx, ev)
		}
		if ev.Call.BizOpaque != "" {
			// A business-initiated call's webhook is WhatsApp's evidence that its
			// connect took effect: it settles a connect a crash left in doubt.
			if _, err := in.store.SettleByKey(ctx, ev.Call.BizOpaque, ev.Call.ID); err != nil {
				return err
			}
		}
		if in.cfg.Client != nil {
			return in.cfg.Client.HandleEvents(ctx, []whatsapp.Event{ev})
		}
	case ev.Status != nil:
		return in.applyMessageStatus(ctx, ev.Status)
	case ev.Permission != nil:
		return in.applyPermission(ctx, ev.Permission, ev.Time)
	case ev.Type == whatsapp.EventMessagesError:
		// Not about one message: kept with the other events (webhook_events),
		// and said where an operator looks.
		for _, e := range ev.Errors {
			in.cfg.Logger.Warn("whatsapp out-of-band error", "code", e.Code, "kind", e.Kind(), "title", e.Title,
				"details", e.Details, "phone_number_id", ev.PhoneNumberID, "key", ev.Key)
		}
		return nil
	case ev.Message != nil:
		return in.applyInbound(ctx, ev.Message, ev.Time)
	}
	return nil
}

// statusOutcomes are the attempt outcomes of a template's delivery statuses.
var statusOutcomes = map[string]campaigns.Outcome{"delivered": campaigns.OutcomeDelivered, "read": campaigns.OutcomeRead, "failed": campaigns.OutcomeSendFailed}

// statusEvents are the journey's events of a template's delivery statuses.
var statusEvents = map[campaigns.Outcome]campaigns.EventKind{campaigns.OutcomeDelivered: campaigns.EventTemplateDelivered,
	campaigns.OutcomeRead: campaigns.EventTemplateRead, campaigns.OutcomeSendFailed: campaigns.EventTemplateFailedLate}

// statusRank orders a template's delivery outcomes: a status is applied only
// over a lower one. sent < delivered < failed < read: failed is final over
// sent and delivered (an older "delivered" arriving after it changes nothing),
// and read outranks failed, for a read receipt proves delivery (Meta's status
// webhooks reference: read means the user opened the message, which it could
// not without receiving it; with several devices a failure on one may come
// after).
var statusRank = map[campaigns.Outcome]int{campaigns.OutcomeSent: 1, campaigns.OutcomeDelivered: 2,
	campaigns.OutcomeSendFailed: 3, campaigns.OutcomeRead: 4}

// errNotRecordedYet defers an event: what it applies to is not recorded yet.
var errNotRecordedYet = errors.New("not recorded yet")

// applyMessageStatus records a template's delivery on its attempt, and settles a
// send a crash left in doubt: any status of a message is WhatsApp's evidence
// that it accepted it. The status carries the send's idempotency key
// (biz_opaque_callback_data), which finds the outbox row and an attempt left
// in doubt, whose wamid the crash lost. A status of a template whose attempt
// does not carry it yet (the status overtook the run's record of the send) is
// deferred with errNotRecordedYet.
func (in *Inbox) applyMessageStatus(ctx context.Context, st *whatsapp.MessageStatus) error {
	var settled bool
	if st.BizOpaque != "" {
		var err error
		if settled, err = in.store.SettleByKey(ctx, st.BizOpaque, st.ID); err != nil {
			return err
		}
		if settled {
			in.cfg.Logger.Info("whatsapp message settled by its status webhook", "key", st.BizOpaque, "wamid", st.ID, "status", st.Status)
		}
	}
	a, err := in.store.AttemptByExternalID(ctx, st.ID)
	if err != nil && st.BizOpaque != "" {
		a, err = in.store.AttemptByExternalID(ctx, st.BizOpaque)
	}
	if errors.Is(err, storage.ErrNotFound) && st.BizOpaque != "" {
		if m, oerr := in.store.OutboxByKey(ctx, st.BizOpaque); oerr == nil && m.Kind == storage.OutboxKindTemplate {
			return fmt.Errorf("%s status of %s: %w", st.Status, st.BizOpaque, errNotRecordedYet)
		}
	}
	if err != nil {
		return nil // not a campaign's message (a permission request, a reply)
	}
	before := campaigns.Outcome(a.Outcome)
	if settled || before == campaigns.OutcomeInDoubt {
		// Evidence for a template in doubt, or recorded not sent when no status
		// came within the window: WhatsApp had it, so it was sent.
		ev := campaigns.Event{Kind: campaigns.EventTemplateSentLate}
		swapped, err := in.store.SwapAttemptOutcome(ctx, a.ID, []string{string(campaigns.OutcomeInDoubt), string(campaigns.OutcomeSendFailed)},
			string(campaigns.OutcomeSent), in.engine.JourneyMove(nil, ev, in.cfg.Now()))
		if err != nil {
			return err
		}
		if swapped {
			a.Outcome = string(campaigns.OutcomeSent)
			if before == campaigns.OutcomeSendFailed {
				in.cfg.Logger.Warn("late evidence: a status came for a template recorded not sent; recorded sent",
					"key", st.BizOpaque, "wamid", st.ID, "status", st.Status, "attempt", a.ID)
			}
		}
	}
	outcome, ok := statusOutcomes[st.Status]
	if !ok {
		return nil
	}
	// Statuses may arrive out of order (each webhook is retried on its own), so
	// one applies only when it outranks what is recorded: see statusRank.
	if statusRank[outcome] <= statusRank[campaigns.Outcome(a.Outcome)] {
		in.cfg.Logger.Info("whatsapp status outranked by the one recorded: not applied", "wamid", st.ID,
			"status", st.Status, "recorded", a.Outcome)
		return nil
	}
	if err := in.store.SetAttemptOutcome(ctx, a.ID, string(outcome)); err != nil {
		return err
	}
	// The template's statuses need no ladder: none moves the contact along it.
	ev := campaigns.Event{Kind: statusEvents[outcome]}
	return in.store.MoveContact(ctx, a.ContactID, in.engine.JourneyMove(nil, ev, in.cfg.Now()))
}

// applyPermission records a contact's answer to a call-permission request,
// given at at, through whatsapp.Permission.Apply: a reply older than the one
// recorded (webhooks may arrive out of order) changes nothing. A grant queues
// the contact for a WhatsApp call, inside its calling window as always, except
// one the person gave by calling the business (Meta's callback permission,
// source automatic): their own call is on the line, and its end (put through,
// or missed and called back) decides what the campaign owes them.
func (in *Inbox) applyPermission(ctx context.Context, p *whatsapp.PermissionReply, at time.Time) error {
	contacts, err := in.store.ContactsByWhatsApp(ctx, Phone(p.From))
	if err != nil {
		return err
	}
	for _, c := range contacts {
		rec, err := in.store.WhatsAppPermissionReply(ctx, c.ID)
		if err != nil {
			return err
		}
		before := whatsapp.Permission{Status: whatsapp.PermissionStatus(rec.State), UpdatedAt: rec.At, Expires: rec.Until}
		after := before.Apply(*p, at)
		if !after.UpdatedAt.Equal(at) {
			in.cfg.Logger.Info("whatsapp permission reply older than the one recorded: not applied", "contact", c.ID,
				"reply_at", at.Format(time.RFC3339), "recorded_at", rec.At.Format(time.RFC3339), "granted", p.Granted)
			continue
		}
		written, err := in.store.SetWhatsAppPermissionReply(ctx, c.ID, storage.PermissionReply{State: string(after.Status), Until: after.Expires, At: after.UpdatedAt})
		if err != nil {
			return err
		}
		if !written {
			in.cfg.Logger.Info("whatsapp permission reply older than a request or state recorded meanwhile: not applied", "contact", c.ID,
				"reply_at", at.Format(time.RFC3339))
			continue
		}
		if p.Source == whatsapp.PermissionSourceAutomatic {
			continue
		}
		camp, err := in.store.GetCampaign(ctx, c.CampaignID)
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
		if err := in.store.MoveContact(ctx, c.ID, in.engine.JourneyMove(camp.Ladder, ev, in.cfg.Now())); err != nil {
			return err
		}
	}
	in.engine.CampaignChanged()
	return nil
}

// applyInbound keeps a message a contact sent, on every campaign contact it is.
// A reply that is an opt-out word puts the number on the do-not-call list, stops
// its contacts in every campaign, and is confirmed once.
func (in *Inbox) applyInbound(ctx context.Context, m *whatsapp.InboundMessage, at time.Time) error {
	phone := Phone(m.From)
	if err := in.keep(ctx, storage.WAMessage{Direction: "in", WAID: m.ID, Phone: phone, Type: m.Type, Body: m.Text, At: at}); err != nil {
		return err
	}
	if !in.isOptOut(m.Text) {
		return nil
	}
	// Asked before the opt-out is stored, so that an event applied again after a
	// crash still finds its confirmation queued, and a second "SAIR" gets none.
	before, err := in.store.OptedOut(ctx, phone)
	if err != nil {
		return err
	}
	key := "opt-out-" + phone + "-" + m.ID
	if !before {
		if _, _, err := in.store.Enqueue(ctx, outboxOptOutReply, key, fmt.Appendf(nil, `{"to":%q}`, phone)); err != nil {
			return err
		}
	}
	if _, err := in.engine.OptOut(ctx, storage.Actor{Username: "whatsapp"}, []string{phone}, storage.OptOutWhatsAppReply); err != nil {
		return err
	}
	return in.optOutReply(ctx, phone, key)
}

// applyInboundCall keeps a call a contact made to the business in the contact's
// conversation, so the agent and the supervisor see that the contact tried to
// reach the campaign.
func (in *Inbox) applyInboundCall(ctx context.Context, c *whatsapp.CallEvent, at time.Time) error {
	return in.keep(ctx, storage.WAMessage{Direction: "in", WAID: c.ID, Phone: Phone(c.From), Type: "call", At: at})
}

// keep saves a message of a WhatsApp conversation on every campaign contact
// with the user's number, or alone when the number is no contact's.
func (in *Inbox) keep(ctx context.Context, msg storage.WAMessage) error {
	contacts, err := in.store.ContactsByWhatsApp(ctx, msg.Phone)
	if err != nil {
		return err
	}
	if len(contacts) == 0 {
		return in.store.SaveWAMessage(ctx, msg)
	}
	id := msg.WAID
	for i, c := range contacts {
		msg.ContactID = c.ID
		if i > 0 {
			// One message shown on each campaign's contact; wa_id stays unique.
			msg.WAID = fmt.Sprintf("%s#%d", id, c.CampaignID)
		}
		if err := in.store.SaveWAMessage(ctx, msg); err != nil {
			return err
		}
	}
	return nil
}

// shortDuration writes d without its zero units: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Phone is the E.164 number of a WhatsApp ID (WhatsApp writes it without "+").
func Phone(waID string) string {
	for len(waID) > 0 && waID[0] == '+' {
		waID = waID[1:]
	}
	return "+" + waID
}
