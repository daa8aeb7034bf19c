// Package wachannel is the WhatsApp rungs' channels: business-initiated calls
// through the Cloud API (with a call-permission request when WhatsApp will not
// let the business call yet), the answer to a call the contact makes, and
// template messages. Each side effect goes through the outbox once, so a restart
// never repeats it. The Cloud API's outcomes (whatsapp.CallOutcome and its
// error kinds, protocol vocabulary) become the ladder's campaigns.Outcome here
// and nowhere else.
package wachannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/waoutbox"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// Store is what the WhatsApp rungs need from storage.
type Store interface {
	storage.Outbox
	storage.WhatsAppStore
}

// Kinds of side effects the WhatsApp rungs put in the outbox.
const (
	outboxCall       = "whatsapp.call"
	outboxTemplate   = storage.OutboxKindTemplate
	outboxPermission = "whatsapp.permission_request"
)

// callOutcomes maps how a call that was not answered ended. whatsapp.CallOutcome
// is the Cloud API's vocabulary; this map (with errorOutcome for refused
// requests) is the one place it becomes a campaigns.Outcome.
var callOutcomes = map[whatsapp.CallOutcome]campaigns.Outcome{
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

// Calls places the whatsapp_call rung's attempts: business-initiated calls
// through the Cloud API, with Opus over WebRTC.
type Calls struct {
	client *whatsapp.Client
	store  Store
	// permissionText is the body of the call-permission request sent to a contact
	// WhatsApp will not let the business call yet.
	permissionText string
	// gate is the engine's policy gate, asked before a permission request; the
	// engine hands it over through UseGate.
	gate func(ctx context.Context, contactID int64, action campaigns.ContactAction) error
	// settleWait bounds the wait for a call's webhooks when its connect's
	// answer was lost (0: whatsapp.DefaultSettleWait).
	settleWait time.Duration
}

// NewCalls returns the whatsapp_call channel.
func NewCalls(client *whatsapp.Client, store Store, permissionText string) *Calls {
	return &Calls{client: client, store: store, permissionText: permissionText}
}

// UseGate makes gate rule every permission request before it is sent: a
// non-nil error (a refusal, or a contact the gate cannot read) sends nothing.
// The engine calls it when it is given the channel.
func (w *Calls) UseGate(gate func(ctx context.Context, contactID int64, action campaigns.ContactAction) error) {
	w.gate = gate
}

// UseSettleWait sets how long a call whose connect answer was lost waits for
// its webhooks before it is left in doubt (whatsapp.DialOptions.SettleWait;
// 0 keeps whatsapp.DefaultSettleWait). Call it before the first Place.
func (w *Calls) UseSettleWait(d time.Duration) {
	w.settleWait = d
}

// Place starts a WhatsApp call; when WhatsApp refuses it for want of permission, a
// permission request goes out. A person whose answer is pending or who refused is
// not called at all: the engine's policy gate refuses that before Place.
func (w *Calls) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	if asked, err := w.pendingPermission(ctx, req); err != nil {
		return nil, err
	} else if asked {
		// Meta says the person has not granted it: a call would only be refused.
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeNoPermission, Err: errors.New("whatsapp call permission not granted (read from Meta)")}
	}
	// The rate limit's token first (the one limit every request of the number
	// shares), then the claim: a claimed row never waits on the limit, so a
	// crash while waiting leaves nothing claimed. The connect is not a limited
	// request of the client, so the token taken here is its share of the limit
	// and the admission's context is not handed on.
	if _, err := w.client.Admit(ctx, nil); err != nil {
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeInterrupted, Err: err}
	}
	m, claimed, err := storage.ClaimOnce(ctx, w.store, outboxCall, req.Key, map[string]string{"to": req.To})
	if err != nil {
		return nil, err
	}
	if !claimed {
		// Decided before a restart and perhaps placed: the phone may have rung.
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeNoAnswer, Err: fmt.Errorf("call %s was %s before a restart: not placed twice", req.Key, m.State)}
	}
	// A call is never placed twice: from its claim on, a crash leaves it in
	// doubt (the phone may have rung), as a call placed again would ring twice.
	if err := w.store.MarkRequestStarted(ctx, m.ID); err != nil {
		w.store.MarkFailed(context.WithoutCancel(ctx), m.ID, err, time.Time{})
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeInterrupted, Err: err}
	}
	call, err := w.client.Dial(ctx, req.Key, req.To, whatsapp.DialOptions{RingTimeout: req.RingTimeout, SettleWait: w.settleWait})
	var callID string
	if err == nil {
		callID = call.ID()
	}
	if errors.Is(err, whatsapp.ErrCallInDoubt) {
		// The connect's answer was lost and no webhook named the call: the
		// phone may have rung, so it is neither placed again nor recorded as
		// failed.
		w.store.MarkInDoubt(context.WithoutCancel(ctx), m.ID, err)
		return nil, &channel.OutcomeError{Outcome: campaigns.OutcomeNoAnswer, Err: err}
	}
	storage.Settle(context.WithoutCancel(ctx), w.store, m, callID, err)
	if err != nil {
		outcome := errorOutcome(err)
		if outcome == campaigns.OutcomeNoPermission {
			w.RequestPermission(ctx, req)
		}
		return nil, &channel.OutcomeError{Outcome: outcome, Err: err}
	}
	return follow(call), nil
}

// pendingPermission handles a call the gate let through while the contact's
// permission is requested or denied here (a retry is due): Meta's state is read
// first, since the person may have granted it since (in the business profile, by
// calling in). A grant is recorded and the call goes ahead; otherwise a new
// request is made (within Meta's limits) and asked reports true. A state that
// cannot be read leaves the call to Meta, which refuses it without permission.
func (w *Calls) pendingPermission(ctx context.Context, req channel.PlaceRequest) (asked bool, err error) {
	state, _, err := w.store.WhatsAppPermission(ctx, req.Contact.ID)
	if err != nil {
		return false, err
	}
	if state != storage.PermissionRequested && state != storage.PermissionDenied {
		return false, nil
	}
	s, err := w.client.CallPermission(ctx, req.To)
	if err != nil {
		w.log(ctx, "read call permission failed", req, err)
		return false, nil
	}
	if w.applyState(ctx, req, s) {
		return false, nil
	}
	if !w.admitted(ctx, req) {
		return true, nil
	}
	return !w.request(ctx, req, s), nil
}

// applyState records what Meta says of the person's permission: a grant (true),
// or when the next request may go.
func (w *Calls) applyState(ctx context.Context, req channel.PlaceRequest, s whatsapp.CallPermissionState) bool {
	if s.Granted(time.Now()) {
		var until time.Time
		if s.Status != whatsapp.MetaPermissionPermanent {
			until = s.Expires
		}
		w.granted(ctx, req, until)
		return true
	}
	_, next := s.CanRequest()
	w.store.SetPermissionNextRequest(ctx, req.To, next)
	return false
}

// granted records a grant Meta told of (its state, or 138017) as observed
// now, through the same time-ordered record as the webhooks' replies: a
// "reject" webhook older than what Meta said now arriving later is then
// ignored instead of flipping the contact back to denied.
func (w *Calls) granted(ctx context.Context, req channel.PlaceRequest, until time.Time) {
	_, err := w.store.SetWhatsAppPermissionReply(ctx, req.Contact.ID, storage.PermissionReply{State: storage.PermissionGranted, Until: until, At: time.Now()})
	if err != nil {
		w.log(ctx, "record call permission granted failed", req, err)
	}
}

func (w *Calls) log(ctx context.Context, msg string, req channel.PlaceRequest, err error) {
	w.client.Logger().LogAttrs(ctx, slog.LevelWarn, msg, slog.Int64("contact_id", req.Contact.ID), slog.String("error", err.Error()))
}

// RequestPermission asks the contact for permission to call, once per refused
// call (req.Key): with the campaign's template when it names one, else with an
// interactive request — and, when that falls outside the 24 h window, not at
// all (the template rung that follows still reaches the contact). The policy
// gate, when the engine handed one over, rules first (Meta's limits on
// requests among its rules); then Meta's state is read: a person who granted
// it already is not asked, nor one Meta's limits keep from being asked now.
func (w *Calls) RequestPermission(ctx context.Context, req channel.PlaceRequest) {
	if !w.admitted(ctx, req) {
		return
	}
	s, err := w.client.CallPermission(ctx, req.To)
	if err != nil {
		// Not sent blind: the person may have granted it, or Meta's limits
		// may refuse it; the next retry reads the state again.
		w.log(ctx, "read call permission failed: no request sent", req, err)
		return
	}
	if !w.applyState(ctx, req, s) {
		w.request(ctx, req, s)
	}
}

// admitted asks the policy gate, when the engine handed one over, about a
// permission request: refused (and kept in the contact's history), or a contact
// the gate cannot read, nothing is sent, nor anything asked of Meta.
func (w *Calls) admitted(ctx context.Context, req channel.PlaceRequest) bool {
	return w.gate == nil || w.gate(ctx, req.Contact.ID, campaigns.ActionPermissionRequest) == nil
}

// request sends a permission request the gate admitted when Meta's state s
// allows; it reports whether Meta answered that the person gave permanent
// permission.
func (w *Calls) request(ctx context.Context, req channel.PlaceRequest, s whatsapp.CallPermissionState) (granted bool) {
	if ok, _ := s.CanRequest(); !ok {
		return false
	}
	key := fmt.Sprintf("permission-contact-%d-%s", req.Contact.ID, req.Key)
	p := req.Permission
	text := p.Text
	if text == "" {
		text = w.permissionText
	}
	kind, body := "call_permission_request", text
	send := func(ctx context.Context) (whatsapp.SendResult, error) {
		return w.client.RequestCallPermission(ctx, key, req.To, text)
	}
	if p.Template != "" {
		kind, body = "template", p.Template
		send = func(ctx context.Context) (whatsapp.SendResult, error) {
			return w.client.SendTemplate(ctx, key, whatsapp.TemplateMessage{To: req.To, Name: p.Template, Language: p.Language})
		}
	}
	m, err := waoutbox.Send(ctx, w.store, w.client, outboxPermission, key, permissionPayload{To: req.To, Type: kind, Body: body}, send)
	if whatsapp.PermissionExists(err) {
		// 138017: the person gave permanent permission already.
		w.granted(ctx, req, time.Time{})
		return true
	}
	if m.State != storage.OutboxSent {
		return false // not sent, or in doubt until its status webhook settles it
	}
	w.store.RecordPermissionRequest(ctx, req.Contact.ID, req.To, time.Now())
	// As of when the request was queued, before it left: the person's reply
	// (its webhook may well be applied before this line runs) is then as new
	// as the request or newer, and stands.
	asked := m.CreatedAt
	if asked.IsZero() {
		asked = time.Now()
	}
	if _, err := w.store.SetWhatsAppPermissionRequested(ctx, req.Contact.ID, asked); err != nil {
		w.log(ctx, "record call permission requested failed", req, err)
	}
	w.store.SaveWAMessage(ctx, storage.WAMessage{ContactID: req.Contact.ID, Direction: "out", WAID: m.ResultID,
		Phone: req.To, Type: kind, Body: body, At: time.Now()})
	return false
}

// permissionPayload is what the outbox keeps of a permission request.
type permissionPayload struct {
	To   string `json:"to"`
	Type string `json:"type"`
	Body string `json:"body"`
}

// Answer returns the channel of a call the contact made (the connect webhook
// with the user's offer): placing it accepts the call, under req.Key.
func (w *Calls) Answer(offer whatsapp.Event) channel.Channel {
	return answer{client: w.client, offer: offer}
}

// answer is the Channel of a user-initiated call: placing it is accepting it.
type answer struct {
	client *whatsapp.Client
	offer  whatsapp.Event
}

func (a answer) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	call, err := a.client.Accept(ctx, req.Key, a.offer)
	if err != nil {
		return nil, &channel.OutcomeError{Outcome: errorOutcome(err), Err: err}
	}
	return follow(call), nil
}

// callAttempt follows a WhatsApp call for the engine.
type callAttempt struct {
	call   *whatsapp.Call
	events chan channel.AttemptEvent

	mu    sync.Mutex
	audio media.Leg
}

// follow returns the attempt of call, whose events follow the call's updates.
func follow(call *whatsapp.Call) *callAttempt {
	l := &callAttempt{call: call, events: make(chan channel.AttemptEvent, 8)}
	go l.follow()
	return l
}

func (l *callAttempt) Events() <-chan channel.AttemptEvent { return l.events }

func (l *callAttempt) Hangup(ctx context.Context) error { return l.call.Hangup(ctx) }

// MediaLeg returns the call's Opus audio.
func (l *callAttempt) MediaLeg() (media.Leg, error) {
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

// follow turns the call's updates into attempt events. The answer is reported once
// audio flows, so the agent is connected to a voice and not to ICE still checking.
func (l *callAttempt) follow() {
	defer close(l.events)
	var answered bool
	for u := range l.call.Updates() {
		ev := channel.AttemptEvent{At: u.Time, ExternalID: u.CallID, Trunk: "whatsapp"}
		switch u.Phase {
		case whatsapp.PhaseRinging:
			ev.Kind = channel.AttemptRinging
		case whatsapp.PhaseAccepted:
			select {
			case <-l.call.MediaConnected():
			case <-l.call.Done():
			case <-time.After(5 * time.Second):
			}
			ev.Kind, answered = channel.AttemptAnswered, true
		case whatsapp.PhaseEnded:
			ev.Kind, ev.HangupBy = channel.AttemptEnded, "remote"
			if !answered {
				ev.Outcome = callOutcomes[u.Outcome]
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
	l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), Outcome: campaigns.OutcomeTrunkFault}
}
