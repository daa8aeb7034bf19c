package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// PartyTimeout: Turbina ended an answered call that had died: no RTP for
// Config.RTPTimeout, or its session timer ran out unrefreshed (RFC 4028). The
// Result's Reason says which.
const PartyTimeout Party = "timeout"

// onOptions answers OPTIONS (a carrier's keepalive, or its question of what we
// support) with what a carrier may send us.
func (o *Originator) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	_ = tx.Respond(res)
}

// onOther answers the methods Turbina does not serve: 405 with the Allow
// header RFC 3261 §21.4.6 requires.
func (o *Originator) onOther(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	_ = tx.Respond(res)
}

// onUpdate handles UPDATE (RFC 3311) inside an answered call: an offer, a
// session refresh, or both.
func (o *Originator) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	if c := o.inDialog(req); c != nil {
		c.onUpdate(req, tx)
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
}

// onAck takes the ACK of a 200 we sent to a re-INVITE: when that 200 carried
// our offer (the re-INVITE had none), the ACK carries the answer.
func (o *Originator) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := o.inDialog(req); c != nil {
		c.onAck(req)
	}
}

// inDialog is the answered call a request from the carrier belongs to: its
// Call-ID and the carrier's tag in From.
func (o *Originator) inDialog(req *sip.Request) *Call {
	id := req.CallID()
	if id == nil || req.From() == nil || req.To() == nil {
		return nil
	}
	c := o.lookup(id.Value())
	if c == nil {
		return nil
	}
	tag, _ := req.From().Params.Get("tag")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dialog == nil || tag != c.remoteTag {
		return nil
	}
	return c
}

// session is the call's answered dialog.
func (c *Call) session() *sipgo.DialogClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialog
}

// peer is the call's side of what the carrier sends inside the dialog.
func (c *Call) peer() *peerDialog {
	c.mu.Lock()
	contact := sip.HeaderClone(&c.contact)
	c.mu.Unlock()
	return &peerDialog{
		sess: c.session(), neg: c.neg, apply: c.media.setAnswer, contact: contact,
		minSE: c.o.cfg.MinSE.Std(), timers: c.timers, state: c.dlg, log: c.o.log.With("call_id", c.callID()),
	}
}

func (c *Call) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	c.peer().onReinvite(req, tx)
}

func (c *Call) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c.peer().onUpdate(req, tx)
}

func (c *Call) onAck(req *sip.Request) { c.peer().onAck(req) }

func (c *Call) callID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.res.CallID
}

// timerFromAnswer is the session timer a 2xx to our INVITE or refresh set up:
// none when it has no Session-Expires (the carrier does not do timers, RFC
// 4028 §7.2), ours to refresh when it names us (uac).
func timerFromAnswer(res *sip.Response) sessionTimer {
	d, refresher, ok := parseSessionExpires(res.GetHeader("Session-Expires"))
	if !ok {
		return sessionTimer{}
	}
	return sessionTimer{interval: d, refresh: refresher != "uas"}
}

// addTimerHeaders asks for a session timer of d that we refresh.
func addTimerHeaders(req *sip.Request, d, minSE time.Duration) {
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	req.AppendHeader(sessionExpiresHeader(d, "uac"))
	req.AppendHeader(minSEHeader(minSE))
}

// raiseSessionExpires takes a 422's Min-SE as our Session-Expires for the
// next INVITE (RFC 4028 §7.3); false when it names none we may use.
func (c *Call) raiseSessionExpires(res *sip.Response) bool {
	d, ok := parseMinSE(res.GetHeader("Min-SE"))
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok || d <= c.sessionExpires || d > maxSessionExpires {
		return false
	}
	c.sessionExpires = d
	return true
}

// errSessionGone is a refresh answered 408 or 481: the carrier has lost the
// call (RFC 4028 §10).
var errSessionGone = errors.New("session refresh: the carrier has lost the call")

// refresh refreshes the session (RFC 4028 §7.4) with a re-INVITE offering our
// current description unchanged, or an UPDATE without one, and returns the
// timer the 2xx sets. A 422 raises the interval and tries once more; a 491
// (the carrier's own re-INVITE crossed ours) tries again after RFC 3261
// §14.1's random wait, up to maxGlareRetries times; 408 and 481 wrap
// errSessionGone. Any other failure leaves the timer to run out.
func (c *Call) refresh(sess *sipgo.DialogClientSession, cur sessionTimer) (sessionTimer, error) {
	interval := cur.interval
	raised, glares := false, 0
	for {
		res, err := c.sendRefresh(sess, interval)
		if err != nil {
			return cur, err
		}
		switch {
		case res.IsSuccess():
			st := timerFromAnswer(res)
			if st.interval == 0 {
				st = cur // the carrier dropped the header: our timer goes on
			}
			return st, nil
		case res.StatusCode == 422 && !raised:
			if d, ok := parseMinSE(res.GetHeader("Min-SE")); ok && d > interval && d <= maxSessionExpires {
				interval, raised = d, true
				continue
			}
		case res.StatusCode == 491 && glares < maxGlareRetries:
			glares++
			// We placed the call, so the Call-ID is ours: the longer wait.
			if err := c.waitGlare(sess, glareDelay(true, rand.IntN)); err != nil {
				return cur, err
			}
			continue
		case res.StatusCode == 408 || res.StatusCode == 481:
			return cur, fmt.Errorf("%w: %d %s", errSessionGone, res.StatusCode, res.Reason)
		}
		return cur, fmt.Errorf("session refresh: %d %s", res.StatusCode, res.Reason)
	}
}

// maxGlareRetries bounds how often one refresh is sent again after 491.
const maxGlareRetries = 3

// waitGlare waits d before a refresh refused with 491 goes again, or less if
// the call ends meanwhile (then the refresh is abandoned, with an error).
func (c *Call) waitGlare(sess *sipgo.DialogClientSession, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.hangup:
	case <-sess.Context().Done():
	case <-c.o.rootCtx.Done():
	}
	return errors.New("session refresh: call ended while waiting to resend after 491 Request Pending")
}

func (c *Call) sendRefresh(sess *sipgo.DialogClientSession, interval time.Duration) (*sip.Response, error) {
	target := sess.InviteRequest.Recipient
	if ct := sess.InviteResponse.Contact(); ct != nil {
		target = ct.Address
	}
	method := sip.INVITE
	if c.o.cfg.SessionRefresh == RefreshUpdate {
		method = sip.UPDATE
	}
	req := sip.NewRequest(method, target)
	req.AppendHeader(sip.NewHeader("User-Agent", c.o.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	addTimerHeaders(req, interval, c.o.cfg.MinSE.Std())
	if method == sip.INVITE {
		ct := sip.ContentTypeHeader("application/sdp")
		req.AppendHeader(&ct)
		req.SetBody(c.neg.current())
	}
	if method == sip.INVITE {
		// Until its final response, a re-INVITE of the carrier's crosses it (491).
		defer c.dlg.offer()()
	}
	ctx, cancel := context.WithTimeout(c.o.rootCtx, 2*byeTimeout)
	defer cancel()
	res, err := sess.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("session refresh: %w", err)
	}
	if method == sip.INVITE && res.IsSuccess() {
		// The ACK of a 2xx is ours to send (RFC 3261 §13.2.2.4), with the
		// re-INVITE's CSeq number, which WriteRequest keeps for an ACK.
		ack := sip.NewRequest(sip.ACK, target)
		if err := sess.WriteRequest(ack); err != nil {
			c.o.log.Debug("sip: ACK of refresh", "err", err)
		}
		if body := res.Body(); len(body) > 0 {
			// The answer to our offer, with the carrier's key of now on an SRTP call.
			if ans, err := c.neg.take(body); err == nil {
				c.media.setAnswer(ans)
			} else {
				c.o.log.Warn("sip: answer to our refresh unusable, media unchanged", "call_id", c.callID(), "err", err)
			}
		}
	}
	return res, nil
}

// deadCall ends an answered call Turbina found dead (no RTP, or its session
// expired) with BYE, and says why.
func (c *Call) deadCall(sess *sipgo.DialogClientSession, why string) attemptEnd {
	c.o.log.Info("sip: ending a dead call", "call_id", c.callID(), "why", why)
	end := attemptEnd{outcome: OutcomeAnswered, status: 200, reason: why, hangupBy: PartyTimeout, endAt: c.o.now()}
	c.bye(sess)
	return end
}
