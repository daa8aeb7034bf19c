package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
)

// OpusSilence is the Opus frame the emulated user sends: TOC 0xF8 (CELT fullband,
// 20 ms, one frame) followed by the two-byte silence payload used by browsers and
// Asterisk as comfort noise. pion has no Opus encoder and the tests count packets.
var OpusSilence = []byte{0xF8, 0xFF, 0xFE}

// CallStats is what the emulated user's phone observed of a call.
type CallStats struct {
	CallID    string
	To        string
	Direction string
	// Connected is true once ICE and DTLS completed with the business.
	Connected bool
	Accepted  bool
	// PacketsSent and PacketsReceived count Opus RTP packets.
	PacketsSent     int
	PacketsReceived int
	// SeqGaps counts packets missing from the received sequence; OutOfOrder counts
	// packets older than the last one received.
	SeqGaps    int
	OutOfOrder int
	// Ended, EndedBy ("business", "user", "timeout", "rejected") and Duration.
	Ended    bool
	EndedBy  string
	Duration time.Duration
}

type emuCall struct {
	e         *Emulator
	id        string
	to        string
	key       string // biz_opaque_callback_data; set by accept for a user-initiated call (mu)
	direction string
	b         Behaviour
	pc        *webrtc.PeerConnection
	local     *webrtc.TrackLocalStaticRTP
	ctx       context.Context
	cancel    context.CancelFunc
	connected chan struct{}

	mu         sync.Mutex
	stats      CallStats
	held       []byte // a status webhook held back to reorder
	answered   bool   // remote description applied (user-initiated)
	acceptedAt time.Time
	lastSeq    uint16
	haveSeq    bool
	// wg counts the call's goroutines (spawn); mediaStopped, once set, lets no
	// more start.
	wg           sync.WaitGroup
	mediaStopped bool
}

// CallStats returns what the user's phone observed of a call.
func (e *Emulator) CallStats(callID string) (CallStats, bool) {
	e.mu.Lock()
	c := e.calls[callID]
	e.mu.Unlock()
	if c == nil {
		return CallStats{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, true
}

// Calls returns the stats of every call, in no particular order.
func (e *Emulator) Calls() []CallStats {
	e.mu.Lock()
	calls := make([]*emuCall, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	e.mu.Unlock()
	out := make([]CallStats, 0, len(calls))
	for _, c := range calls {
		c.mu.Lock()
		out = append(out, c.stats)
		c.mu.Unlock()
	}
	return out
}

func (e *Emulator) callNumber(callID string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.calls[callID]; c != nil {
		return c.to
	}
	return ""
}

func (e *Emulator) newEmuCall(id, to, key, direction string, b Behaviour) (*emuCall, error) {
	pc, local, err := e.media.NewPeerConnection()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	c := &emuCall{e: e, id: id, to: to, key: key, direction: direction, b: b, pc: pc, local: local, ctx: ctx, cancel: cancel,
		connected: make(chan struct{}), stats: CallStats{CallID: id, To: to, Direction: direction}}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.mu.Lock()
			c.stats.Connected = true
			c.mu.Unlock()
			once.Do(func() { close(c.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		go media.DiscardRTCP(receiver)
		c.spawn(func() { c.receive(tr) })
	})
	return c, nil
}

// handleCall serves POST /calls.
func (e *Emulator) handleCall(w http.ResponseWriter, rec *Request, rb requestBody, b Behaviour) {
	switch rb.Action {
	case "connect":
		e.connect(w, rec, rb, b)
	case "pre_accept", "accept", "reject", "terminate":
		e.mu.Lock()
		c := e.calls[rb.CallID]
		e.mu.Unlock()
		if c == nil {
			e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Invalid parameter: call_id " + rb.CallID + " does not exist"})
			return
		}
		rec.To = c.to
		if err := c.control(rb); err != nil {
			e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) " + err.Error()})
			return
		}
		writeJSON(w, rec, map[string]any{"messaging_product": "whatsapp", "success": true})
	default:
		e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Invalid parameter: action"})
	}
}

func (e *Emulator) connect(w http.ResponseWriter, rec *Request, rb requestBody, b Behaviour) {
	if rec.To == "" {
		e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) The parameter to is required."})
		return
	}
	if rb.Session == nil || rb.Session.SDPType != "offer" || rb.Session.SDP == "" {
		e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Invalid parameter: session must carry an SDP offer"})
		return
	}
	e.mu.Lock()
	granted := e.perms[rec.To].grantedNow(time.Now())
	e.mu.Unlock()
	if b.ErrorCode != 0 {
		e.writeError(w, rec, errorFor(b.ErrorCode))
		return
	}
	if b.RequirePermission && !granted {
		e.writeError(w, rec, errorFor(138006))
		return
	}
	id := newID("wacid")
	c, err := e.newEmuCall(id, rec.To, rec.Key, "BUSINESS_INITIATED", b)
	if err != nil {
		e.writeError(w, rec, errorFor(131000))
		return
	}
	answerSDP, err := c.answer(e.ctx, rb.Session.SDP)
	if err != nil {
		c.stop()
		e.writeError(w, rec, graphError{http.StatusBadRequest, 100, 0, "OAuthException", "(#100) Invalid parameter: SDP offer: " + err.Error()})
		return
	}
	e.mu.Lock()
	e.calls[id] = c
	lost, dropped := e.takeConnectFault(rec.To)
	e.mu.Unlock()
	rec.ResultID = id
	e.goScript(func(context.Context) { c.businessInitiatedScript(answerSDP) })
	switch {
	case lost:
		e.writeError(w, rec, errorFor(131000))
	case dropped:
		rec.Status = 0
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // aborts the response without answering
	default:
		writeJSON(w, rec, map[string]any{"messaging_product": "whatsapp", "calls": []map[string]string{{"id": id}}})
	}
}

// takeConnectFault spends one placed-but-unanswered connect of the number's
// budget. e.mu is held.
func (e *Emulator) takeConnectFault(number string) (lost, dropped bool) {
	s := e.scripts[number]
	switch {
	case s == nil:
	case s.lostLeft > 0:
		s.lostLeft--
		lost = true
	case s.droppedLeft > 0:
		s.droppedLeft--
		dropped = true
	}
	return lost, dropped
}

// answer applies the business's offer and returns the user's gathered SDP answer.
func (c *emuCall) answer(ctx context.Context, offer string) (string, error) {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	return c.e.media.SetLocalAndGather(ctx, c.pc, ans)
}

func (c *emuCall) businessInitiatedScript(answerSDP string) {
	ctx := c.ctx
	c.statusWebhook("RINGING")
	switch c.b.Call {
	case CallAccept:
		if !sleep(ctx, c.b.AnswerAfter) {
			return
		}
		// business-initiated-calls, Part 3: the person's SDP answer comes on the
		// connect webhook when they pick up; ACCEPTED follows for auditing.
		c.callWebhook(map[string]any{"event": "connect", "session": map[string]string{"sdp_type": "answer", "sdp": answerSDP}})
		c.accept()
		if c.b.HangupAfter > 0 && sleep(ctx, c.b.HangupAfter) {
			c.end("user")
		}
	case CallReject:
		if !sleep(ctx, c.b.AnswerAfter) {
			return
		}
		c.statusWebhook("REJECTED")
		c.end("rejected")
	case CallNoAnswer:
		if c.b.RingTimeout > 0 && sleep(ctx, c.b.RingTimeout) {
			c.end("timeout")
		}
	}
}

// accept marks the call accepted and starts the user's audio once media connects.
func (c *emuCall) accept() {
	c.mu.Lock()
	if c.stats.Accepted || c.stats.Ended {
		c.mu.Unlock()
		return
	}
	c.stats.Accepted = true
	c.acceptedAt = time.Now()
	at := c.acceptedAt
	c.mu.Unlock()
	c.e.mu.Lock()
	c.e.connected(c.to, at)
	c.e.mu.Unlock()
	if c.direction == "BUSINESS_INITIATED" {
		if c.b.AcceptedStatusDelay > 0 {
			c.spawn(func() {
				if sleep(c.ctx, c.b.AcceptedStatusDelay) {
					c.statusWebhook("ACCEPTED")
				}
			})
		} else {
			c.statusWebhook("ACCEPTED")
		}
	}
	c.spawn(c.sendAudio)
}

// spawn runs fn on its own goroutine, which stopMedia waits for; once the call's
// media is stopping it runs nothing (a WaitGroup may not grow while waited on).
func (c *emuCall) spawn(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mediaStopped {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
}

// control applies pre_accept, accept, reject or terminate from the business.
func (c *emuCall) control(rb requestBody) error {
	switch rb.Action {
	case "terminate":
		c.end("business")
		return nil
	case "reject":
		if c.direction != "USER_INITIATED" {
			return errors.New("only user-initiated calls can be rejected")
		}
		c.end("rejected")
		return nil
	}
	// pre_accept / accept of a user-initiated call.
	if c.direction != "USER_INITIATED" {
		return fmt.Errorf("%s is only valid for user-initiated calls", rb.Action)
	}
	if rb.Session == nil || rb.Session.SDPType != "answer" || rb.Session.SDP == "" {
		return errors.New("session must carry an SDP answer")
	}
	c.mu.Lock()
	first := !c.answered
	c.answered = true
	if rb.Action == "accept" && rb.BizOpaque != "" {
		// user-initiated-calls, "Accept call": the string comes back in the
		// terminate webhook.
		c.key = rb.BizOpaque
	}
	c.mu.Unlock()
	if first {
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: rb.Session.SDP}); err != nil {
			return fmt.Errorf("invalid SDP answer: %w", err)
		}
	}
	if rb.Action == "accept" {
		c.accept()
	}
	return nil
}

// end terminates the call once, sending the terminate webhook.
func (c *emuCall) end(by string) {
	c.mu.Lock()
	if c.stats.Ended {
		c.mu.Unlock()
		return
	}
	c.stats.Ended, c.stats.EndedBy = true, by
	var start time.Time
	if c.stats.Accepted {
		start = c.acceptedAt
		c.stats.Duration = time.Since(start)
	}
	dur := c.stats.Duration
	c.mu.Unlock()
	c.cancel()
	t := map[string]any{"event": "terminate", "status": "COMPLETED"}
	if !start.IsZero() {
		// Call terminate webhook: start_time, end_time (strings of Unix seconds)
		// and duration (integer seconds) are "only present when the call was
		// picked up by the other party". A connected call is at least a second.
		secs := max(1, int64((dur+time.Second-1)/time.Second))
		t["start_time"] = fmt.Sprint(start.Unix())
		t["end_time"] = fmt.Sprint(time.Now().Unix())
		t["duration"] = secs
	}
	c.callWebhook(t)
	go c.stopMedia()
}

// stop ends the call without webhooks (emulator shutdown).
func (c *emuCall) stop() {
	c.cancel()
	c.stopMedia()
}

func (c *emuCall) stopMedia() {
	c.mu.Lock()
	c.mediaStopped = true
	c.mu.Unlock()
	_ = c.pc.Close()
	c.wg.Wait()
}

// sendAudio sends Opus frames until the call ends, starting when media connects so
// the business sees a gapless sequence.
func (c *emuCall) sendAudio() {
	select {
	case <-c.connected:
	case <-c.ctx.Done():
		return
	}
	tick := time.NewTicker(c.e.cfg.FrameInterval)
	defer tick.Stop()
	seq := uint16(1000)
	ts := uint32(48000)
	for {
		select {
		case <-tick.C:
		case <-c.ctx.Done():
			return
		}
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: 0x5A5A5A5A}, Payload: OpusSilence}
		if err := c.local.WriteRTP(p); err != nil {
			if errors.Is(err, context.Canceled) || c.ctx.Err() != nil {
				return
			}
			c.e.log.Debug("user audio write", slog.String("call_id", c.id), slog.String("error", err.Error()))
			continue
		}
		c.mu.Lock()
		c.stats.PacketsSent++
		c.mu.Unlock()
		seq++
		ts += 960
	}
}

// receive counts the business's packets and checks sequence continuity.
func (c *emuCall) receive(tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.stats.PacketsReceived++
		if c.haveSeq {
			d := p.SequenceNumber - c.lastSeq
			switch {
			case d == 0 || d >= 0x8000:
				c.stats.OutOfOrder++
			default:
				c.stats.SeqGaps += int(d) - 1
				c.lastSeq = p.SequenceNumber
			}
		} else {
			c.haveSeq, c.lastSeq = true, p.SequenceNumber
		}
		c.mu.Unlock()
	}
}

// callWebhook sends a "calls" webhook with one call object.
func (c *emuCall) callWebhook(fields map[string]any) {
	call := map[string]any{"id": c.id, "timestamp": unixNow(), "direction": c.direction}
	if c.direction == "BUSINESS_INITIATED" {
		call["from"], call["to"] = c.e.cfg.DisplayPhoneNumber, c.to
	} else {
		call["from"], call["to"] = c.to, c.e.cfg.DisplayPhoneNumber
	}
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	if key != "" {
		call["biz_opaque_callback_data"] = key
	}
	for k, v := range fields {
		call[k] = v
	}
	value := map[string]any{"calls": []any{call}}
	if c.direction == "BUSINESS_INITIATED" {
		// The connect and terminate webhooks of a business-initiated call name
		// the callee in contacts[] (business-initiated-calls, "Call connect
		// webhook", "Call terminate webhook").
		value["contacts"] = []map[string]any{{"wa_id": c.to, "profile": map[string]string{"name": "Emulated User"}}}
	}
	c.send(value, false)
}

func (c *emuCall) statusWebhook(status string) {
	s := map[string]any{"id": c.id, "timestamp": unixNow(), "type": "call", "status": status, "recipient_id": c.to}
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	if key != "" {
		s["biz_opaque_callback_data"] = key
	}
	c.send(map[string]any{"statuses": []any{s}}, true)
}

// send enqueues a call webhook, applying ReorderWebhooks: a status is held back and
// sent right after the next webhook of the call.
func (c *emuCall) send(value map[string]any, isStatus bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil && isStatus && c.b.ReorderWebhooks {
		c.held = c.e.envelope("calls", value)
		return
	}
	c.e.enqueueBody(c.e.envelope("calls", value), c.b)
	if c.held != nil {
		c.e.enqueueBody(c.held, c.b)
		c.held = nil
	}
}

// PlaceCall makes the emulated user behind from call the business: the user's offer
// arrives on a connect webhook and the business answers with pre_accept/accept. The
// call follows from's Behaviour for HangupAfter. It returns the call ID.
func (e *Emulator) PlaceCall(ctx context.Context, from string) (string, error) {
	from = normalize(from)
	b := e.behaviour(from)
	id := newID("wacid")
	c, err := e.newEmuCall(id, from, "", "USER_INITIATED", b)
	if err != nil {
		return "", err
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		c.stop()
		return "", fmt.Errorf("emulator: create offer: %w", err)
	}
	sdp, err := e.media.SetLocalAndGather(ctx, c.pc, offer)
	if err != nil {
		c.stop()
		return "", fmt.Errorf("emulator: %w", err)
	}
	e.mu.Lock()
	e.calls[id] = c
	e.lastInbound[from] = time.Now() // a user's call opens the customer service window too
	e.mu.Unlock()
	c.callWebhook(map[string]any{"event": "connect", "session": map[string]string{"sdp_type": "offer", "sdp": sdp}})
	if e.cfg.CallbackPermission {
		// The call itself is the permission (Meta: "automatically provides
		// temporary call permissions by placing a call to the business").
		e.grantByReply(from, id, whatsapp.PermissionSourceAutomatic, false, 7*24*time.Hour, b)
	}
	if b.HangupAfter > 0 {
		e.goScript(func(context.Context) {
			// The user hangs up HangupAfter after the business accepted.
			for !c.isAccepted() {
				if !sleep(c.ctx, 10*time.Millisecond) {
					return
				}
			}
			if sleep(c.ctx, b.HangupAfter) {
				c.end("user")
			}
		})
	}
	return id, nil
}

// HangupCall makes the emulated user end a call now.
func (e *Emulator) HangupCall(callID string) error {
	e.mu.Lock()
	c := e.calls[callID]
	e.mu.Unlock()
	if c == nil {
		return fmt.Errorf("emulator: no call %s", callID)
	}
	c.end("user")
	return nil
}

func (c *emuCall) isAccepted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats.Accepted
}
