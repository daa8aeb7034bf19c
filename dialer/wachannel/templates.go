package wachannel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/waoutbox"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// Templates sends the whatsapp_template rung's messages.
type Templates struct {
	client *whatsapp.Client
	store  Store
}

// NewTemplates returns the whatsapp_template channel.
func NewTemplates(client *whatsapp.Client, store Store) *Templates {
	return &Templates{client: client, store: store}
}

// Place sends the template once, through the outbox: a send decided before a
// restart is made again only if its request provably never left, and one a
// crash left in doubt ends the attempt in_doubt until its status webhook
// settles it.
func (w *Templates) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	values, err := req.Contact.Values(req.Rung.Params)
	if err != nil {
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeSendFailed, Err: err}
	}
	msg := whatsapp.TemplateMessage{To: req.To, Name: req.Rung.Template, Language: req.Rung.Language, BodyParams: whatsapp.TextParams(values...)}
	m, err := waoutbox.Send(ctx, w.store, w.client, outboxTemplate, req.Key, msg, func(ctx context.Context) (whatsapp.SendResult, error) {
		return w.client.SendTemplate(ctx, req.Key, msg)
	})
	return templateAttempt(ctx, w.store, req, m, err)
}

// templateAttempt is the attempt of a template send whose outbox row is m, as
// the row's state says.
func templateAttempt(ctx context.Context, store Store, req channel.PlaceRequest, m storage.OutboxMessage, err error) (channel.Attempt, error) {
	now := time.Now()
	switch m.State {
	case storage.OutboxSent:
		// Meta's answer is the evidence, kept on the attempt even if the outbox's
		// own record failed (err): a restart then finds the row in doubt and its
		// status webhook settles it. The conversation is kept once per wamid.
		store.SaveWAMessage(ctx, storage.WAMessage{ContactID: req.Contact.ID, Direction: "out", WAID: m.ResultID,
			Phone: req.To, Type: "template", Body: req.Rung.Template, At: now})
		return endedAttempt(channel.AttemptEvent{Kind: channel.AttemptEnded, At: now, Outcome: campaigns.OutcomeSent, ExternalID: m.ResultID, Trunk: "whatsapp"}), nil
	case storage.OutboxInDoubt, storage.OutboxSending:
		// Its request may have reached Meta: the status webhook that carries the
		// key (biz_opaque_callback_data) settles it; sending again could send twice.
		return endedAttempt(channel.AttemptEvent{Kind: channel.AttemptEnded, At: now, Outcome: campaigns.OutcomeInDoubt,
			ExternalID: req.Key, Trunk: "whatsapp", Detail: "template in doubt (" + m.LastError + "): settled by its status webhook"}), nil
	case storage.OutboxFailed:
		if err == nil {
			err = errors.New(m.LastError)
			return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeSendFailed, Err: err}
		}
		return nil, &channel.OutcomeError{Outcome: errorOutcome(err), Err: err}
	}
	if err == nil {
		err = fmt.Errorf("template %s is %s", req.Key, m.State)
	}
	// Pending: the caller stopped before the request left.
	return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeInterrupted, Err: err}
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
