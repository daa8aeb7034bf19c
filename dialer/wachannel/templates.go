package wachannel

import (
	"context"
	"errors"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// Templates sends the whatsapp_template rung's messages.
type Templates struct {
	client *whatsapp.Client
	store  Store
	// pace admits sends to their outbox claim at the client's rate, and slots bounds
	// the sends claimed and not yet settled (one second's worth): a send claimed
	// before a crash is never made again, so claims must not queue up ahead of the
	// rate limit, or a crash would leave every queued message unsent.
	pace  *whatsapp.TokenBucket
	slots chan struct{}
}

// NewTemplates returns the whatsapp_template channel.
func NewTemplates(client *whatsapp.Client, store Store) *Templates {
	cfg := client.Config()
	return &Templates{client: client, store: store,
		pace:  whatsapp.NewTokenBucket(nil, cfg.MessagesPerSecond, cfg.Burst),
		slots: make(chan struct{}, max(cfg.Burst, int(cfg.MessagesPerSecond)))}
}

// Place sends the template once: a send decided before a restart is not made again.
func (w *Templates) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	values, err := req.Contact.Values(req.Rung.Params)
	if err != nil {
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeSendFailed, Err: err}
	}
	msg := whatsapp.TemplateMessage{To: req.To, Name: req.Rung.Template, Language: req.Rung.Language, BodyParams: whatsapp.TextParams(values...)}
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := w.pace.Wait(ctx); err != nil {
		return nil, err
	}
	m, claimed, err := storage.ClaimOnce(ctx, w.store, outboxTemplate, req.Key, msg)
	if err != nil {
		return nil, err
	}
	if !claimed {
		if m.State == "failed" {
			return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeSendFailed, Err: errors.New(m.LastError)}
		}
		// Sent, or in doubt after a crash: its status webhook, if Meta has it,
		// settles the outbox; sending again could only send it twice.
		return endedAttempt(channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), Outcome: campaigns.OutcomeSent, Detail: "template " + m.State + " before a restart: not sent again"}), nil
	}
	res, err := w.client.SendTemplate(ctx, req.Key, msg)
	storage.Settle(ctx, w.store, m, err)
	if err != nil {
		return nil, &channel.OutcomeError{Outcome: errorOutcome(err), Err: err}
	}
	w.store.SaveWAMessage(ctx, storage.WAMessage{ContactID: req.Contact.ID, Direction: "out", WAID: res.MessageID,
		Phone: req.To, Type: "template", Body: req.Rung.Template, At: time.Now()})
	return endedAttempt(channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), Outcome: campaigns.OutcomeSent, ExternalID: res.MessageID, Trunk: "whatsapp"}), nil
}

// endedAttempt is an attempt that is over as soon as it starts: a message sent.
func endedAttempt(ev channel.AttemptEvent) channel.Attempt {
	l := &doneAttempt{events: make(chan channel.AttemptEvent, 1)}
	l.events <- ev
	close(l.events)
	return l
}

type doneAttempt struct{ events chan channel.AttemptEvent }

func (l *doneAttempt) Events() <-chan channel.AttemptEvent { return l.events }
func (l *doneAttempt) Hangup(context.Context) error        { return nil }
