package sip

import (
	"log/slog"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// peerDialog answers what the far end sends inside an answered call that
// Turbina placed — a carrier's (Call) or an agent phone's (AgentCall):
// re-INVITE and UPDATE with or without an offer, and the ACK that answers an
// offer of ours.
type peerDialog struct {
	sess    *sipgo.DialogClientSession
	neg     *offerAnswer
	apply   func(Answer) // the agreed media, applied
	contact sip.Header   // ours, for the 200s
	minSE   time.Duration
	timers  chan<- sessionTimer // the call's loop restarts its session timer
	state   *dialogState        // the call's, shared by every request in it
	log     *slog.Logger
}

// onReinvite answers a re-INVITE (RFC 3261 §14.2, RFC 3264 §8): with an offer,
// the answer in the 200 and the media moved to what it agreed; without one, our
// offer in the 200 and its answer taken from the ACK. An offer we cannot carry
// is refused with 488 and changes nothing. A Session-Expires in it refreshes
// the session timer (RFC 4028).
func (d *peerDialog) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	d.answer(req, tx, true)
}

// onUpdate answers an UPDATE (RFC 3311): its offer answered in the 200 as a
// re-INVITE's is, or, without one, a bare 200 (a session refresh).
func (d *peerDialog) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	d.answer(req, tx, false)
}

func (d *peerDialog) answer(req *sip.Request, tx sip.ServerTransaction, invite bool) {
	d.state.answering.Lock()
	defer d.state.answering.Unlock()
	if err := d.sess.ReadRequest(req, tx); err != nil {
		d.respond(tx, sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		return
	}
	if d.state.crosses(invite, len(req.Body()) > 0) {
		// Glare: our own re-INVITE is pending. The peer tries again later,
		// after RFC 3261 §14.1's random wait.
		d.log.Info("sip: request crossing our pending re-INVITE refused", "method", req.Method)
		d.respond(tx, sip.NewResponseFromRequest(req, 491, "Request Pending", nil))
		return
	}
	st, timerHeaders, tooSmall, timed := uasTimer(req, d.minSE)
	if tooSmall {
		res := sip.NewResponseFromRequest(req, 422, "Session Interval Too Small", nil)
		res.AppendHeader(minSEHeader(d.minSE))
		d.respond(tx, res)
		return
	}
	var body []byte
	switch offer := req.Body(); {
	case len(offer) > 0:
		ans, sdp, err := d.neg.answer(offer)
		if err != nil {
			d.log.Info("sip: offer inside the call refused", "method", req.Method, "err", err)
			d.respond(tx, sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			return
		}
		d.apply(ans)
		body = sdp
		d.log.Info("sip: offer inside the call answered", "method", req.Method, "remote", ans.Remote,
			"codec", ans.Codec.Name, "peer", ans.Direction)
	case invite:
		body = d.neg.offer(true)
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", body)
	if body != nil {
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
	}
	res.AppendHeader(sip.HeaderClone(d.contact))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	for _, h := range timerHeaders {
		res.AppendHeader(h)
	}
	d.respond(tx, res)
	if invite && !sip.IsReliable(req.Transport()) {
		if cseq := req.CSeq(); cseq != nil {
			d.state.retransmit(d.sess.Context(), cseq.SeqNo, func() error { return tx.Respond(res) }, d.log)
		}
	}
	if !timed {
		st = sessionTimer{} // a refresh all the same: the running timer restarts
	}
	select {
	case d.timers <- st:
	default: // a refresh is pending already: the loop restarts the timer all the same
	}
}

// onAck stops the retransmission of the 2xx it acknowledges and applies the
// answer it carries to the offer of ours that 2xx held.
func (d *peerDialog) onAck(req *sip.Request) {
	if cseq := req.CSeq(); cseq != nil {
		d.state.acked(cseq.SeqNo)
	}
	ans, waited, err := d.neg.answered(req.Body())
	switch {
	case !waited:
	case err != nil:
		// RFC 3261 §14.2 leaves a bad answer in an ACK no reply: the media
		// stays as it was, and the call goes on.
		d.log.Warn("sip: answer in ACK unusable, media unchanged", "err", err)
	default:
		d.apply(ans)
		d.log.Info("sip: answer in ACK applied", "remote", ans.Remote, "codec", ans.Codec.Name)
	}
}

func (d *peerDialog) respond(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		d.log.Debug("sip: respond in dialog", "status", res.StatusCode, "err", err)
	}
}
