package sip

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// rampStep is how often a recovered trunk's admission doubles: one call in
// flight at first, two after a second, four after two, up to its limit.
const rampStep = time.Second

// sign is the first evidence that a trunk may be gone.
type sign struct {
	what string
	// since is when the evidence began: the unanswered INVITE or the failed
	// keepalive was sent, the last RTP packet arrived, the transport failed.
	since time.Time
}

// health is what a trunk's monitor knows beyond its circuit: the calls on it,
// to end when it goes down, and the last detection, for TrunkStatus.
type health struct {
	signs chan sign // buffered: a sign during a burst is not waited for

	mu            sync.Mutex
	calls         map[*Call]*liveCall
	downSince     time.Time
	lastDetection time.Duration
	sign          string
	rampFrom      time.Time // when the circuit last closed after being down
	lastMedia     time.Time // since of the last media sign, so one silence is probed once
}

// liveCall is one call's attempt on a trunk.
type liveCall struct {
	down     chan struct{} // closed when the trunk is marked down
	answered bool
}

func newHealth() health {
	return health{signs: make(chan sign, 1), calls: make(map[*Call]*liveCall)}
}

// suspect reports a sign; the monitor starts a probe burst unless one runs.
func (t *trunk) suspect(s sign) {
	select {
	case t.health.signs <- s:
	default:
	}
}

// join registers a call's attempt on the trunk. The channel is closed when the
// trunk is marked down, at once if it is down now: a call that took its
// channel just before the trunk went down learns of it before sending anything.
// (A circuit opened by faults is not down: the trunk answers, calls on it go on.)
func (t *trunk) join(c *Call) <-chan struct{} {
	h := &t.health
	h.mu.Lock()
	defer h.mu.Unlock()
	lc := &liveCall{down: make(chan struct{})}
	if h.downSince.IsZero() {
		h.calls[c] = lc
	} else {
		close(lc.down)
	}
	return lc.down
}

func (t *trunk) leave(c *Call) {
	h := &t.health
	h.mu.Lock()
	delete(h.calls, c)
	h.mu.Unlock()
}

// markAnswered counts the call among those whose media tells of the trunk.
func (t *trunk) markAnswered(c *Call) {
	h := &t.health
	h.mu.Lock()
	if lc := h.calls[c]; lc != nil {
		lc.answered = true
	}
	h.mu.Unlock()
}

// mediaStopped reports a sign when every answered call on the trunk whose media
// can be observed has received nothing for silence, and there is at least one.
func (t *trunk) mediaStopped(now time.Time, silence time.Duration) (sign, bool) {
	h := &t.health
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	var latest time.Time
	for c, lc := range h.calls {
		if !lc.answered {
			continue
		}
		heard, ok := c.lastHeard()
		if !ok {
			continue
		}
		if now.Sub(heard) < silence {
			return sign{}, false
		}
		n++
		if heard.After(latest) {
			latest = heard
		}
	}
	if n == 0 || !latest.After(h.lastMedia) {
		return sign{}, false
	}
	h.lastMedia = latest
	return sign{what: fmt.Sprintf("no RTP on any of %d answered calls for %s", n, silence), since: latest}, true
}

// admissionCap is how many calls a recovered trunk may have in flight now; 0
// when it is not ramping.
func (t *trunk) admissionCap(now time.Time) int {
	h := &t.health
	h.mu.Lock()
	from := h.rampFrom
	h.mu.Unlock()
	if from.IsZero() {
		return 0
	}
	steps := now.Sub(from) / rampStep
	if steps >= 16 {
		return 0 // 65536 calls in flight: no trunk's limit is that high
	}
	return 1 << steps
}

// monitor watches one trunk until the originator closes: keepalives while it is
// up, a probe burst on the first sign of trouble, and recovery probes while it
// is down. One goroutine per trunk, so bursts never overlap.
func (o *Originator) monitor(t *trunk) {
	defer o.wg.Done()
	// A trunk with keepalives off never ticks: resetKeep leaves keepC nil.
	var keepC <-chan time.Time
	keep := time.NewTimer(time.Hour)
	keep.Stop()
	defer keep.Stop()
	resetKeep := func() {
		if t.keepalive > 0 {
			keep.Reset(t.keepalive)
			keepC = keep.C
		}
	}
	resetKeep()
	kept := make(chan keepalive, 1) // one keepalive in flight at a time
	media := time.NewTicker(o.cfg.MediaSilence.Std() / 4)
	defer media.Stop()
	// A timer, not a ticker: ticks buffered during a burst or a slow probe would
	// send recovery probes back to back, and RecoverAfter answers in a row must
	// span (RecoverAfter-1) intervals of a link that stays up.
	recov := time.NewTimer(o.cfg.ProbeInterval.Std())
	defer recov.Stop()
	for {
		select {
		case <-o.rootCtx.Done():
			return
		case s := <-t.health.signs:
			if t.watched() {
				o.burst(t, s, o.cfg.ProbeBurstCount)
			}
		case <-keepC:
			// Always, not only while no dial is in flight: calls that ring or
			// talk send no new INVITEs, and their trunk's death would otherwise
			// wait for their timeouts. One OPTIONS per interval is cheap. It
			// runs aside so that a sign arriving meanwhile is probed at once.
			if !t.watched() {
				resetKeep()
				continue
			}
			sent := o.now()
			go func() { kept <- keepalive{sent: sent, err: o.probe(t, o.cfg.ProbeTimeout.Std())} }()
		case k := <-kept:
			if k.err != nil && t.watched() {
				o.burst(t, sign{what: "keepalive failed: " + k.err.Error(), since: k.sent}, o.cfg.ProbeBurstCount-1)
			}
			resetKeep()
		case <-media.C:
			if t.watched() {
				if s, ok := t.mediaStopped(o.now(), o.cfg.MediaSilence.Std()); ok {
					o.burst(t, s, o.cfg.ProbeBurstCount)
				}
			}
		case <-recov.C:
			o.endHold(t)
			o.recoveryProbe(t)
			recov.Reset(o.cfg.ProbeInterval.Std())
		}
	}
}

// watched reports whether the trunk's death is still to be found: it is not
// marked down and not out of service. A circuit that faults opened is watched:
// faults say calls fail, not that the link is gone, and the calls still on the
// trunk must learn of its death when a burst proves it.
func (t *trunk) watched() bool {
	h := &t.health
	h.mu.Lock()
	down := !h.downSince.IsZero()
	h.mu.Unlock()
	return !down && !t.circuit.outOfService()
}

// keepalive is the result of one keepalive OPTIONS.
type keepalive struct {
	sent time.Time
	err  error
}

// burst sends n OPTIONS, ProbeBurstSpacing apart, each given ProbeTimeout; the
// first answer ends it (the trunk is up), and when none comes the trunk is
// marked down. n may be 0 when a failed keepalive already was the burst.
func (o *Originator) burst(t *trunk, s sign, n int) {
	ctx, cancel := context.WithCancel(o.rootCtx)
	defer cancel()
	results := make(chan error, n)
	spacing := o.cfg.ProbeBurstSpacing.Std()
	for i := range n {
		go func() {
			if i > 0 {
				timer := time.NewTimer(time.Duration(i) * spacing)
				defer timer.Stop()
				select {
				case <-timer.C:
				case <-ctx.Done():
					results <- ctx.Err()
					return
				}
			}
			results <- o.probeCtx(ctx, t, o.cfg.ProbeTimeout.Std())
		}()
	}
	var lastErr error
	for range n {
		if lastErr = <-results; lastErr == nil {
			o.log.Debug("sip trunk suspected but answered", "trunk", t.cfg.Name, "sign", s.what)
			return
		}
	}
	if o.rootCtx.Err() != nil {
		return
	}
	o.markDown(t, s, lastErr)
}

// markDown opens the circuit (or keeps open one that faults opened), records
// the detection and ends every call the dead trunk holds: unanswered ones at
// once, answered ones whose media stopped. Only the trunk's monitor calls it.
func (o *Originator) markDown(t *trunk, s sign, lastErr error) {
	now := o.now()
	reason := "probe burst failed after " + s.what
	if lastErr != nil {
		reason += " (" + lastErr.Error() + ")"
	}
	if !t.watched() || !t.circuit.trip(now, reason) {
		return
	}
	detection := now.Sub(s.since)
	h := &t.health
	h.mu.Lock()
	h.downSince, h.lastDetection, h.sign, h.rampFrom = now, detection, s.what, time.Time{}
	calls := len(h.calls)
	for c, lc := range h.calls {
		close(lc.down)
		delete(h.calls, c)
	}
	h.mu.Unlock()
	o.metrics.detection.WithLabelValues(t.cfg.Name).Observe(detection.Seconds())
	o.metrics.downs.WithLabelValues(t.cfg.Name).Inc()
	o.log.Warn("sip trunk down", "trunk", t.cfg.Name, "sign", s.what,
		"detection", detection.Round(time.Millisecond), "calls", calls)
	o.trunkChanged(t)
}

// recoveryProbe probes an open trunk; RecoverAfter answers in a row close it,
// and its admission then ramps up from one call in flight.
func (o *Originator) recoveryProbe(t *trunk) {
	if !t.circuit.beginProbe(o.now()) {
		return
	}
	// Not ProbeTimeout: recovery is not in a hurry, and a probe that outlives
	// T1 gets its retransmission answered, where a lost first datagram would
	// otherwise cost a whole interval.
	err := o.probe(t, min(o.cfg.ProbeInterval.Std(), o.cfg.InviteTimeout.Std()))
	now := o.now()
	if !t.circuit.endProbe(now, err) {
		if err != nil {
			o.log.Debug("sip trunk probe failed", "trunk", t.cfg.Name, "err", err)
		}
		return
	}
	h := &t.health
	h.mu.Lock()
	down := h.downSince
	h.rampFrom, h.downSince, h.lastMedia = now, time.Time{}, time.Time{}
	h.mu.Unlock()
	attrs := []any{"trunk", t.cfg.Name, "good_probes", o.cfg.RecoverAfter}
	if !down.IsZero() {
		attrs = append(attrs, "down_for", now.Sub(down).Round(time.Millisecond))
	}
	o.log.Warn("sip trunk recovered", attrs...)
	o.trunkChanged(t)
}

// trunkChanged tells Config.OnTrunkChange.
func (o *Originator) trunkChanged(t *trunk) {
	if o.cfg.OnTrunkChange != nil {
		o.cfg.OnTrunkChange(o.status(t))
	}
}

// downSign is the first sign of the trunk's current death, "" when it is up.
func (t *trunk) downSign() string {
	h := &t.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downSince.IsZero() {
		return ""
	}
	return h.sign
}

// orphanTTL is how long a call ended trunk_down before any response is
// remembered, for a late 200: Timer B, after which its INVITE is dead anyway.
const orphanTTL = 64 * 500 * time.Millisecond

// orphan remembers the dialog of an INVITE abandoned without a response (no
// CANCEL is allowed then), so that a 200 arriving later is ACKed and BYEd.
func (o *Originator) orphan(callID string, sess *sipgo.DialogClientSession) {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, or := range o.orphans {
		if now.After(or.expires) {
			delete(o.orphans, id)
		}
	}
	o.orphans[callID] = orphaned{sess: sess, expires: now.Add(orphanTTL)}
}

type orphaned struct {
	sess    *sipgo.DialogClientSession
	expires time.Time
}

// adoptLateAnswer ACKs and BYEs a 2xx to an INVITE we abandoned because its
// trunk was down: the far end answered a call that has already ended, and must
// not be left holding it (RFC 3261 15). True if res was such an answer.
func (o *Originator) adoptLateAnswer(res *sip.Response) bool {
	if !res.IsSuccess() || res.CSeq() == nil || res.CSeq().MethodName != sip.INVITE {
		return false
	}
	id := callIDOf(res)
	o.mu.Lock()
	or, ok := o.orphans[id]
	if ok {
		delete(o.orphans, id) // retransmissions of the 200 are not answered twice
	}
	o.mu.Unlock()
	if !ok {
		return false
	}
	o.log.Info("sip: late answer to a call ended trunk_down, hanging up", "call_id", id)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		or.sess.InviteResponse = res
		ctx, cancel := context.WithTimeout(o.rootCtx, byeTimeout)
		defer cancel()
		if err := or.sess.Ack(ctx); err != nil {
			o.log.Debug("sip: ack of late answer", "call_id", id, "err", err)
		}
		if err := or.sess.Bye(ctx); err != nil {
			o.log.Debug("sip: bye of late answer", "call_id", id, "err", err)
		}
	}()
	return true
}
