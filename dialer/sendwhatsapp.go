package dialer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// Errors of SendWhatsApp.
var (
	// ErrWhatsAppNotConfigured means the engine has no WhatsApp account.
	ErrWhatsAppNotConfigured = errors.New("no WhatsApp account is configured")
	// ErrNoTemplateRung means the contact's campaign names no template to send.
	ErrNoTemplateRung = errors.New("the campaign has no whatsapp_template rung")
)

// SendWhatsApp sends a contact, from an agent, a free-form text (inside the 24 h
// window the contact's last message opened) or, with text empty, the template of
// the campaign's template rung. key makes a retried request send nothing twice.
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
	key = fmt.Sprintf("agent-contact-%d-%s", ct.ID, key)
	var res whatsapp.SendResult
	if text != "" {
		msg.Type, msg.Body = "text", text
		res, err = client.SendText(ctx, key, to, text)
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
		res, err = client.SendTemplate(ctx, key, whatsapp.TemplateMessage{To: to, Name: rung.Template, Language: rung.Language, BodyParams: whatsapp.TextParams(values...)})
	}
	if err != nil {
		return msg, err
	}
	msg.WAID = res.MessageID
	return msg, e.store.SaveWAMessage(ctx, msg)
}
