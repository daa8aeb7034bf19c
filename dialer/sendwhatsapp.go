package dialer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/waoutbox"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// Errors of SendWhatsApp.
var (
	// ErrWhatsAppNotConfigured means the engine has no WhatsApp account.
	ErrWhatsAppNotConfigured = errors.New("no WhatsApp account is configured")
	// ErrNoTemplateRung means the contact's campaign names no template to send.
	ErrNoTemplateRung = errors.New("the campaign has no whatsapp_template rung")
	// ErrSendInDoubt means the message's request may have reached WhatsApp but
	// its answer was lost (a crash, a broken connection): it is not sent again,
	// and its status webhook settles it.
	ErrSendInDoubt = errors.New("the message may have been sent: it waits for WhatsApp's status report")
	// ErrSendFailed means an earlier request with the same key failed; the
	// retry returns that first result and sends nothing.
	ErrSendFailed = errors.New("the message was not sent")
)

// SendWhatsApp sends a contact, from an agent, a free-form text (inside the 24 h
// window the contact's last message opened) or, with text empty, the template of
// the campaign's template rung. key makes a retried request send nothing twice,
// across restarts too: the send goes through the outbox under it, and a retry
// returns the first result.
// The message joins the contact's conversation. The policy gate rules first: a
// refusal is a *campaigns.RefusedError.
func (e *Engine) SendWhatsApp(ctx context.Context, contactID int64, text, key string) (storage.WAMessage, error) {
	client := e.cfg.WhatsApp
	if client == nil {
		return storage.WAMessage{}, ErrWhatsAppNotConfigured
	}
	ct, err := e.store.GetContact(ctx, contactID)
	if err != nil {
		return storage.WAMessage{}, err
	}
	to := ct.WhatsAppNumber()
	c, err := e.store.GetCampaign(ctx, ct.CampaignID)
	if err != nil {
		return storage.WAMessage{}, err
	}
	action := campaigns.ActionTemplate
	if text != "" {
		action = campaigns.ActionText
	}
	if _, err := e.gate(ctx, &c, ct, action, e.cfg.Now(), false); err != nil {
		return storage.WAMessage{}, err
	}
	msg := storage.WAMessage{ContactID: ct.ID, Direction: "out", Phone: to, At: time.Now()}
	// The send is this node's: if it dies with the send claimed, the others settle it.
	ctx = storage.WithNode(ctx, e.NodeID())
	select {
	case <-e.outboxReady:
	case <-ctx.Done():
		return msg, fmt.Errorf("waiting for the outbox's recovery: %w", ctx.Err())
	}
	key = fmt.Sprintf("agent-contact-%d-%s", ct.ID, key)
	var send waoutbox.SendFunc
	if text != "" {
		msg.Type, msg.Body = "text", text
		send = func(ctx context.Context) (whatsapp.SendResult, error) { return client.SendText(ctx, key, to, text) }
	} else {
		i := slices.IndexFunc(c.Ladder, func(r campaigns.Rung) bool { return r.Channel == campaigns.ChannelWhatsAppTemplate })
		if i < 0 {
			return msg, fmt.Errorf("campaign %d: %w", c.ID, ErrNoTemplateRung)
		}
		rung := c.Ladder[i]
		values, verr := ct.Values(rung.Params)
		if verr != nil {
			return msg, verr
		}
		msg.Type, msg.Body = "template", rung.Template
		tm := whatsapp.TemplateMessage{To: to, Name: rung.Template, Language: rung.Language, BodyParams: whatsapp.TextParams(values...)}
		send = func(ctx context.Context) (whatsapp.SendResult, error) { return client.SendTemplate(ctx, key, tm) }
	}
	m, err := waoutbox.Send(ctx, e.store, client, outboxAgentMessage, key, msg, send)
	switch m.State {
	case storage.OutboxSent:
		msg.WAID = m.ResultID
		// A retry finds the first send's message kept under its wamid.
		return msg, e.store.SaveWAMessage(ctx, msg)
	case storage.OutboxInDoubt, storage.OutboxSending:
		return msg, fmt.Errorf("contact %d, key %s: %w", ct.ID, key, ErrSendInDoubt)
	}
	if err == nil {
		err = fmt.Errorf("%w: %s", ErrSendFailed, m.LastError)
	}
	return msg, err
}

// outboxAgentMessage is the outbox kind of an agent's message to a contact.
const outboxAgentMessage = "whatsapp.agent_message"
