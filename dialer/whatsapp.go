package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// WhatsAppStore is what the WhatsApp rungs need from storage.
type WhatsAppStore interface {
	storage.Outbox
	storage.WhatsAppStore
}

// Kinds of side effects the WhatsApp rungs put in the outbox.
const (
	outboxCall       = "whatsapp.call"
	outboxTemplate   = "whatsapp.template"
	outboxPermission = "whatsapp.permission_request"
)

// whatsappOutcomes maps how a call that was not answered ended.
var whatsappOutcomes = map[whatsapp.CallOutcome]campaigns.Outcome{
	whatsapp.OutcomeRejected:  campaigns.OutcomeRejected,
	whatsapp.OutcomeNoAnswer:  campaigns.OutcomeNoAnswer,
	whatsapp.OutcomeFailed:    campaigns.OutcomeTrunkFault,
	whatsapp.OutcomeCancelled: campaigns.OutcomeInterrupted,
}

// errorOutcome maps a Graph API error to the ladder: the person's situation moves
// the contact on, a passing fault of the API tries again later.
func errorOutcome(err error) campaigns.Outcome {
	switch whatsapp.ErrorKind(err) {
	case whatsapp.KindNoPermission:
		return campaigns.OutcomeNoPermission
	case whatsapp.KindNotOnWhatsApp:
		return campaigns.OutcomeNotOnWhatsApp
	case whatsapp.KindThrottled, whatsapp.KindServer, whatsapp.KindNetwork:
		return campaigns.OutcomeTrunkFault
	case whatsapp.KindBadTemplate, whatsapp.KindOutsideWindow, whatsapp.KindInvalidRequest:
		return campaigns.OutcomeSendFailed
	}
	return campaigns.OutcomeChannelDown
}

// WhatsAppCalls places the whatsapp_call rung's attempts: business-initiated calls
// through the Cloud API, with Opus over WebRTC.
type WhatsAppCalls struct {
	client *whatsapp.Client
	store  WhatsAppStore
	// PermissionText is the body of the call-permission request sent to a contact
	// WhatsApp will not let the business call yet.
	permissionText string
	// gate is the engine's policy gate, asked before a permission request.
	gate func(ctx context.Context, contactID int64, action campaigns.ContactAction) error
}

// NewWhatsAppCalls returns the whatsapp_call channel.
func NewWhatsAppCalls(client *whatsapp.Client, store WhatsAppStore, permissionText string) *WhatsAppCalls {
	return &WhatsAppCalls{client: client, store: store, permissionText: permissionText}
}

// claim records a side effect in the outbox under key before it is made and claims
// it. It reports false when the key was decided before (a restart after the crash
// that interrupted it): then it must not be made again.
func claim(ctx context.Context, store storage.Outbox, kind, key string, payload any) (storage.OutboxMessage, bool, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return storage.OutboxMessage{}, false, err
	}
	if _, _, err := store.Enqueue(ctx, kind, key, b); err != nil {
		return storage.OutboxMessage{}, false, err
	}
	claimed, err := store.ClaimKey(ctx, key)
	if err != nil || claimed {
		m, gerr := store.OutboxByKey(ctx, key)
		return m, claimed, errors.Join(err, gerr)
	}
	m, err := store.OutboxByKey(ctx, key)
	return m, false, err
}

// settle records how a claimed side effect went.
func settle(ctx context.Context, store storage.Outbox, m storage.OutboxMessage, err error) {
	if err == nil {
		store.MarkSent(ctx, m.ID)
		return
	}
	store.MarkFailed(ctx, m.ID, err, time.Time{})
}

// Place starts a WhatsApp call, unless the contact's permission says WhatsApp would
// refuse it; then (and when WhatsApp does refuse it) a permission request goes out.
func (w *WhatsAppCalls) Place(ctx context.Context, req PlaceRequest) (Leg, error) {
	state, until, err := w.store.WhatsAppPermission(ctx, req.Contact.ID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if state == storage.PermissionGranted && !until.IsZero() && !until.After(now) {
		state = storage.PermissionUnknown // a temporary grant lapsed
	}
	if state == storage.PermissionRequested || state == storage.PermissionDenied {
		return nil, &OutcomeError{Outcome: campaigns.OutcomeNoPermission, Err: fmt.Errorf("call permission %s", state)}
	}
	m, claimed, err := claim(ctx, w.store, outboxCall, req.Key, map[string]string{"to": req.To})
	if err != nil {
		return nil, err
	}
	if !claimed {
		// Decided before a restart and perhaps placed: the phone may have rung.
		return nil, &OutcomeError{Outcome: campaigns.OutcomeNoAnswer, Err: fmt.Errorf("call %s was %s before a restart: not placed twice", req.Key, m.State)}
	}
	call, err := w.client.Dial(ctx, req.Key, req.To, whatsapp.DialOptions{RingTimeout: req.RingTimeout})
	settle(ctx, w.store, m, err)
	if err != nil {
		outcome := errorOutcome(err)
		if outcome == campaigns.OutcomeNoPermission {
			w.requestPermission(ctx, req)
		}
		return nil, &OutcomeError{Outcome: outcome, Err: err}
	}
	l := &waLeg{call: call, events: make(chan LegEvent, 8)}
	go l.follow()
	return l, nil
}

// requestPermission asks the contact for permission to call, once per refused
// call: with the campaign's template when it names one, else with an interactive
// request — and, when that falls outside the 24 h window, not at all (the
// template rung that follows still reaches the contact).
func (w *WhatsAppCalls) requestPermission(ctx context.Context, req PlaceRequest) {
	if w.gate != nil {
		if err := w.gate(ctx, req.Contact.ID, campaigns.ActionPermissionRequest); err != nil {
			return // refused (and kept in the contact's history), or unknown: not sent
		}
	}
	key := fmt.Sprintf("permission-contact-%d-%s", req.Contact.ID, req.Key)
	m, claimed, err := claim(ctx, w.store, outboxPermission, key, map[string]string{"to": req.To})
	if err != nil || !claimed {
		return
	}
	p := req.Permission
	text := p.Text
	if text == "" {
		text = w.permissionText
	}
	var res whatsapp.SendResult
	kind, body := "call_permission_request", text
	if p.Template != "" {
		kind, body = "template", p.Template
		res, err = w.client.SendTemplate(ctx, key, whatsapp.TemplateMessage{To: req.To, Name: p.Template, Language: p.Language})
	} else {
		res, err = w.client.RequestCallPermission(ctx, key, req.To, text)
	}
	settle(ctx, w.store, m, err)
	if err != nil {
		return
	}
	w.store.SetWhatsAppPermission(ctx, req.Contact.ID, storage.PermissionRequested, time.Time{})
	w.store.SaveWAMessage(ctx, storage.WAMessage{ContactID: req.Contact.ID, Direction: "out", WAID: res.MessageID,
		Phone: req.To, Type: kind, Body: body, At: time.Now()})
}

// waLeg follows a WhatsApp call for the engine.
type waLeg struct {
	call   *whatsapp.Call
	events chan LegEvent

	mu    sync.Mutex
	audio media.Leg
}

func (l *waLeg) Events() <-chan LegEvent { return l.events }

func (l *waLeg) Hangup(ctx context.Context) error { return l.call.Hangup(ctx) }

// MediaLeg returns the call's Opus audio.
func (l *waLeg) MediaLeg() (media.Leg, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.audio != nil {
		return l.audio, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	remote, err := l.call.RemoteTrack(ctx)
	if err != nil {
		return nil, err
	}
	l.audio = media.NewWebRTCLeg(remote, l.call.LocalTrack())
	return l.audio, nil
}

// follow turns the call's updates into leg events. The answer is reported once
// audio flows, so the agent is connected to a voice and not to ICE still checking.
func (l *waLeg) follow() {
	defer close(l.events)
	var answered bool
	for u := range l.call.Updates() {
		ev := LegEvent{At: u.Time, ExternalID: u.CallID, Trunk: "whatsapp"}
		switch u.Phase {
		case whatsapp.PhaseRinging:
			ev.Kind = LegRinging
		case whatsapp.PhaseAccepted:
			select {
			case <-l.call.MediaConnected():
			case <-l.call.Done():
			case <-time.After(5 * time.Second):
			}
			ev.Kind, answered = LegAnswered, true
		case whatsapp.PhaseEnded:
			ev.Kind, ev.HangupBy = LegEnded, "remote"
			if !answered {
				ev.Outcome = whatsappOutcomes[u.Outcome]
				if ev.Outcome == "" {
					ev.Outcome = campaigns.OutcomeTrunkFault
				}
			}
			if u.Err != nil {
				ev.Detail = u.Err.Error()
			}
			l.events <- ev
			return
		default:
			continue
		}
		l.events <- ev
	}
	// The updates ended without an end phase: the call is over all the same.
	l.events <- LegEvent{Kind: LegEnded, At: time.Now(), Outcome: campaigns.OutcomeTrunkFault}
}

// WhatsAppTemplates sends the whatsapp_template rung's messages.
type WhatsAppTemplates struct {
	client *whatsapp.Client
	store  WhatsAppStore
	// pace admits sends to their outbox claim at the client's rate, and slots bounds
	// the sends claimed and not yet settled (one second's worth): a send claimed
	// before a crash is never made again, so claims must not queue up ahead of the
	// rate limit, or a crash would leave every queued message unsent.
	pace  *whatsapp.TokenBucket
	slots chan struct{}
}

// NewWhatsAppTemplates returns the whatsapp_template channel.
func NewWhatsAppTemplates(client *whatsapp.Client, store WhatsAppStore) *WhatsAppTemplates {
	cfg := client.Config()
	return &WhatsAppTemplates{client: client, store: store,
		pace:  whatsapp.NewTokenBucket(nil, cfg.MessagesPerSecond, cfg.Burst),
		slots: make(chan struct{}, max(cfg.Burst, int(cfg.MessagesPerSecond)))}
}

// ErrMissingColumn means a template parameter names a column the contact lacks.
var ErrMissingColumn = errors.New("template parameter column missing")

// TemplateParams fills a template's body parameters from a contact's columns:
// "name", "phone" or any attribute of its import.
func TemplateParams(columns []string, c campaigns.Contact) ([]whatsapp.TemplateParam, error) {
	out := make([]whatsapp.TemplateParam, 0, len(columns))
	for _, col := range columns {
		var v string
		switch strings.ToLower(col) {
		case "name":
			v = c.Name
		case "phone":
			v = c.Phone
		default:
			var ok bool
			if v, ok = c.Attributes[col]; !ok {
				return nil, fmt.Errorf("%w: %q", ErrMissingColumn, col)
			}
		}
		out = append(out, whatsapp.TemplateParam{Text: v})
	}
	return out, nil
}

// Place sends the template once: a send decided before a restart is not made again.
func (w *WhatsAppTemplates) Place(ctx context.Context, req PlaceRequest) (Leg, error) {
	params, err := TemplateParams(req.Rung.Params, req.Contact)
	if err != nil {
		return nil, &OutcomeError{Outcome: campaigns.OutcomeSendFailed, Err: err}
	}
	msg := whatsapp.TemplateMessage{To: req.To, Name: req.Rung.Template, Language: req.Rung.Language, BodyParams: params}
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := w.pace.Wait(ctx); err != nil {
		return nil, err
	}
	m, claimed, err := claim(ctx, w.store, outboxTemplate, req.Key, msg)
	if err != nil {
		return nil, err
	}
	if !claimed {
		if m.State == "failed" {
			return nil, &OutcomeError{Outcome: campaigns.OutcomeSendFailed, Err: errors.New(m.LastError)}
		}
		// Sent, or in doubt after a crash: its status webhook, if Meta has it,
		// settles the outbox; sending again could only send it twice.
		return endedLeg(LegEvent{Kind: LegEnded, At: time.Now(), Outcome: campaigns.OutcomeSent, Detail: "template " + m.State + " before a restart: not sent again"}), nil
	}
	res, err := w.client.SendTemplate(ctx, req.Key, msg)
	settle(ctx, w.store, m, err)
	if err != nil {
		return nil, &OutcomeError{Outcome: errorOutcome(err), Err: err}
	}
	w.store.SaveWAMessage(ctx, storage.WAMessage{ContactID: req.Contact.ID, Direction: "out", WAID: res.MessageID,
		Phone: req.To, Type: "template", Body: req.Rung.Template, At: time.Now()})
	return endedLeg(LegEvent{Kind: LegEnded, At: time.Now(), Outcome: campaigns.OutcomeSent, ExternalID: res.MessageID, Trunk: "whatsapp"}), nil
}

// endedLeg is a leg that is over as soon as it starts: a message sent.
func endedLeg(ev LegEvent) Leg {
	l := &doneLeg{events: make(chan LegEvent, 1)}
	l.events <- ev
	close(l.events)
	return l
}

type doneLeg struct{ events chan LegEvent }

func (l *doneLeg) Events() <-chan LegEvent      { return l.events }
func (l *doneLeg) Hangup(context.Context) error { return nil }

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
		params, perr := TemplateParams(rung.Params, ct)
		if perr != nil {
			return msg, perr
		}
		msg.Type, msg.Body = "template", rung.Template
		res, err = client.SendTemplate(ctx, key, whatsapp.TemplateMessage{To: to, Name: rung.Template, Language: rung.Language, BodyParams: params})
	}
	if err != nil {
		return msg, err
	}
	msg.WAID = res.MessageID
	return msg, e.store.SaveWAMessage(ctx, msg)
}
