package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/turbina-dialer/turbina/media"
)

// cancelGrace is how long CallAgent waits for the phone to confirm a CANCEL
// (or to time out an unanswered INVITE) before it returns anyway.
const cancelGrace = 2 * time.Second

// AgentCallOptions tune one call to an agent's phone.
type AgentCallOptions struct {
	// DisplayName is the caller name the phone shows (default "Turbina").
	DisplayName string
	// AnswerTimeout overrides RegistrarConfig.AnswerTimeout when positive.
	AnswerTimeout time.Duration
}

// AgentCall is the nailed-up call to an agent's phone: placed once at login,
// it stays up while customers are switched onto its media leg. Its methods
// are safe for concurrent use.
type AgentCall struct {
	r       *Registrar
	agentID int64
	binding Binding
	ua      *sipgo.DialogUA
	callID  string
	leg     *media.UDPLeg
	// neg is the call's offer/answer state; once answered it carries only the
	// codec the agent's bridge was built with.
	neg *offerAnswer
	// timers hears of the phone's session refreshes (re-INVITE, UPDATE).
	timers chan sessionTimer
	// dlg is what the dialog keeps between the requests inside it.
	dlg *dialogState

	sess      *sipgo.DialogClientSession
	remoteTag string

	hangupOnce sync.Once
	hangup     chan struct{}
	done       chan struct{}
	byRemote   atomic.Bool
	loseOnce   sync.Once
	lost       chan struct{} // the phone stopped answering keepalives
	lostErr    error         // why; written before lost is closed

	mu  sync.Mutex
	err error
}

// CallAgent calls the phone agentID registered and returns once the phone has
// answered and the ACK is sent, with the answered audio on [AgentCall.Leg].
// ctx bounds only the setup, as with net.Dialer: cancelling it while the
// phone rings sends a CANCEL; once answered, the call lasts until
// [AgentCall.Hangup], the phone's BYE or [Registrar.Close].
//
// The phone may have registered to another node sharing the database
// (RegistrarConfig.Shared): over UDP it is called from this registrar's socket
// all the same. The error wraps ErrNotRegistered when the agent has no live
// binding, ErrPhoneElsewhere when its only one is over TCP to another node,
// ErrPhoneBusy, ErrPhoneNoAnswer, ErrPhoneUnreachable or ErrPhoneRejected
// when the phone does not take the call, and ErrNoCommonCodec or ErrNoAudio
// when its answer has no usable audio (the call is then hung up).
func (r *Registrar) CallAgent(ctx context.Context, agentID int64, opts AgentCallOptions) (*AgentCall, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("call agent %d: %w", agentID, err)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrRegistrarClosed
	}
	b, err := r.callable(ctx, agentID)
	if err != nil {
		return nil, fmt.Errorf("call agent %d: %w", agentID, err)
	}
	conn, err := r.ports.listen()
	if err != nil {
		return nil, fmt.Errorf("call agent %d: %w", agentID, err)
	}
	c := &AgentCall{
		r: r, agentID: agentID, binding: b, ua: r.udpUA, callID: uuid.NewString(),
		hangup: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{}),
		timers: make(chan sessionTimer, 1),
		dlg:    newDialogState(),
	}
	if b.Transport == "tcp" {
		c.ua = r.tcpUA
	}
	if err := c.setup(ctx, conn, opts); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("call agent %d at %s: %w", agentID, b.Contact, err)
	}
	return c, nil
}

func (c *AgentCall) buildInvite(conn *net.UDPConn, opts AgentCallOptions) *sip.Request {
	r, b := c.r, c.binding
	inv := sip.NewRequest(sip.INVITE, *b.contact.Clone())
	name := opts.DisplayName
	if name == "" {
		name = "Turbina"
	}
	from := &sip.FromHeader{
		DisplayName: name,
		Address:     sip.Uri{Scheme: "sip", User: "turbina", Host: r.host},
		Params:      sip.NewParams(),
	}
	from.Params.Add("tag", sip.GenerateTagN(16))
	inv.AppendHeader(from)
	inv.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: b.aor.User, Host: b.aor.Host, Port: b.aor.Port}})
	cid := sip.CallIDHeader(c.callID)
	inv.AppendHeader(&cid)
	inv.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	inv.AppendHeader(sip.HeaderClone(&c.ua.ContactHDR))
	inv.AppendHeader(sip.NewHeader("User-Agent", r.cfg.UserAgent))
	inv.AppendHeader(sip.NewHeader("Allow", allowed))
	ct := sip.ContentTypeHeader("application/sdp")
	inv.AppendHeader(&ct)
	c.neg = newOfferAnswer(conn.LocalAddr().(*net.UDPAddr), []Codec{CodecPCMU, CodecPCMA})
	inv.SetBody(c.neg.offer(false))
	// Send to where the REGISTER came from (NAT), over the same transport;
	// over TCP that reuses the phone's connection. Should that connection be
	// gone, its source port means nothing any more: try the Contact.
	inv.SetTransport(strings.ToUpper(b.Transport))
	if b.Transport != "tcp" {
		inv.SetDestination(b.Source)
	} else if conn, _ := r.ua.TransportLayer().GetConnection("tcp", b.Source); conn != nil {
		inv.SetDestination(b.Source)
	}
	return inv
}

// setup sends the INVITE and waits for the answer, then ACKs it and starts the call.
func (c *AgentCall) setup(ctx context.Context, conn *net.UDPConn, opts AgentCallOptions) error {
	r := c.r
	inv := c.buildInvite(conn, opts)
	sendCtx, cancelSend := context.WithTimeout(ctx, r.cfg.InviteTimeout.Std())
	sess, err := c.ua.WriteInvite(sendCtx, inv)
	cancelSend()
	if err != nil {
		return fmt.Errorf("%w: invite: %w", ErrPhoneUnreachable, err)
	}

	answerTimeout := r.cfg.AnswerTimeout.Std()
	if opts.AnswerTimeout > 0 {
		answerTimeout = opts.AnswerTimeout
	}
	// The wait ends on the first of: a final response, no response within
	// InviteTimeout, the answer timeout, ctx, Close. Before any response a
	// CANCEL is not allowed (RFC 3261 9.1), so those stops force the exit.
	waitCtx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	var (
		why       atomic.Pointer[error] // why the wait was cut short
		responded atomic.Bool
	)
	giveUp := make(chan struct{})
	halt := func(err error) {
		if !why.CompareAndSwap(nil, &err) {
			return
		}
		time.AfterFunc(cancelGrace, func() { close(giveUp) })
		if responded.Load() {
			stop(context.Canceled) // sipgo sends CANCEL
		} else {
			stop(sipgo.WaitAnswerForceCancelErr)
		}
	}
	noResp := time.AfterFunc(r.cfg.InviteTimeout.Std(), func() {
		if !responded.Load() {
			halt(fmt.Errorf("%w: no response within %s", ErrPhoneUnreachable, r.cfg.InviteTimeout.Std()))
		}
	})
	defer noResp.Stop()
	ring := time.AfterFunc(answerTimeout, func() {
		halt(fmt.Errorf("%w: not answered within %s", ErrPhoneNoAnswer, answerTimeout))
	})
	defer ring.Stop()
	go func() {
		select {
		case <-ctx.Done():
			halt(ctx.Err())
		case <-r.rootCtx.Done():
			halt(ErrRegistrarClosed)
		case <-waitCtx.Done():
		}
	}()
	waited := make(chan error, 1)
	go func() {
		waited <- waitAnswer(waitCtx, sess, sipgo.AnswerOptions{
			OnResponse: func(*sip.Response) error {
				responded.Store(true)
				noResp.Stop()
				return nil
			},
		})
	}()
	select {
	case err = <-waited:
	case <-giveUp:
		// The phone acknowledged neither our CANCEL nor the INVITE in time
		// (sipgo would wait 64*T1 for its 487): report now, and let the
		// transaction finish in the background.
		r.mu.Lock()
		tracked := !r.closed
		if tracked {
			r.wg.Add(1) // Close waits for it
		}
		r.mu.Unlock()
		go func() {
			if tracked {
				defer r.wg.Done()
			}
			<-waited
			c.endFailedInvite(sess)
		}()
		return *why.Load()
	}
	if err != nil {
		c.endFailedInvite(sess)
		if w := why.Load(); w != nil {
			return *w
		}
		var final *sipgo.ErrDialogResponse
		if errors.As(err, &final) {
			return statusError(final.Res)
		}
		return fmt.Errorf("%w: %w", ErrPhoneUnreachable, err)
	}
	stop(nil)
	c.sess = sess
	if to := sess.InviteResponse.To(); to != nil {
		c.remoteTag, _ = to.Params.Get("tag")
	}
	ackCtx, cancelAck := context.WithTimeout(context.Background(), byeTimeout)
	err = sess.Ack(ackCtx)
	cancelAck()
	if err != nil {
		c.bye()
		sess.Close()
		return fmt.Errorf("%w: ack: %w", ErrPhoneUnreachable, err)
	}
	ans, err := ParseAnswerSDP(sess.InviteResponse.Body())
	if err != nil {
		c.bye()
		sess.Close()
		return err
	}
	c.neg.restrict(ans.Codec)
	codec := media.PCMU
	if ans.Codec.Name == "PCMA" {
		codec = media.PCMA
	}
	codec.PayloadType, codec.TelephoneEvent = ans.Codec.PayloadType, ans.TelephoneEvent
	// Latching: phones behind NAT send from an address their SDP does not
	// name; the leg answers wherever their RTP comes from.
	c.leg = media.NewUDPLeg(conn, ans.Remote, codec, media.WithLatching(), media.WithLogger(r.log))

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.bye()
		sess.Close()
		return ErrRegistrarClosed
	}
	r.calls[c.callID] = c
	r.wg.Add(1)
	r.mu.Unlock()
	r.log.Info("agent phone answered", "agent", c.agentID, "contact", c.binding.Contact,
		"codec", codec.Name, "rtp", ans.Remote.String())
	go c.run()
	return nil
}

// endFailedInvite cleans up after an INVITE that did not set up the call. A
// 200 that crossed our CANCEL means the call is up after all: ACK and BYE it.
func (c *AgentCall) endFailedInvite(sess *sipgo.DialogClientSession) {
	defer sess.Close()
	if res := sess.InviteResponse; res != nil && res.IsSuccess() {
		c.sess = sess
		c.ackAndBye()
	}
}

// statusError maps a phone's final failure response to an error.
func statusError(res *sip.Response) error {
	var kind error
	switch res.StatusCode {
	case 486, 600, 603:
		kind = ErrPhoneBusy
	case 480, 408, 487:
		kind = ErrPhoneNoAnswer
	case 488, 606:
		kind = ErrNoCommonCodec
	default:
		kind = ErrPhoneRejected
	}
	return fmt.Errorf("%w: %d %s", kind, res.StatusCode, res.Reason)
}

// run holds the answered call until one side hangs up.
func (c *AgentCall) run() {
	r := c.r
	defer r.wg.Done()
	var reason error
	// A phone that asked for a session timer (RFC 4028) refreshes the call;
	// one that stops is gone, and its call with it.
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	var expired <-chan time.Time
	var st sessionTimer
	for {
		select {
		case upd := <-c.timers:
			if upd.interval != 0 {
				st = upd
			}
			expiry.Stop()
			expired = nil
			if st.interval != 0 {
				expiry.Reset(st.expiryDelay())
				expired = expiry.C
			}
			continue
		case <-expired:
			reason = fmt.Errorf("sip: agent call ended: %s", sessionExpired(st.interval))
			c.bye()
		case <-c.sess.Context().Done():
			if c.byRemote.Load() {
				reason = errors.New("sip: agent phone hung up")
			} else {
				reason = fmt.Errorf("sip: agent call ended: %w", context.Cause(c.sess.Context()))
			}
		case <-c.hangup:
			c.bye()
		case <-c.lost:
			// No BYE: nobody is there to answer it, and its retransmissions
			// would only hold the end of the call back.
			reason = c.lostErr
		case <-r.rootCtx.Done():
			reason = ErrRegistrarClosed
			c.bye()
		}
		break // every case but a timer's update ends the call (Hangup's with no error)
	}
	c.sess.Close()
	_ = c.leg.Close()
	r.mu.Lock()
	delete(r.calls, c.callID)
	r.mu.Unlock()
	c.mu.Lock()
	c.err = reason
	c.mu.Unlock()
	r.log.Info("agent phone call ended", "agent", c.agentID, "reason", reason)
	close(c.done)
}

// lose ends the call because the phone stopped answering (err wraps ErrPhoneLost).
func (c *AgentCall) lose(err error) {
	c.loseOnce.Do(func() {
		c.lostErr = err
		close(c.lost)
	})
}

// AgentID returns the agent whose phone was called.
func (c *AgentCall) AgentID() int64 { return c.agentID }

// CallID returns the SIP Call-ID of the call.
func (c *AgentCall) CallID() string { return c.callID }

// Binding returns the registration the call was placed to.
func (c *AgentCall) Binding() Binding { return c.binding }

// Leg returns the answered audio: a UDP leg on the call's RTP socket with the
// negotiated codec, latching to wherever the phone's RTP comes from. The call
// owns the leg and closes it when it ends.
func (c *AgentCall) Leg() media.Leg { return c.leg }

// Done is closed when the call has ended: hung up on either side, or the
// registrar closed.
func (c *AgentCall) Done() <-chan struct{} { return c.done }

// Err says why the call ended once Done is closed: nil after Hangup, an error
// when the phone hung up, stopped answering (ErrPhoneLost) or the registrar
// closed.
func (c *AgentCall) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Hangup sends BYE and returns when the call has ended or ctx is done; the
// hang-up proceeds either way. It may be called more than once.
func (c *AgentCall) Hangup(ctx context.Context) error {
	c.hangupOnce.Do(func() { close(c.hangup) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sip agent hangup: %w", ctx.Err())
	}
}

func (c *AgentCall) bye() {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	c.dlg.afterAnswers()
	if err := c.sess.Bye(ctx); err != nil {
		c.r.log.Debug("sip agent bye failed", "agent", c.agentID, "err", err)
	}
}

func (c *AgentCall) ackAndBye() {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	if err := c.sess.Ack(ctx); err != nil {
		c.r.log.Debug("sip agent ack failed", "agent", c.agentID, "err", err)
	}
	if err := c.sess.Bye(ctx); err != nil {
		c.r.log.Debug("sip agent bye failed", "agent", c.agentID, "err", err)
	}
}

// fromPhone reports whether a request is the phone's, in this call's dialog.
func (c *AgentCall) fromPhone(req *sip.Request) bool {
	tag, _ := req.From().Params.Get("tag")
	return tag == c.remoteTag
}

// peer is the call's side of what the phone sends inside the dialog: the
// phone may move its RTP (the leg latches to it anyway) or hold the call
// (nothing is sent to it meanwhile); it may not leave the codec the agent's
// bridge was built with (488).
func (c *AgentCall) peer() *peerDialog {
	return &peerDialog{
		sess: c.sess, neg: c.neg, contact: sip.HeaderClone(&c.ua.ContactHDR),
		minSE: c.r.cfg.MinSE.Std(), timers: c.timers, state: c.dlg,
		log: c.r.log.With("agent", c.agentID, "call_id", c.callID),
		apply: func(a Answer) {
			c.leg.SetRemote(a.Remote)
			c.leg.SetMuted(a.Remote == nil || !a.Direction.receives())
		},
	}
}

// remoteBye answers the phone's BYE; false if it is not for this dialog.
func (c *AgentCall) remoteBye(req *sip.Request, tx sip.ServerTransaction) bool {
	if tag, _ := req.From().Params.Get("tag"); tag != c.remoteTag {
		return false
	}
	c.byRemote.Store(true)
	if err := c.sess.ReadBye(req, tx); err != nil {
		c.r.log.Debug("sip: answering agent BYE", "agent", c.agentID, "err", err)
	}
	return true
}
