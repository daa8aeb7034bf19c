package whatsapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/media"
)

// ErrCallEnded is returned by media and control methods of a call that has ended.
var ErrCallEnded = errors.New("whatsapp: call ended")

// CallUpdate reports a change of a [Call].
type CallUpdate struct {
	CallID  string
	Phase   CallPhase
	Outcome CallOutcome
	// Time is the event time of the webhook or of the local action.
	Time time.Time
	// Err is set when the call failed locally (an SDP answer pion refused, say).
	Err error
}

// DialOptions tune [Client.Dial].
type DialOptions struct {
	// RingTimeout ends the call with action terminate and outcome no_answer when it
	// has not been accepted in time. 0 leaves it to Meta and the caller.
	RingTimeout time.Duration
	// SettleWait bounds the wait for the call's webhooks when the connect's
	// answer was lost (a timeout, a broken connection, a 5xx); 0 is
	// [DefaultSettleWait].
	SettleWait time.Duration
}

// DefaultSettleWait is how long [Client.Dial] waits for the webhooks of a call
// whose connect may have been placed though its answer was lost. Meta sends the
// RINGING status within seconds of placing a call.
const DefaultSettleWait = 20 * time.Second

// ErrCallInDoubt is returned by [Client.Dial] when the connect's answer was lost
// and no webhook of the call came within the settle wait: the person's phone may
// have rung, so the call is not placed again.
var ErrCallInDoubt = errors.New("whatsapp: call in doubt")

// Call is one WhatsApp call leg: the signalling state and the pion peer connection
// carrying its Opus audio. Events for it reach it through [Client.HandleEvents].
type Call struct {
	client    *Client
	key       string
	to        string
	direction string
	pc        *webrtc.PeerConnection
	local     *webrtc.TrackLocalStaticRTP
	remote    chan *webrtc.TrackRemote
	updates   chan CallUpdate
	done      chan struct{}
	mediaUp   chan struct{}
	// known is closed once Meta's call ID is known, from the connect's answer or
	// from a webhook carrying the call's key.
	known     chan struct{}
	knownOnce sync.Once

	mu        sync.Mutex
	id        string
	state     CallState
	ringTimer *time.Timer
	ended     bool
	remoteTr  *webrtc.TrackRemote
}

// maxCallUpdates bounds the update channel: phases only move forward, so a call has at
// most four updates (ringing, accepted or rejected, ended, and an error).
const maxCallUpdates = 8

func (c *Client) newCall(key, to, direction string) (*Call, error) {
	pc, local, err := c.media.NewPeerConnection()
	if err != nil {
		return nil, err
	}
	call := &Call{
		client: c, key: key, to: to, direction: direction, pc: pc, local: local,
		remote:  make(chan *webrtc.TrackRemote, 1),
		updates: make(chan CallUpdate, maxCallUpdates),
		done:    make(chan struct{}),
		mediaUp: make(chan struct{}),
		known:   make(chan struct{}),
	}
	var up sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			up.Do(func() { close(call.mediaUp) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		// pion reports a track on its first packet: the person's first media.
		call.mediaStarted(time.Now().UTC())
		go media.DiscardRTCP(receiver)
		select {
		case call.remote <- tr:
		default:
		}
	})
	return call, nil
}

type callSession struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

type callRequest struct {
	MessagingProduct string       `json:"messaging_product"`
	To               string       `json:"to,omitempty"`
	CallID           string       `json:"call_id,omitempty"`
	Action           string       `json:"action"`
	Session          *callSession `json:"session,omitempty"`
	BizOpaque        string       `json:"biz_opaque_callback_data,omitempty"`
}

type callResponse struct {
	Calls []struct {
		ID string `json:"id"`
	} `json:"calls"`
	Success bool `json:"success"`
}

func (c *Client) postCall(ctx context.Context, op string, body callRequest) (callResponse, error) {
	var resp callResponse
	err := c.do(ctx, request{op: op, method: http.MethodPost, path: url.PathEscape(c.cfg.PhoneNumberID) + "/calls", body: body}, &resp)
	return resp, err
}

// Dial places a business-initiated call to the user to. key is the idempotency key; it
// is sent as biz_opaque_callback_data so every webhook of the call carries it, which
// also lets an SDP answer that overtakes the HTTP response find the call. A key
// already dialled gives an error: a call cannot be resumed, only its webhooks
// awaited. Failures are [*Error]; 138006 has kind [KindNoPermission].
func (c *Client) Dial(ctx context.Context, key, to string, opts DialOptions) (*Call, error) {
	to, err := normalizeTo(to)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errors.New("whatsapp: an idempotency key is required")
	}
	call, err := c.newCall(key, to, "BUSINESS_INITIATED")
	if err != nil {
		return nil, err
	}
	offer, err := call.pc.CreateOffer(nil)
	if err != nil {
		call.closeMedia()
		return nil, fmt.Errorf("whatsapp dial: create offer: %w", err)
	}
	sdp, err := c.media.SetLocalAndGather(ctx, call.pc, offer)
	if err != nil {
		call.closeMedia()
		return nil, fmt.Errorf("whatsapp dial: %w", err)
	}
	if !c.calls.addKey(key, call) {
		call.closeMedia()
		return nil, fmt.Errorf("whatsapp dial: a call with key %q is in progress", key)
	}
	id, dedup, err := c.once(ctx, "call", key, func(ctx context.Context) (string, error) {
		var resp callResponse
		// The Calling API has no idempotency key: a connect whose answer was
		// lost is not sent again (the phone may be ringing) but settled from
		// the webhooks that carry its key.
		err := c.do(ctx, request{op: "connect call", method: http.MethodPost, path: url.PathEscape(c.cfg.PhoneNumberID) + "/calls",
			once: true, body: callRequest{
				MessagingProduct: "whatsapp", To: to, Action: "connect",
				Session: &callSession{SDPType: "offer", SDP: sdp}, BizOpaque: key,
			}}, &resp)
		if err != nil {
			if !mayHaveBeenProcessed(err) {
				return "", err
			}
			return call.settle(ctx, key, cmp.Or(opts.SettleWait, DefaultSettleWait), err)
		}
		if len(resp.Calls) == 0 || resp.Calls[0].ID == "" {
			return "", &Error{Op: "connect call", HTTPStatus: http.StatusOK, Message: "response has no call id"}
		}
		return resp.Calls[0].ID, nil
	})
	if err == nil && dedup {
		err = fmt.Errorf("whatsapp dial: key %q was already dialled as call %s", key, id)
	}
	if err != nil {
		c.calls.remove(call)
		call.closeMedia()
		return nil, err
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "call placed", slog.String("call_id", id), slog.String("key", key))
	call.mu.Lock()
	call.id = id
	call.state.ID = id
	call.knownOnce.Do(func() { close(call.known) })
	if !call.ended {
		// Not registered by ID if a terminate matched by key already ended it.
		c.calls.setID(id, call)
		if opts.RingTimeout > 0 && call.state.Phase < PhaseAccepted {
			call.ringTimer = time.AfterFunc(opts.RingTimeout, call.ringTimeout)
		}
	}
	call.mu.Unlock()
	// Webhooks that arrived before the ID was known were matched by key and applied.
	return call, nil
}

// Accept answers a user-initiated call whose connect webhook (an SDP offer) is offer:
// it builds the SDP answer, sends pre_accept (so media can start before the call is
// formally connected) and then accept. key is the idempotency key of the attempt.
func (c *Client) Accept(ctx context.Context, key string, offer Event) (*Call, error) {
	if offer.Type != EventCallConnect || offer.Call == nil || offer.Call.SDPType != "offer" || offer.Call.SDP == "" {
		return nil, errors.New("whatsapp accept: event is not a call connect with an SDP offer")
	}
	callID := offer.Call.ID
	call, err := c.newCall(key, offer.Call.From, "USER_INITIATED")
	if err != nil {
		return nil, err
	}
	if err := call.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.Call.SDP}); err != nil {
		call.closeMedia()
		return nil, fmt.Errorf("whatsapp accept: apply offer: %w", err)
	}
	answer, err := call.pc.CreateAnswer(nil)
	if err != nil {
		call.closeMedia()
		return nil, fmt.Errorf("whatsapp accept: create answer: %w", err)
	}
	sdp, err := c.media.SetLocalAndGather(ctx, call.pc, answer)
	if err != nil {
		call.closeMedia()
		return nil, fmt.Errorf("whatsapp accept: %w", err)
	}
	call.id, call.state.ID = callID, callID
	c.calls.setID(callID, call)
	for _, action := range []string{"pre_accept", "accept"} {
		req := callRequest{MessagingProduct: "whatsapp", CallID: callID, Action: action, Session: &callSession{SDPType: "answer", SDP: sdp}}
		if action == "accept" {
			// user-initiated-calls, "Accept call": biz_opaque_callback_data is a
			// parameter of accept (echoed in the terminate webhook); the
			// pre-accept body documents none.
			req.BizOpaque = key
		}
		if _, err := c.postCall(ctx, action+" call", req); err != nil {
			c.calls.remove(call)
			call.closeMedia()
			return nil, err
		}
	}
	call.apply(Event{Type: EventCallStatus, Time: time.Now().UTC(), Call: &CallEvent{ID: callID, Status: "ACCEPTED"}})
	return call, nil
}

// RejectCall declines a user-initiated call.
func (c *Client) RejectCall(ctx context.Context, callID string) error {
	_, err := c.postCall(ctx, "reject call", callRequest{MessagingProduct: "whatsapp", CallID: callID, Action: "reject"})
	return err
}

// TerminateCall sends action terminate for a call ID, for a call this process no
// longer holds (after a restart). [Call.Hangup] is the usual way.
func (c *Client) TerminateCall(ctx context.Context, callID string) error {
	_, err := c.postCall(ctx, "terminate call", callRequest{MessagingProduct: "whatsapp", CallID: callID, Action: "terminate"})
	return err
}

// HandleEvents implements [Sink]: it applies call events to the calls this client
// holds (matched by call ID, or by biz_opaque_callback_data before the ID is known)
// and ignores everything else. Wire it after the durable sink.
func (c *Client) HandleEvents(_ context.Context, events []Event) error {
	for _, ev := range events {
		if ev.Call == nil {
			continue
		}
		if call := c.calls.find(ev.Call.ID, ev.Call.BizOpaque); call != nil {
			call.apply(ev)
		}
	}
	return nil
}

// ActiveCalls returns the number of calls the client holds.
func (c *Client) ActiveCalls() int { return c.calls.len() }

// ID returns the call ID (wacid.…); empty until Meta answered the connect.
func (c *Call) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Key returns the idempotency key the call was placed with.
func (c *Call) Key() string { return c.key }

// Updates delivers the call's phase changes; it is closed after the final update.
func (c *Call) Updates() <-chan CallUpdate { return c.updates }

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// State returns a snapshot of the call's state machine.
func (c *Call) State() CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state
	s.Errors = append([]WebhookError(nil), s.Errors...)
	return s
}

// MediaConnected is closed once ICE and DTLS have connected, when RTP can flow.
func (c *Call) MediaConnected() <-chan struct{} { return c.mediaUp }

// PeerConnection returns the pion peer connection, for the media package.
func (c *Call) PeerConnection() *webrtc.PeerConnection { return c.pc }

// LocalTrack returns the track whose packets are sent to the user.
func (c *Call) LocalTrack() *webrtc.TrackLocalStaticRTP { return c.local }

// RemoteTrack waits for the user's audio track.
func (c *Call) RemoteTrack(ctx context.Context) (*webrtc.TrackRemote, error) {
	c.mu.Lock()
	tr := c.remoteTr
	c.mu.Unlock()
	if tr != nil {
		return tr, nil
	}
	select {
	case tr = <-c.remote:
		c.mu.Lock()
		c.remoteTr = tr
		c.mu.Unlock()
		return tr, nil
	case <-c.done:
		return nil, ErrCallEnded
	case <-ctx.Done():
		return nil, fmt.Errorf("whatsapp call: waiting for remote track: %w", ctx.Err())
	}
}

// ReadRTP returns the next RTP packet from the user, waiting for the track if needed.
func (c *Call) ReadRTP(ctx context.Context) (*rtp.Packet, error) {
	tr, err := c.RemoteTrack(ctx)
	if err != nil {
		return nil, err
	}
	p, _, err := tr.ReadRTP()
	if err != nil {
		return nil, fmt.Errorf("whatsapp call: read rtp: %w", err)
	}
	return p, nil
}

// WriteRTP sends an Opus RTP packet to the user. SSRC and payload type are set by
// pion; the sequence number and timestamp are the caller's.
func (c *Call) WriteRTP(p *rtp.Packet) error {
	select {
	case <-c.done:
		return ErrCallEnded
	default:
	}
	if err := c.local.WriteRTP(p); err != nil {
		return fmt.Errorf("whatsapp call: write rtp: %w", err)
	}
	return nil
}

// Hangup ends the call with action terminate (agent hang-up, or giving up on a
// ringing call): an answered call's outcome stays answered, an unanswered one becomes
// cancelled. The call ends locally even if the request fails; the error is then
// returned so the engine can retry with [Client.TerminateCall].
func (c *Call) Hangup(ctx context.Context) error {
	return c.hangup(ctx, OutcomeCancelled)
}

func (c *Call) hangup(ctx context.Context, unanswered CallOutcome) error {
	// The call ends locally before the request, so the outcome does not depend on
	// whether Meta's terminate webhook overtakes the HTTP answer.
	c.mu.Lock()
	tr, ok := c.state.End(time.Now().UTC(), unanswered)
	id := c.id
	c.mu.Unlock()
	if ok {
		c.emit(CallUpdate{CallID: id, Phase: tr.To, Outcome: tr.Outcome, Time: time.Now().UTC()})
		c.finish()
	}
	if id == "" || !ok {
		return nil
	}
	return c.client.TerminateCall(ctx, id)
}

func (c *Call) ringTimeout() {
	c.mu.Lock()
	ringing := c.state.Phase < PhaseAccepted
	c.mu.Unlock()
	if !ringing {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.client.cfg.RequestTimeout)
	defer cancel()
	if err := c.hangup(ctx, OutcomeNoAnswer); err != nil {
		c.client.log.LogAttrs(ctx, slog.LevelWarn, "terminate after ring timeout failed", slog.String("call_id", c.ID()), slog.String("error", err.Error()))
	}
}

// settle finds out what became of a connect whose answer (err) was lost: the
// call's first webhook, matched by its key, names it; with none within wait, the
// call is in doubt.
func (c *Call) settle(ctx context.Context, key string, wait time.Duration, err error) (string, error) {
	c.client.log.LogAttrs(ctx, slog.LevelWarn, "connect answer lost: waiting for the call's webhooks",
		slog.String("key", key), slog.Duration("wait", wait), slog.String("error", err.Error()))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.known:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.state.ID, nil
	case <-t.C:
		return "", fmt.Errorf("whatsapp dial: %w: no webhook for key %q within %s after: %v", ErrCallInDoubt, key, wait, err)
	case <-ctx.Done():
		return "", fmt.Errorf("whatsapp dial: %w: %w (after: %v)", ErrCallInDoubt, ctx.Err(), err)
	}
}

// mayHaveBeenProcessed reports whether a failed request may have been carried
// out all the same: its answer broke off after the request left, or Meta
// failed (5xx) in a way that does not say it was not processed.
func mayHaveBeenProcessed(err error) bool {
	var e *Error
	if errors.As(err, &e) && e.HTTPStatus != 0 {
		return e.HTTPStatus >= 500
	}
	return MayHaveLeft(err)
}

// mediaStarted answers the call on the person's first media, if the connect
// webhook has not already.
func (c *Call) mediaStarted(at time.Time) {
	c.mu.Lock()
	tr, ok := c.state.MediaStarted(at)
	id := c.id
	c.mu.Unlock()
	if ok {
		c.emit(CallUpdate{CallID: id, Phase: tr.To, Time: at})
	}
}

// apply feeds one webhook event to the call.
func (c *Call) apply(ev Event) {
	c.mu.Lock()
	tr, ok := c.state.Apply(ev)
	id := c.id
	if id == "" {
		id = ev.Call.ID
	}
	c.mu.Unlock()
	if ok && id != "" {
		// Matched by key before the connect's answer (or instead of it).
		c.knownOnce.Do(func() { close(c.known) })
	}
	if !ok {
		return
	}
	if tr.Answer {
		err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ev.Call.SDP})
		if err != nil {
			c.emit(CallUpdate{CallID: id, Phase: tr.To, Time: ev.Time, Err: fmt.Errorf("whatsapp call: apply SDP answer: %w", err)})
			go func() { _ = c.hangup(context.Background(), OutcomeFailed) }()
			return
		}
	}
	if tr.To != tr.From {
		c.emit(CallUpdate{CallID: id, Phase: tr.To, Outcome: tr.Outcome, Time: ev.Time})
	}
	if tr.To == PhaseEnded {
		c.finish()
	}
}

// emit delivers an update without ever blocking the webhook path.
func (c *Call) emit(u CallUpdate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	select {
	case c.updates <- u:
	default:
		c.client.log.Warn("call update dropped", slog.String("call_id", u.CallID))
	}
}

// finish releases the call once: stops the timer, closes media, forgets the call.
func (c *Call) finish() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	if c.ringTimer != nil {
		c.ringTimer.Stop()
	}
	close(c.updates)
	close(c.done)
	c.mu.Unlock()
	c.client.calls.remove(c)
	c.closeMedia()
}

func (c *Call) closeMedia() {
	if err := c.pc.Close(); err != nil {
		c.client.log.Debug("peer connection close", slog.String("error", err.Error()))
	}
}

// callRegistry finds calls by ID and by idempotency key.
type callRegistry struct {
	mu    sync.Mutex
	byID  map[string]*Call
	byKey map[string]*Call
}

func newCallRegistry() *callRegistry {
	return &callRegistry{byID: make(map[string]*Call), byKey: make(map[string]*Call)}
}

func (r *callRegistry) addKey(key string, c *Call) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byKey[key]; ok {
		return false
	}
	r.byKey[key] = c
	return true
}

func (r *callRegistry) setID(id string, c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[id] = c
}

func (r *callRegistry) find(id, key string) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.byID[id]; ok {
		return c
	}
	if key != "" {
		if c, ok := r.byKey[key]; ok {
			return c
		}
	}
	return nil
}

func (r *callRegistry) remove(c *Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey[c.key] == c {
		delete(r.byKey, c.key)
	}
	for id, x := range r.byID {
		if x == c {
			delete(r.byID, id)
		}
	}
}

func (r *callRegistry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}
