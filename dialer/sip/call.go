package sip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// stopReason says why the wait for an answer was cut short.
type stopReason int32

const (
	stopNone       stopReason = iota
	stopNoResponse            // InviteTimeout passed without any response
	stopRingTimeout
	stopHangup    // Hangup or Close
	stopTrunkDown // the trunk failed its probe burst
)

// errCancelUnanswered ends a call whose CANCEL got no reply within the INVITE timeout.
var errCancelUnanswered = errors.New("no reply to CANCEL")

// byeTimeout bounds BYE and CANCEL transactions, shorter than Timer F (32 s)
// so that a dead trunk does not keep a channel busy.
const byeTimeout = 4 * time.Second

// Call is one outbound call placed by [Originator.Dial]. Its methods are safe
// for concurrent use.
type Call struct {
	o       *Originator
	req     DialRequest
	media   *Media
	contact sip.ContactHeader

	hangupOnce sync.Once
	unfit      []*trunk      // trunks that cannot write the numbers in their formats
	hangup     chan struct{} // closed by Hangup
	done       chan struct{} // closed when the Result is final
	answered   atomic.Bool

	// neg is the call's offer/answer state, from the INVITE's offer to the
	// last re-INVITE or UPDATE.
	neg *offerAnswer
	// timers hears of the carrier's session refreshes (re-INVITE, UPDATE).
	timers chan sessionTimer
	// dlg is what the dialog keeps between the requests inside it.
	dlg *dialogState

	mu        sync.Mutex
	res       Result
	dialog    *sipgo.DialogClientSession // set once answered, for remote BYE
	remoteTag string                     // the carrier's To tag from the 200
	byRemote  bool
	// sessionExpires is the Session-Expires the INVITE asks for; a 422 raises it.
	sessionExpires time.Duration
}

// waitAnswer is sess.WaitAnswer with sipgo's CANCEL path made safe: sipgo v1.7.3
// (DialogClientSession.inviteCancel) reads the status of the CANCEL's response
// without checking that there is one, and panics when that transaction ends with
// neither a response nor an error. Such a CANCEL went unanswered: say so.
func waitAnswer(ctx context.Context, sess *sipgo.DialogClientSession, opts sipgo.AnswerOptions) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w (sipgo: %v)", errCancelUnanswered, p)
		}
	}()
	return sess.WaitAnswer(ctx, opts)
}

func newCall(o *Originator, req DialRequest, media *Media) *Call {
	if req.RingTimeout <= 0 {
		req.RingTimeout = o.cfg.RingTimeout.Std()
	}
	return &Call{
		o: o, req: req, media: media,
		hangup:         make(chan struct{}),
		done:           make(chan struct{}),
		neg:            newOfferAnswer(media.LocalAddr(), []Codec{CodecPCMU, CodecPCMA}).secured(media),
		timers:         make(chan sessionTimer, 1),
		dlg:            newDialogState(),
		sessionExpires: o.cfg.SessionExpires.Std(),
	}
}

// Done is closed when the call has ended and Result is final.
func (c *Call) Done() <-chan struct{} { return c.done }

// Result returns the call's record; it is final once Done is closed.
func (c *Call) Result() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.res
	r.Attempts = append([]Attempt(nil), c.res.Attempts...)
	return r
}

// Wait blocks until the call ends or ctx is done, and returns the Result.
func (c *Call) Wait(ctx context.Context) (Result, error) {
	select {
	case <-c.done:
		return c.Result(), nil
	case <-ctx.Done():
		return c.Result(), ctx.Err()
	}
}

// Media returns the RTP side of the call. The remote address and codec are
// set once the call is answered (EventAnswered); the socket closes at the end.
func (c *Call) Media() *Media { return c.media }

// Answered reports whether the call was answered.
func (c *Call) Answered() bool { return c.answered.Load() }

// Hangup ends the call: CANCEL before the answer, BYE after. It returns when
// the call has ended or ctx is done; the hang-up proceeds either way.
func (c *Call) Hangup(ctx context.Context) error {
	c.hangupOnce.Do(func() { close(c.hangup) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sip hangup: %w", ctx.Err())
	}
}

func (c *Call) emit(kind EventKind, trunk string, status int) {
	if c.req.OnEvent != nil {
		c.req.OnEvent(Event{Kind: kind, Time: c.o.now(), Trunk: trunk, Status: status, Call: c})
	}
}

// hungUp reports whether Hangup or Close asked the call to end.
func (c *Call) hungUp() bool {
	select {
	case <-c.hangup:
		return true
	case <-c.o.rootCtx.Done():
		return true
	default:
		return false
	}
}

// attemptEnd is the end of one INVITE on one trunk.
type attemptEnd struct {
	outcome  Outcome
	status   int
	reason   string
	fault    error // non-nil: counts against the trunk's circuit
	failover bool  // the trunk proved broken before the call reached anyone
	// redirect is the Contact of a 301/302 the table says to follow.
	redirect *sip.Uri
	hangupBy Party
	// endAt is when the call ended, if not when attempt returned: a call we
	// hung up ended with our BYE, whenever its answer comes.
	endAt time.Time
}

// run drives the call: attempts on trunks in turn while the failure proves
// the trunk broken, then the answered call until someone hangs up.
func (c *Call) run(t *trunk) {
	defer c.o.wg.Done()
	defer close(c.done)
	defer c.media.close()
	tried := slices.Clone(c.unfit)
	var end attemptEnd
	var target *sip.Uri // the Request-URI a redirect gave; nil for the trunk's own
	redirects := 0
	for {
		tried = append(tried, t)
		end = c.attempt(t, target)
		target = nil
		c.o.release(t)
		if end.fault != nil {
			if t.circuit.fault(c.o.now(), end.fault) {
				c.o.log.Warn("sip trunk circuit opened", "trunk", t.cfg.Name, "err", end.fault)
				c.o.trunkChanged(t)
			}
		}
		c.mu.Lock()
		c.res.Outcome, c.res.Status, c.res.Reason, c.res.HangupBy = end.outcome, end.status, end.reason, end.hangupBy
		c.res.Attempts = append(c.res.Attempts, Attempt{Trunk: t.cfg.Name, CallID: c.res.CallID, Status: end.status, Reason: end.reason})
		c.mu.Unlock()
		if c.hungUp() {
			break
		}
		if end.redirect != nil {
			next, why := c.redirectTo(*end.redirect, redirects)
			if next == nil {
				c.mu.Lock()
				c.res.Reason = fmt.Sprintf("%s: %s not followed: %s", end.reason, end.redirect.String(), why)
				c.mu.Unlock()
				break
			}
			redirects++
			c.o.log.Info("sip redirect", "from", t.cfg.Name, "to", next.cfg.Name, "uri", end.redirect.String())
			c.emit(EventRedirect, next.cfg.Name, end.status)
			t, target = next, end.redirect
			continue
		}
		if !end.failover {
			break
		}
		next, err := c.o.acquire(tried)
		if err != nil {
			break
		}
		if err := c.o.waitSlot(c.waitCtx(), next); err != nil {
			c.o.release(next)
			break
		}
		c.o.log.Info("sip failover", "from", t.cfg.Name, "to", next.cfg.Name, "reason", end.reason)
		c.emit(EventFailover, next.cfg.Name, end.status)
		t = next
	}
	c.mu.Lock()
	c.res.EndAt = end.endAt
	if c.res.EndAt.IsZero() {
		c.res.EndAt = c.o.now()
	}
	res := c.res
	c.mu.Unlock()
	c.o.metrics.calls.WithLabelValues(res.Trunk, string(res.Outcome)).Inc()
	if !res.AckAt.IsZero() {
		c.o.metrics.setup.Observe(res.SetupDuration().Seconds())
	}
	c.emit(EventEnded, res.Trunk, res.Status)
}

// redirectTo takes a channel on the trunk a redirect names, and waits for its
// CPS slot; nil with the reason when the redirect is not to be followed: too
// many already, or a target that is no configured trunk (a redirect must not
// send our calls, and our credentials, anywhere a carrier says).
func (c *Call) redirectTo(u sip.Uri, done int) (*trunk, string) {
	if done >= maxRedirects {
		return nil, fmt.Sprintf("%d redirects already", done)
	}
	next := c.o.trunkAt(u)
	if next == nil {
		return nil, "not the address of a configured trunk"
	}
	if slices.Contains(c.unfit, next) {
		return nil, fmt.Sprintf("trunk %s cannot write the number in its format", next.cfg.Name)
	}
	if err := c.o.acquireTrunk(next); err != nil {
		return nil, fmt.Sprintf("trunk %s: %v", next.cfg.Name, err)
	}
	if err := c.o.waitSlot(c.waitCtx(), next); err != nil {
		c.o.release(next)
		return nil, fmt.Sprintf("trunk %s: %v", next.cfg.Name, err)
	}
	return next, ""
}

// waitCtx is a context that ends when the call is hung up or the originator closes.
func (c *Call) waitCtx() context.Context {
	ctx, cancel := context.WithCancel(c.o.rootCtx)
	go func() {
		select {
		case <-c.hangup:
			cancel()
		case <-ctx.Done():
		case <-c.done:
			cancel()
		}
	}()
	return ctx
}

// buildInvite builds the INVITE for trunk t, to target when a redirect gave one
// (RFC 3261 8.1.3.4: the Request-URI is the Contact's, To stays the same); id
// is the call's numbers as the trunk wants them (numberformat.go).
func (c *Call) buildInvite(t *trunk, callID string, id identity, target *sip.Uri) *sip.Request {
	ruri := c.o.trunkURI(t, id.dialed)
	if target != nil {
		ruri = *target.Clone()
		ruri.Headers = nil
		if t.cfg.Transport != TransportUDP && (ruri.UriParams == nil || !ruri.UriParams.Has("transport")) {
			if ruri.UriParams == nil {
				ruri.UriParams = sip.NewParams()
			}
			ruri.UriParams.Add("transport", t.cfg.Transport)
		}
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	// A redirect to the trunk's own name goes where SRV says, as the first INVITE did.
	if dest := t.destination(); dest != "" && (target == nil || target.Port == 0 && strings.EqualFold(target.Host, t.host)) {
		req.SetDestination(dest)
	}
	from := &sip.FromHeader{
		DisplayName: id.fromDisplay,
		Address:     sip.Uri{Scheme: "sip", User: id.fromUser, Host: id.fromHost},
		Params:      sip.NewParams(),
	}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: id.dialed, Host: t.cfg.Domain}})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	if id.pai != "" {
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:"+id.pai+"@"+t.cfg.Domain+">"))
	}
	if id.privacy != "" {
		req.AppendHeader(sip.NewHeader("Privacy", id.privacy))
	}
	if c.req.AttemptID != "" {
		req.AppendHeader(sip.NewHeader("X-Turbina-Attempt", c.req.AttemptID))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", c.o.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	c.mu.Lock()
	se := c.sessionExpires
	c.mu.Unlock()
	addTimerHeaders(req, se, c.o.cfg.MinSE.Std())
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	// The SDP names the trunk's media address (external_media_addr behind NAT).
	c.neg.setIP(t.mediaIP)
	req.SetBody(c.media.offerSRTP(t.cfg.SRTP, c.neg.offer(false)))
	return req
}

// attempt sends one INVITE on trunk t, to target when a redirect gave one,
// and follows it to its end.
func (c *Call) attempt(t *trunk, target *sip.Uri) attemptEnd {
	name := t.cfg.Name
	callID := uuid.NewString()
	// Dial left out the trunks that cannot write the numbers (Originator.unfit).
	id, _ := t.identityFor(c.req)
	inv := c.buildInvite(t, callID, id, target)
	c.mu.Lock()
	c.res.Trunk, c.res.CallID = name, callID
	c.res.InviteAt, c.res.RingAt, c.res.AnswerAt, c.res.AckAt = c.o.now(), time.Time{}, time.Time{}, time.Time{}
	c.contact = t.dialogUA.ContactHDR
	c.mu.Unlock()
	c.o.register(callID, c)
	defer c.o.unregister(callID)
	down := t.join(c)
	defer t.leave(c)

	if c.hungUp() {
		return attemptEnd{outcome: OutcomeCanceled, reason: "hung up before INVITE"}
	}
	select {
	case <-down:
		return c.trunkDownEnd(t, false, true)
	default:
	}
	if err := t.unresolved(); err != nil {
		t.suspect(sign{what: err.Error(), since: c.o.now()})
		return attemptEnd{outcome: OutcomeTrunkFault, reason: err.Error(), fault: err, failover: true}
	}
	mark, ok := c.o.admitInvite(t, c.hangup)
	if !ok {
		return attemptEnd{outcome: OutcomeCanceled, reason: "hung up before INVITE"}
	}
	connectCtx, cancelConnect := context.WithTimeout(c.o.rootCtx, c.o.cfg.InviteTimeout.Std())
	sess, err := t.dialogUA.WriteInvite(connectCtx, inv)
	t.pacer.sent(mark, c.o.now())
	cancelConnect()
	if err != nil {
		err = fmt.Errorf("invite %s: %w", name, err)
		t.suspect(sign{what: "transport error: " + err.Error(), since: c.o.now()})
		return attemptEnd{outcome: OutcomeTrunkFault, reason: err.Error(), fault: err, failover: true}
	}
	// The session is closed on return, unless a wait left running owns it.
	ownSess := true
	defer func() {
		if ownSess {
			sess.Close()
		}
	}()

	// The answer wait ends on the first of: a final response, no response
	// within InviteTimeout, the ring timeout, Hangup/Close. Before any
	// response, a CANCEL is not allowed (RFC 3261 9.1), so those stops use
	// sipgo's forced exit instead of the CANCEL path.
	waitCtx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	var (
		reason     atomic.Int32
		responded  atomic.Bool
		lastStatus atomic.Int32
		// alerted: a 180/181/182/183 came, so the person may have been
		// alerted and the call is never tried on another trunk.
		alerted    atomic.Bool
		challenges int // 401/407 seen, on the wait's goroutine only
	)
	// canceling is closed when the wait is stopped with a CANCEL (after a response).
	canceling := make(chan struct{})
	halt := func(r stopReason) {
		if !reason.CompareAndSwap(int32(stopNone), int32(r)) {
			return
		}
		if responded.Load() {
			close(canceling)
			stop(context.Canceled)
		} else {
			stop(sipgo.WaitAnswerForceCancelErr)
		}
	}
	noResp := time.AfterFunc(c.o.cfg.InviteTimeout.Std(), func() {
		if !responded.Load() {
			halt(stopNoResponse)
		}
	})
	defer noResp.Stop()
	// Not even a 100 Trying within SuspectAfter: the trunk may be gone; its
	// monitor probes it at once rather than wait for the INVITE timeout.
	inviteAt := c.Result().InviteAt
	suspectTimer := time.AfterFunc(c.o.cfg.SuspectAfter.Std(), func() {
		if !responded.Load() {
			t.suspect(sign{what: fmt.Sprintf("INVITE unanswered after %s", c.o.cfg.SuspectAfter.Std()), since: inviteAt})
		}
	})
	defer suspectTimer.Stop()
	ring := time.AfterFunc(c.req.RingTimeout, func() { halt(stopRingTimeout) })
	defer ring.Stop()
	go func() {
		select {
		case <-c.hangup:
			halt(stopHangup)
		case <-c.o.rootCtx.Done():
			halt(stopHangup)
		case <-down:
			halt(stopTrunkDown)
		case <-waitCtx.Done():
		}
	}()

	username := t.cfg.Username
	if username == "" {
		username = id.authUser
	}
	answered := make(chan error, 1)
	go func() {
		answered <- waitAnswer(waitCtx, sess, sipgo.AnswerOptions{
			Username: username,
			Password: t.cfg.Password,
			OnResponse: func(res *sip.Response) error {
				responded.Store(true)
				noResp.Stop()
				if stopReason(reason.Load()) == stopTrunkDown {
					return nil // the call has ended: nothing of it is reported any more
				}
				lastStatus.Store(int32(res.StatusCode))
				if res.StatusCode > 100 && res.StatusCode < 200 {
					alerted.Store(true)
				}
				if res.StatusCode == 401 || res.StatusCode == 407 {
					// One challenge is answered; another means the credentials
					// were refused, unless it says only that our nonce was stale
					// (RFC 2617 3.2.1). sipgo would try the same password again.
					challenges++
					if challenges > 1 && !staleChallenge(res) {
						return &sipgo.ErrDialogResponse{Res: res}
					}
				}
				if res.IsSuccess() {
					// From the 200 on, packets are the person's: the far end may
					// talk before our ACK, or before WaitAnswer returns.
					c.media.answered.Store(true)
				}
				c.onProvisional(name, res)
				return nil
			},
		})
	}()
	select {
	case err = <-answered:
	case <-canceling:
		if stopReason(reason.Load()) == stopTrunkDown {
			// The trunk is dead: the CANCEL goes out best effort and the call
			// ends now. Should a 200 cross it, it is ACKed and BYEd, never
			// reported as an answer.
			ownSess = false
			go func() {
				<-answered
				if res := sess.InviteResponse; res != nil && res.IsSuccess() {
					c.o.log.Info("sip: late answer to a call ended trunk_down, hanging up", "call_id", callID)
					c.ackAndBye(sess)
				}
				sess.Close()
			}()
			return c.trunkDownEnd(t, true, lastStatus.Load() <= 100)
		}
		// sipgo waits for the CANCEL's reply up to Timer F (32 s): a trunk that
		// stopped answering would keep the channel, and the pacer's count, that
		// long. Past the INVITE timeout the call ends here; the transaction
		// finishes on its own.
		select {
		case err = <-answered:
		case <-time.After(c.o.cfg.InviteTimeout.Std()):
			err = errCancelUnanswered
			t.circuit.fault(c.o.now(), fmt.Errorf("%s: %w", name, err))
			ownSess = false
			go func() {
				<-answered
				sess.Close()
			}()
		}
	}
	if err == nil {
		stop(nil)
		return c.answeredCall(t, sess, down)
	}
	if res := sess.InviteResponse; res != nil && res.IsSuccess() {
		// The 200 crossed our CANCEL: the call is up, so ACK and BYE it.
		c.ackAndBye(sess)
	}
	var final *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &final):
		if final.Res.StatusCode == 422 && stopReason(reason.Load()) == stopNone && c.raiseSessionExpires(final.Res) {
			// Our Session-Expires was below the carrier's Min-SE: asked
			// again with its minimum (RFC 4028 §7.3); nobody was alerted.
			c.o.log.Info("sip: 422, INVITE again with the carrier's Min-SE", "trunk", name)
			return c.attempt(t, target)
		}
		end := c.finalResponse(t, final.Res, alerted.Load())
		switch stopReason(reason.Load()) {
		case stopRingTimeout:
			// Our CANCEL crossed the response: the call is over, not moved.
			end.outcome, end.redirect, end.failover = OutcomeNoAnswer, nil, false
		case stopTrunkDown:
			end.outcome, end.fault, end.redirect = OutcomeTrunkDown, nil, nil
		}
		return end
	}
	status := 0
	if res := sess.InviteResponse; res != nil && !res.IsProvisional() {
		status = res.StatusCode
	}
	switch stopReason(reason.Load()) {
	case stopRingTimeout:
		if err != errCancelUnanswered {
			t.circuit.success()
		}
		return attemptEnd{outcome: OutcomeNoAnswer, status: status, reason: "ring timeout"}
	case stopHangup:
		return attemptEnd{outcome: OutcomeCanceled, status: status, reason: "hung up before answer", hangupBy: PartyLocal}
	case stopTrunkDown:
		// Nothing came back, so no CANCEL (RFC 3261 9.1): the INVITE is no longer
		// retransmitted, and a 200 that still comes is ACKed and BYEd.
		c.o.orphan(callID, sess)
		return c.trunkDownEnd(t, false, lastStatus.Load() <= 100)
	case stopNoResponse:
		err := fmt.Errorf("%s: no response to INVITE within %s", name, c.o.cfg.InviteTimeout.Std())
		return attemptEnd{outcome: OutcomeTrunkFault, reason: err.Error(), fault: err, failover: true}
	}
	// Transport error or transaction timeout. Fail over only when nothing
	// but 100 Trying came back: after a ring the customer may have been
	// reached, and ringing them twice is worse than losing the attempt.
	err = fmt.Errorf("%s: %w", name, err)
	t.suspect(sign{what: "transaction failed: " + err.Error(), since: c.o.now()})
	ls := lastStatus.Load()
	return attemptEnd{outcome: OutcomeTrunkFault, status: status, reason: err.Error(), fault: err, failover: ls <= 100}
}

// finalResponse reads a final non-2xx response through the trunk's response
// table: the outcome, whether it counts against the trunk, raises its alarm or
// holds it, and whether the call moves on: to another trunk only while the
// person has not been alerted (a second ring is worse than a lost attempt), to
// a redirect's Contact whatever came before.
func (c *Call) finalResponse(t *trunk, res *sip.Response, alerted bool) attemptEnd {
	v := t.responses.classify(res)
	what := fmt.Sprintf("%d %s", res.StatusCode, res.Reason)
	end := attemptEnd{outcome: v.outcome(), status: res.StatusCode, reason: res.Reason, failover: v.failover() && !alerted}
	if v.fault() {
		end.fault = fmt.Errorf("%s: %s", t.cfg.Name, what)
	}
	if v.rule.Action == ActionPerson {
		t.circuit.success()
		c.o.clearAlarm(t)
	}
	if v.alarm() {
		c.o.alarm(t, what)
	}
	if v.hold > 0 {
		c.o.holdTrunk(t, v.hold, what)
	}
	if v.rule.Action == ActionRedirect {
		if ct := res.Contact(); ct != nil {
			u := ct.Address
			end.redirect = &u
		} else {
			end.reason += ": no Contact to follow"
		}
	}
	return end
}

func (c *Call) onProvisional(trunk string, res *sip.Response) {
	code := res.StatusCode
	if code >= 200 {
		return
	}
	now := c.o.now()
	switch {
	case code == 100:
		c.emit(EventTrying, trunk, code)
		return
	case code == 183:
		if body := res.Body(); len(body) > 0 {
			// Early media that cannot be keyed is not heard; the 200 decides.
			if ans, err := ParseAnswerSDP(body); err == nil && c.media.keyAnswer(ans) == nil {
				c.media.setAnswer(ans)
			}
		}
	}
	c.mu.Lock()
	first := c.res.RingAt.IsZero()
	if first {
		c.res.RingAt = now
	}
	c.mu.Unlock()
	if code == 183 {
		c.emit(EventEarlyMedia, trunk, code)
	} else {
		c.emit(EventRinging, trunk, code)
	}
}

func (c *Call) ackAndBye(sess *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	if err := sess.Ack(ctx); err != nil {
		c.o.log.Debug("sip ack failed", "err", err)
	}
	if err := sess.Bye(ctx); err != nil {
		c.o.log.Debug("sip bye failed", "err", err)
	}
}

// trunkDownEnd is the end of an unanswered attempt on a trunk found down;
// failover when nothing but 100 Trying came back, so nobody has been reached.
func (c *Call) trunkDownEnd(t *trunk, canceled, failover bool) attemptEnd {
	reason := "trunk down"
	if why := t.downSign(); why != "" {
		reason += ": " + why
	}
	if canceled {
		reason += " (CANCEL sent)"
	}
	return attemptEnd{outcome: OutcomeTrunkDown, reason: reason, failover: failover}
}

// answeredCall ACKs the 200, checks its SDP, and holds the call until one side
// hangs up, or its trunk is down and its media has stopped.
func (c *Call) answeredCall(t *trunk, sess *sipgo.DialogClientSession, down <-chan struct{}) attemptEnd {
	t.circuit.success()
	c.o.clearAlarm(t)
	now := c.o.now()
	tag := ""
	if to := sess.InviteResponse.To(); to != nil {
		tag, _ = to.Params.Get("tag")
	}
	c.mu.Lock()
	c.res.AnswerAt = now
	c.dialog, c.remoteTag = sess, tag
	c.mu.Unlock()
	ackCtx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	err := sess.Ack(ackCtx)
	cancel()
	c.mu.Lock()
	c.res.AckAt = c.o.now()
	c.mu.Unlock()
	c.answered.Store(true)
	if err != nil {
		err = fmt.Errorf("%s: ack: %w", t.cfg.Name, err)
		c.bye(sess)
		return attemptEnd{outcome: OutcomeTrunkFault, status: 200, reason: err.Error(), fault: err, hangupBy: PartyLocal}
	}
	ans, err := ParseAnswerSDP(sess.InviteResponse.Body())
	if err != nil {
		c.bye(sess)
		return attemptEnd{outcome: OutcomeMediaFailed, status: 200, reason: err.Error(), hangupBy: PartyLocal}
	}
	if err := c.media.keyAnswer(ans); err != nil {
		// The carrier does not speak SRTP as this trunk is set up to: every call
		// would fail alike, so it counts against the trunk, not the person.
		err = fmt.Errorf("%s: %w", t.cfg.Name, err)
		c.bye(sess)
		return attemptEnd{outcome: OutcomeTrunkFault, status: 200, reason: err.Error(), fault: err, hangupBy: PartyLocal}
	}
	c.media.setAnswer(ans)
	if c.o.cfg.SendSilence {
		go c.media.sendSilence(c.done)
	}
	t.markAnswered(c)
	c.emit(EventAnswered, t.cfg.Name, 200)

	// The session timer (RFC 4028): we refresh at half the interval, or give
	// the call up when the carrier, the refresher, lets it lapse.
	st := timerFromAnswer(sess.InviteResponse)
	refreshT := time.NewTimer(time.Hour)
	refreshT.Stop()
	defer refreshT.Stop()
	var sessionTick <-chan time.Time
	armTimer := func() {
		refreshT.Stop()
		sessionTick = nil
		switch {
		case st.interval == 0:
		case st.refresh:
			refreshT.Reset(st.interval / 2)
			sessionTick = refreshT.C
		default:
			refreshT.Reset(st.expiryDelay())
			sessionTick = refreshT.C
		}
	}
	armTimer()
	var refreshErr error // the last refresh failed: the session lapses unless refreshed
	// A call whose carrier sends no RTP for RTPTimeout while its SDP says it
	// sends is dead (the far end vanished without a BYE).
	rtpTimeout := c.o.cfg.RTPTimeout.Std()
	rtpCheck := time.NewTicker(min(rtpTimeout/4, time.Second))
	defer rtpCheck.Stop()

	// Once the trunk is down the call is watched: a conversation whose media
	// still flows is left alone, one whose media stopped is over.
	var watch <-chan time.Time
	dead := down // down is cleared once heard; dead stays closed
	silence := c.o.cfg.MediaSilence.Std()
	ticker := time.NewTicker(silence / 4)
	ticker.Stop()
	defer ticker.Stop()
wait:
	for {
		select {
		case <-down:
			down = nil
			if c.mediaSilent(silence) {
				return c.trunkHangup(t, sess)
			}
			ticker.Reset(silence / 4)
			watch = ticker.C
		case <-watch:
			if t.circuit.current() == CircuitClosed {
				ticker.Stop()
				watch = nil // the trunk is back: the call is its own again
			} else if c.mediaSilent(silence) {
				return c.trunkHangup(t, sess)
			}
		case upd := <-c.timers:
			if upd.interval != 0 {
				st = upd
			}
			refreshErr = nil
			armTimer()
		case <-sessionTick:
			if !st.refresh {
				why := sessionExpired(st.interval)
				if refreshErr != nil {
					why += ": " + refreshErr.Error()
				}
				return c.deadCall(sess, why)
			}
			next, err := c.refresh(sess, st)
			if errors.Is(err, errSessionGone) {
				return c.deadCall(sess, err.Error())
			}
			if err != nil {
				// Not refreshed: the session lapses at the end of its
				// interval, the other half, unless the carrier refreshes it.
				c.o.log.Warn("sip: session refresh failed", "call_id", c.callID(), "err", err)
				refreshErr, st.refresh = err, false
				refreshT.Reset(st.interval / 2)
				continue
			}
			refreshErr, st = nil, next
			armTimer()
		case <-rtpCheck.C:
			if c.rtpDead(rtpTimeout) {
				return c.deadCall(sess, fmt.Sprintf("rtp timeout: no RTP from the carrier for %s", rtpTimeout))
			}
		case <-sess.Context().Done():
			c.mu.Lock()
			remote := c.byRemote
			c.mu.Unlock()
			if remote {
				return attemptEnd{outcome: OutcomeAnswered, status: 200, reason: "remote hangup", hangupBy: PartyRemote}
			}
			return attemptEnd{outcome: OutcomeAnswered, status: 200, reason: "dialog ended", hangupBy: PartyRemote}
		case <-c.hangup:
			break wait
		case <-c.o.rootCtx.Done():
			break wait
		}
	}
	return c.localHangup(t, sess, dead)
}

// localHangup ends an answered call we hung up: it ended with our BYE. The
// BYE's answer is waited for while the trunk is up; a dead trunk answers
// nothing, and its BYE goes on in the background (up to byeTimeout) while the
// call ends at once, when the trunk is found down. Otherwise an agent's hang-up
// just before the trunk's death is known would hold the call, and its record's
// end, byeTimeout past the hang-up.
func (c *Call) localHangup(t *trunk, sess *sipgo.DialogClientSession, dead <-chan struct{}) attemptEnd {
	end := attemptEnd{outcome: OutcomeAnswered, status: 200, reason: "local hangup", hangupBy: PartyLocal, endAt: c.o.now()}
	byed := make(chan struct{})
	c.o.wg.Add(1)
	go func() {
		defer c.o.wg.Done()
		defer close(byed)
		c.bye(sess)
	}()
	select {
	case <-byed:
	case <-dead:
		end.reason = "local hangup; BYE not awaited, trunk down"
		if why := t.downSign(); why != "" {
			end.reason += ": " + why
		}
	}
	return end
}

// trunkHangup ends an answered call whose trunk died under it: the BYE goes out
// best effort in the background, and the call ends now.
func (c *Call) trunkHangup(t *trunk, sess *sipgo.DialogClientSession) attemptEnd {
	c.o.wg.Add(1)
	go func() {
		defer c.o.wg.Done()
		c.bye(sess)
	}()
	reason := "trunk down, media stopped"
	if why := t.downSign(); why != "" {
		reason += ": " + why
	}
	return attemptEnd{outcome: OutcomeAnswered, status: 200, reason: reason, hangupBy: PartyTrunk}
}

// mediaSilent reports whether no RTP came for silence; a call whose media
// cannot be observed (detached, not reported) is not judged silent.
func (c *Call) mediaSilent(silence time.Duration) bool {
	heard, ok := c.lastHeard()
	return ok && c.o.now().Sub(heard) >= silence
}

// rtpDead reports whether the carrier, whose SDP says it sends, has sent no
// RTP for timeout. Unlike mediaSilent it judges a detached call whose reader
// promised to report (WillNoteReceived) and has had nothing to report.
func (c *Call) rtpDead(timeout time.Duration) bool {
	m := c.media
	if !m.detached.Load() || m.reported.Load() || !m.promised.Load() {
		return c.mediaSilent(timeout)
	}
	expect, since := m.expectsMedia()
	if !expect {
		return false
	}
	c.mu.Lock()
	heard := c.res.AnswerAt
	c.mu.Unlock()
	if at := m.lastRecv.Load(); at != 0 && time.Unix(0, at).After(heard) {
		heard = time.Unix(0, at) // read by Media before the hand-over
	}
	if since.After(heard) {
		heard = since
	}
	return c.o.now().Sub(heard) >= timeout
}

// lastHeard is when the newest RTP arrived, or the answer when none did yet;
// false when the media is in a bridge that does not report it.
func (c *Call) lastHeard() (time.Time, bool) {
	m := c.media
	if m.detached.Load() && !m.reported.Load() {
		return time.Time{}, false
	}
	expect, since := m.expectsMedia()
	if !expect {
		return time.Time{}, false // on hold: the carrier sends nothing, as agreed
	}
	c.mu.Lock()
	heard := c.res.AnswerAt
	c.mu.Unlock()
	if since.After(heard) {
		heard = since
	}
	if at, ok := m.LastReceived(); ok && at.After(heard) {
		heard = at
	}
	return heard, !heard.IsZero()
}

func (c *Call) bye(sess *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	c.dlg.afterAnswers()
	if err := sess.Bye(ctx); err != nil {
		c.o.log.Debug("sip bye failed", "call_id", sess.InviteRequest.CallID().Value(), "err", err)
	}
}

// remoteBye answers a BYE for this call; false if it is not for the answered dialog.
func (c *Call) remoteBye(req *sip.Request, tx sip.ServerTransaction) bool {
	c.mu.Lock()
	sess := c.dialog
	got := ""
	if req.From() != nil {
		got, _ = req.From().Params.Get("tag")
	}
	if sess == nil || got != c.remoteTag {
		c.mu.Unlock()
		return false
	}
	c.byRemote = true
	c.mu.Unlock()
	if err := sess.ReadBye(req, tx); err != nil {
		c.o.log.Debug("sip: answering BYE", "err", err)
	}
	return true
}
