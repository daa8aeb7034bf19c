package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/pacing"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/media/amd"
	"github.com/turbina-dialer/turbina/storage"
)

// call is one attempt the run is following.
type call struct {
	attempt  storage.Attempt
	due      storage.DueContact
	rung     campaigns.Rung
	leg      channel.Attempt
	cancel   context.CancelFunc
	state    callState
	started  time.Time
	answered time.Time
	deadline time.Time // for callWaiting: when the person is abandoned
	agentID  int64
	// bridged is the customer's audio on the agent's bridge, when it has one.
	bridged *media.Connection
	// recording is the call's recorder, closed when the call ends.
	recording *media.Recorder
	// reserved is the agent reserved for the call before it was placed (a preview
	// dial): the answer goes to that agent alone.
	reserved int64
	// log is the call's logger: every line about the call carries its campaign,
	// attempt, contact and channel.
	log *slog.Logger
	// dropped is, on a call back on WhatsApp, the SIP attempt whose conversation
	// its trunk dropped (recorded, connected): the agent's call (resume_whatsapp.go).
	dropped *storage.Attempt
	// inbound is a person's own call to the business (inbound.go), answered by
	// us; holding, while it is queued, stops its hold tone and waits for it.
	inbound bool
	holding func()
	// listening, while the agent's audio is away (a page reloading), reads the
	// customer's audio so that the line is heard alive; calling it stops that.
	listening func()
}

// wrapUp is an agent's wrap-up after a call of the run.
type wrapUp struct {
	attemptID int64
	channel   campaigns.Channel
}

// callUpdate carries what a call's goroutine learned into the run's loop.
type callUpdate struct {
	attemptID int64
	leg       channel.Attempt // set when Place returned, and with the answer (which may come first)
	placeErr  error           // Place failed: no leg will come
	ev        *channel.AttemptEvent
	screened  *amd.Result  // answering-machine detection finished
	inbound   *inboundCall // a contact's WhatsApp call to answer (attemptID is 0)
	// agentID is the agent the call's goroutine reserved at the answer, and
	// bridged the audio it switched onto the agent's bridge (connectNow).
	agentID int64
	bridged *media.Connection
}

// run is one campaign's engine loop. Everything in it is touched only by its loop
// goroutine; other goroutines talk to it through its channels. The exceptions are
// the atomics fast and pacerViews, and connectNow, run by the calls' goroutines,
// which reads only what never changes (e and id).
type run struct {
	e        *Engine
	id       int64
	campaign campaigns.Campaign
	pacer    *pacing.Controller
	updates  chan callUpdate
	answers  chan callUpdate // answered calls, handled before anything else
	cmds     chan func()
	wakeCh   chan struct{}
	stopCh   chan struct{}
	stopOnce bool
	done     chan struct{}
	stopping bool
	// fast lets the calls' goroutines put an answered person through to a free
	// agent themselves (connectNow), written by the loop (fastConnect).
	fast atomic.Bool
	// pacerViews is the pacer's view of the campaign's call channels, refreshed by
	// the loop at every tick for PacerViews.
	pacerViews atomic.Pointer[[]PacerView]
	calls      map[int64]*call
	waiting    []*call
	// queued are the inbound callers on hold for an agent, in arrival order
	// (inbound.go): served after the answered persons in waiting, who have
	// only the patience's seconds.
	queued []*call
	// queueView is the inbound queue as the wallboard sees it, written by the loop.
	queueView atomic.Pointer[QueueView]
	// wrapping maps agents in wrap-up after one of this run's calls to that call.
	wrapping map[int64]wrapUp
	// orphans are the wrap-ups the campaign's last run left open, by agent,
	// until their agents take them up here (wrapups.go).
	orphans  map[int64]storage.Attempt
	agentBuf []pacing.Agent
	dialBuf  []pacing.Dial
	// fallbacks are contacts whose call just failed and that are due at once on a
	// later call rung (SIP failed → WhatsApp call): they are dialled before the
	// contacts waiting in the list, so the fallback is not queued behind them.
	fallbacks []int64
	// downUntil holds off attempts that could only fail: a contact on its last
	// rung is not tried on a channel that just said it is down (every trunk's
	// circuit open) until this time, so an outage leaves no trail of attempts.
	downUntil map[campaigns.Channel]time.Time
	// unrecorded are ended attempts whose outcome the database refused (busy, disk
	// full), oldest first. They are written again until it takes them: a storage
	// outage must not leave their contacts in progress until the next restart.
	unrecorded []unrecordedEnd
	// retryAt is when unrecorded are next written; retryWait the back-off.
	retryAt   time.Time
	retryWait time.Duration
	// safeHarbour is the campaign's own safe-harbour message (safeharbour.go), read by
	// the goroutines that apologise.
	safeHarbour atomic.Pointer[safeHarbour]
	// preview is the preview desk (preview.go): offers and agents' preview calls.
	preview previewState
	// busy counts what the run follows (calls, agents' wrap-ups, outcomes not
	// yet written), written by the loop for Drain.
	busy atomic.Int64
	// life is the loop's context, set when the loop starts: calls placed on a
	// command from outside the loop (a preview dial) live as long as the run, not
	// as long as the request that asked for them.
	life context.Context
	// lease is the campaign's lease the run holds, and renewed when it was
	// last renewed (guarded by e.mu); lose cancels the run's context at once
	// when it is lost, and lost says so (lease.go).
	lease   storage.Lease
	renewed time.Time
	lose    context.CancelCauseFunc
	lost    atomic.Bool
}

// loseLease stops the run at once, hanging up its calls and writing nothing:
// its campaign's lease is no longer the node's (it expired and another node
// took it over, or a write found it fenced). The node taking the campaign over
// records its calls interrupted.
func (r *run) loseLease(cause error) {
	if r.lost.Swap(true) {
		return
	}
	r.e.metrics.leasesLost.Inc()
	r.e.log.Warn("the campaign's lease was lost: its run stops now, writing nothing more", "campaign", r.id, "err", cause)
	r.lose(cause)
}

// unrecordedEnd is an ended attempt and the move of its contact, not yet stored:
// written again later, the move sees the contact as it is then. Or, with
// disposition set, the disposition a wrap-up timeout gave the attempt.
type unrecordedEnd struct {
	attempt     storage.Attempt
	move        storage.MoveFunc
	disposition string
}

// store writes u.
func (u unrecordedEnd) store(ctx context.Context, s Store) error {
	if u.disposition != "" {
		err := s.Dispose(ctx, u.attempt.ID, u.disposition, "", nil)
		if errors.Is(err, storage.ErrDisposed) {
			// Its agent gave one on another node (or a write reported
			// failed had gone through): the first one stands.
			return nil
		}
		return err
	}
	return s.FinishAttempt(ctx, u.attempt, u.move)
}

// keep puts u aside to be written again, after the ones already waiting. The
// first of an outage is logged; the storage logs the outage itself, once.
func (r *run) keep(u unrecordedEnd, at time.Time, err error) {
	if len(r.unrecorded) == 0 {
		r.e.log.Warn("database refuses attempt outcomes: kept to be written again", "campaign", r.id, "err", err)
	}
	r.unrecorded = append(r.unrecorded, u)
	r.e.metrics.unrecorded.Inc()
	if r.retryWait == 0 {
		r.retryWait, r.retryAt = firstRewriteWait, at.Add(firstRewriteWait)
	}
}

// Back-off between two tries at writing outcomes the database refused.
const (
	firstRewriteWait = 500 * time.Millisecond
	maxRewriteWait   = 10 * time.Second
)

// channelDownHold is how long a channel that said it is down is left alone before
// an attempt asks it again.
const channelDownHold = 2 * time.Second

// maxFallbacks bounds the fallbacks remembered; beyond it they wait their turn.
const maxFallbacks = 1024

func newRun(e *Engine, c campaigns.Campaign) *run {
	r := &run{
		e:  e,
		id: c.ID,
		// Room for a few seconds of leg events at hundreds of calls a second:
		// a call's goroutine blocked on a busy loop would hold its answer back.
		updates:  make(chan callUpdate, 4096),
		answers:  make(chan callUpdate, 256),
		cmds:     make(chan func(), 16),
		wakeCh:   make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
		calls:    map[int64]*call{},
		wrapping: map[int64]wrapUp{},

		downUntil: map[campaigns.Channel]time.Time{},
	}
	r.pacer = pacing.NewController(r.pacingSettings(c))
	r.campaign = c
	return r
}

func (r *run) pacingSettings(c campaigns.Campaign) pacing.Settings {
	mode, err := pacing.ParseMode(string(c.Pacing.Mode))
	if err != nil {
		mode = pacing.Progressive
	}
	return pacing.Settings{
		Mode:          mode,
		TargetAbandon: c.Pacing.TargetAbandon,
		MaxRatio:      c.Pacing.MaxRatio,
		MaxInFlight:   c.Pacing.MaxInFlight,
		Paused:        c.State != campaigns.StateRunning,
		Patience:      r.e.cfg.Patience,
		// The engine's RingTimeout caps an automatic ring timeout (ringTimeout), not the
		// pacer's settings: a fixed one is the campaign's to choose.
		RingTimeout:    c.Pacing.RingTimeout.Std(),
		MinRingTimeout: c.Pacing.MinRingTimeout.Std(),
	}
}

// ringTimeout is how long a new call on ch rings before it is given up: the campaign's
// fixed ring timeout when it sets one, else the pacer's choice, which the engine's
// RingTimeout (the operator's ceiling, and the default when the pacer makes none) caps.
func (r *run) ringTimeout(ch campaigns.Channel) time.Duration {
	return ringTimeout(r.campaign.Pacing.RingTimeout.Std(), r.pacer.RingTimeout(pacing.Channel(ch)), r.e.cfg.RingTimeout)
}

// ringTimeout combines a campaign's fixed ring timeout (0: automatic), the pacer's choice
// (0: none) and the engine's ceiling into the ring timeout of a new call.
func ringTimeout(fixed, chosen, ceiling time.Duration) time.Duration {
	switch {
	case fixed > 0:
		return fixed
	case chosen > 0 && chosen < ceiling:
		return chosen
	default:
		return ceiling
	}
}

// do runs fn in the loop; it reports false when the loop has ended.
func (r *run) do(fn func()) bool {
	select {
	case r.cmds <- fn:
		return true
	case <-r.done:
		return false
	}
}

func (r *run) poke() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// channelChanged wakes the loop for a channel that went down or came back.
// Called with e.mu held, so it never blocks: with the loop busy, a poke still
// wakes it, and the hold ends on its own.
func (r *run) channelChanged(ch campaigns.Channel) {
	select {
	case r.cmds <- func() {
		if r.e.channelUp(ch) {
			delete(r.downUntil, ch)
		}
	}:
	default:
		r.poke()
	}
}

// setCampaign hands the loop the campaign as last stored. Called with e.mu held.
func (r *run) setCampaign(c campaigns.Campaign) {
	select {
	case r.cmds <- func() {
		r.campaign = c
		r.pacer.SetSettings(r.pacingSettings(c))
	}:
	default:
		// The loop is busy; the next sync (at most Config.Sync later) tries again.
	}
}

// stop asks the loop to place no more calls and end once its calls have. Called with e.mu held.
func (r *run) stop() {
	if !r.stopOnce {
		r.stopOnce = true
		close(r.stopCh)
	}
}

func (r *run) has(attemptID int64) bool {
	found := make(chan bool, 1)
	if !r.do(func() { found <- r.callFor(attemptID) != nil }) {
		return false
	}
	// The loop may end (engine shutdown) with fn still queued: never run.
	select {
	case ok := <-found:
		return ok
	case <-r.done:
		return false
	}
}

func (r *run) hangup(ctx context.Context, attemptID int64) error {
	legc := make(chan channel.Attempt, 1)
	if !r.do(func() {
		var leg channel.Attempt
		if c := r.callFor(attemptID); c != nil {
			c.attempt.HangupBy = "agent"
			leg = c.leg
			// A command has no context of its own: the loop's.
			r.feed(r.life, c, callEvent{kind: evAgentHangup, at: r.e.cfg.Now()}, channel.AttemptEvent{})
		}
		legc <- leg
	}) {
		return errStopped
	}
	var leg channel.Attempt
	select {
	case leg = <-legc:
	case <-r.done:
		return errStopped
	}
	if leg != nil {
		return leg.Hangup(ctx)
	}
	return nil
}

// wrapEnded tells the pacer an agent's wrap-up after attemptID lasted wrap. Called with e.mu held.
func (r *run) wrapEnded(attemptID int64, wrap time.Duration) {
	select {
	case r.cmds <- func() { r.observeWrap(attemptID, wrap) }:
	default:
	}
}

func (r *run) observeWrap(attemptID int64, wrap time.Duration) {
	for agent, w := range r.wrapping {
		if w.attemptID == attemptID {
			delete(r.wrapping, agent)
			r.pacer.Observe(pacing.Observation{At: r.e.cfg.Now(), Kind: pacing.WrapEnded, Channel: pacing.Channel(w.channel), Duration: wrap})
		}
	}
}

func (r *run) loop(ctx context.Context) {
	defer close(r.done)
	r.life = ctx
	r.loadOrphans(ctx)
	tick := time.NewTicker(r.e.cfg.Tick)
	defer tick.Stop()
	// abandonAt wakes the loop when the first person waiting must hear the safe-harbour
	// message: on the tick alone it could start up to a tick late, past the 2 s the law
	// allows after the greeting.
	abandonAt := time.NewTimer(time.Hour)
	defer abandonAt.Stop()
	for {
		ticked := false
		switch next, ok := r.nextDeadline(); {
		case ok:
			abandonAt.Reset(max(next.Sub(r.e.cfg.Now()), 0))
		default:
			abandonAt.Stop()
		}
		select {
		case <-abandonAt.C:
		case <-ctx.Done():
			r.shutdown()
			return
		case <-r.stopCh:
			r.stopping = true
			r.stopCh = nil
		case u := <-r.answers:
			r.handle(ctx, u)
		case u := <-r.updates:
			// The call's answer was queued before its later events: handled first.
			r.connectAnswered(ctx)
			r.handle(ctx, u)
		case fn := <-r.cmds:
			r.connectAnswered(ctx)
			fn()
		case <-r.wakeCh:
		case <-tick.C:
			ticked = true
		}
		r.connectAnswered(ctx)
		now := r.e.cfg.Now()
		r.recordLate(ctx, now)
		r.adoptWrapUps(ctx, now)
		r.expireWrapUps(ctx, now)
		r.connectWaiting(ctx, now)
		r.abandonExpired(ctx, now)
		r.busy.Store(int64(len(r.calls) + len(r.wrapping) + len(r.unrecorded)))
		if r.e.Draining() {
			r.e.drainPoke()
		}
		if r.stopping {
			if len(r.calls) == 0 && len(r.unrecorded) == 0 {
				return
			}
			continue
		}
		r.dial(ctx, now)
		if r.e.Draining() && r.busy.Load() == 0 {
			// Nothing left here (dial placed nothing, and took back any
			// preview offer): the run ends and its lease is released, so the
			// node the spread now gives the campaign takes it at once, before
			// this node's other runs are done.
			return
		}
		r.fast.Store(r.fastConnect())
		r.publishQueue(now)
		if ticked {
			r.publishPacerViews()
		}
	}
}

// fastConnect reports whether a call's goroutine may bridge its answered person to
// a free agent at once, before the loop hears of the answer: the audio is then not
// held up behind the loop's other work (its writes, above all). Only when nobody
// waits for an agent (who would be passed over) and the campaign neither screens
// for machines nor records, which the loop sets up.
func (r *run) fastConnect() bool {
	return !r.stopping && len(r.waiting) == 0 && len(r.queued) == 0 && !r.campaign.AMD.Enabled && r.campaign.Pacing.Mode != campaigns.PacingPreview &&
		!(r.campaign.Record && r.e.cfg.RecordingsDir != "")
}

// connectNow is the answer's fast path, run by the call's goroutine: it reserves a
// free agent and switches the agent's audio to the customer. It returns the
// agent (0 when none is free: the loop queues the call as usual) and the bridged
// call (nil when the agent has no audio leg, as in the loop's path). log is the
// call's logger.
func (r *run) connectNow(leg channel.Attempt, req channel.PlaceRequest, preferred int64, now time.Time, log *slog.Logger) (int64, *media.Connection) {
	agent, ok := r.e.agents.reserve(r.id, req.AttemptID, req.Rung.Channel, preferred, now)
	if !ok {
		return 0, nil
	}
	return agent.ID, r.e.switchAudio(leg, req.AttemptID, agent.ID, log, nil)
}

// connectAnswered handles the answers queued so far. An answered person hears
// nothing until the loop bridges them to an agent, so answers skip the queue of
// other updates, and the loop's longer work (placing a batch of calls, each
// with its writes) stops for them between steps.
func (r *run) connectAnswered(ctx context.Context) {
	for {
		select {
		case u := <-r.answers:
			r.handle(ctx, u)
		default:
			return
		}
	}
}

// handle turns what a call's goroutine learned into the call's events and feeds
// them to its state machine.
func (r *run) handle(ctx context.Context, u callUpdate) {
	if u.inbound != nil {
		r.answerInbound(ctx, *u.inbound)
		return
	}
	c, ok := r.calls[u.attemptID]
	if !ok {
		if u.agentID != 0 { // put through to an agent for a call no longer followed
			r.e.agents.unreserve(u.agentID, u.attemptID)
		}
		return
	}
	if held := c.leg; u.leg != nil {
		c.leg = u.leg // an answer may overtake the update that brought its leg
		if c.inbound {
			c.leg = inboundLegOf(held, u.leg)
		}
	}
	switch {
	case u.placeErr != nil:
		outcome := campaigns.OutcomeTrunkFault
		var oe *channel.OutcomeError
		switch {
		case errors.As(u.placeErr, &oe):
			outcome = oe.Outcome
		case errors.Is(u.placeErr, channel.ErrChannelDown):
			outcome = campaigns.OutcomeChannelDown
			r.downUntil[c.rung.Channel] = r.e.cfg.Now().Add(channelDownHold)
		case errors.Is(u.placeErr, channel.ErrChannelBusy):
			outcome = campaigns.OutcomeChannelBusy
		}
		now := r.e.cfg.Now()
		r.feed(ctx, c, callEvent{kind: evPlaceFailed, at: now, outcome: outcome}, channel.AttemptEvent{Kind: channel.AttemptEnded, At: now, Outcome: outcome, Detail: u.placeErr.Error()})
		return
	case u.leg != nil && u.ev == nil:
		r.feed(ctx, c, callEvent{kind: evPlaced, at: r.e.cfg.Now()}, channel.AttemptEvent{})
		return
	case u.screened != nil:
		res := *u.screened
		if c.state == callScreening {
			c.attempt.Detail = detailJSON("amd " + res.Decision.String() + " " + string(res.Cause))
		}
		r.feed(ctx, c, callEvent{kind: evScreened, at: r.e.cfg.Now(), human: res.Decision != amd.Machine, amdAction: r.campaign.AMD.Action}, channel.AttemptEvent{})
		return
	case u.ev == nil:
		return
	}
	ev := *u.ev
	// Channels stamp events with their own clocks (WhatsApp's in whole seconds):
	// kept within the attempt's life on the engine's clock, durations stay sane.
	if now := r.e.cfg.Now(); ev.At.Before(c.started) || ev.At.After(now) {
		ev.At = now
	}
	a := &c.attempt
	if ev.Trunk != "" {
		a.Trunk = ev.Trunk
	}
	if ev.ExternalID != "" {
		a.ExternalID = ev.ExternalID
	}
	switch ev.Kind {
	// Progress is kept in memory and written with the next step that matters (the
	// connect, the end): at hundreds of calls a second, the loop's writes are what
	// an answered person would otherwise wait behind.
	case channel.AttemptSetup:
		a.SetupAt = &ev.At
	case channel.AttemptRinging:
		r.feed(ctx, c, callEvent{kind: evRinging, at: ev.At}, ev)
	case channel.AttemptAnswered:
		if u.agentID != 0 {
			c.bridged = u.bridged // connectNow switched the audio already
		}
		kind := evAnswered
		if c.inbound {
			kind = evInboundAnswered // we answered the person's call: not a dial's answer
		}
		r.feed(ctx, c, callEvent{kind: kind, at: ev.At, agent: u.agentID, reserved: c.reserved,
			amd: r.campaign.AMD.Enabled && screenable(c.leg) && !c.inbound}, ev)
		if u.agentID == 0 {
			return
		}
		if c.state != callConnected || c.agentID != u.agentID {
			r.e.agents.unreserve(u.agentID, c.attempt.ID) // not taken (a pair step does not list)
			return
		}
		if u.bridged != nil && r.e.audio.Bridge(u.agentID) == nil {
			// The agent's audio died before the loop heard of the call, when
			// the agent was only reserved: the audio hub's AudioDown could not tell.
			r.agentGone(u.agentID, c.attempt.ID)
		}
	case channel.AttemptEnded:
		r.feed(ctx, c, callEvent{kind: endedKind(ev), at: ev.At, outcome: ev.Outcome}, ev)
	}
}

// feed steps c's state machine with ev and carries out its effects. leg is the
// channel's report that came with ev, when one did (what the outcome records of it).
func (r *run) feed(ctx context.Context, c *call, ev callEvent, leg channel.AttemptEvent) {
	var effects []effect
	c.state, effects = step(c.state, ev)
	r.apply(ctx, c, ev, leg, effects)
}

// apply carries out the effects step asked for, in order. An effect may feed the
// call another event (a queued person put through to an agent free at once): what
// is left of the list then belongs to a state the call has left, and is dropped.
func (r *run) apply(ctx context.Context, c *call, ev callEvent, leg channel.AttemptEvent, effects []effect) {
	state := c.state
	at := ev.at
	for _, ef := range effects {
		if c.state != state {
			return
		}
		switch ef.kind {
		case effMarkRinging:
			c.attempt.RingAt, c.attempt.State = &at, "ringing"
		case effMarkAnswered:
			c.attempt.AnswerAt, c.attempt.State = &at, "answered"
			c.answered, c.deadline = at, at.Add(r.e.cfg.Patience)
		case effObserve:
			r.pacer.Observe(pacing.Observation{At: at, Kind: ef.pacing, Channel: pacing.Channel(c.rung.Channel), Duration: observed(c, ef.pacing, at)})
		case effScreen:
			r.screen(ctx, c)
		case effQueue:
			r.fast.Store(false) // until this person has an agent
			r.waiting = append(r.waiting, c)
			r.connectWaiting(ctx, at)
		case effLeaveQueue:
			r.removeWaiting(c)
		case effConnect:
			r.connect(c, ef.agent, at, ef.bridged)
		case effSave:
			r.save(ctx, c)
		case effScreenPop:
			r.screenPop(ctx, c, at)
		case effHangupBy:
			c.attempt.HangupBy = ef.by
		case effSafeHarbour:
			if c.leg != nil {
				go r.apologiseAbandoned(ctx, c.leg, c.attempt.ID, c.answered, c.log)
			}
		case effLeaveMessage:
			if c.leg != nil {
				go r.leaveMessage(ctx, c.leg, c.log)
			}
		case effHangup:
			if c.leg != nil {
				go c.leg.Hangup(ctx)
			}
		case effReleaseAgent:
			r.releaseAgent(c, at)
		case effRecord:
			r.record(ctx, c, ef.outcome, at, leg, ef.stays)
		case effDropped:
			r.dropped(ctx, c, at, leg)
		case effTell:
			r.e.events.publish(c.agentID, AgentEvent{Kind: ef.notice, AttemptID: c.talkID(), At: at})
		case effResume:
			r.resume(ctx, c, at)
		case effForget:
			r.forget(c)
		case effHold:
			r.hold(ctx, c, at)
		case effSorry:
			// The wait ends here, not when the apology does: the queue's figures read it.
			c.attempt.Detail = waitedDetail(at.Sub(c.answered))
			if c.leg != nil {
				go r.sorry(ctx, c.leg, c.log)
			}
		default:
			c.log.Error("call effect without a handler: skipped", "effect", ef.kind, "state", c.state)
		}
	}
}

// observed is the duration the pacer is told with an observation of kind k at at:
// ring time for an answer, wait for an agent for a connect, talk time for a talk's
// end, the call's whole life for an unanswered end.
func observed(c *call, k pacing.ObservationKind, at time.Time) time.Duration {
	switch k {
	case pacing.Human:
		return c.answered.Sub(c.started)
	case pacing.Machine:
		if !c.answered.IsZero() {
			return c.answered.Sub(c.started)
		}
	case pacing.Connected:
		return at.Sub(c.answered)
	case pacing.TalkEnded:
		if t := c.talkStart(); t != nil {
			return at.Sub(*t)
		}
		return 0
	case pacing.Abandoned:
		return 0
	}
	return at.Sub(c.started)
}

// screenable reports whether leg carries audio answering-machine detection can hear.
func screenable(leg channel.Attempt) bool {
	mc, ok := leg.(MediaCarrier)
	if !ok {
		return false
	}
	_, err := mc.MediaLeg()
	return err == nil
}

// screenMargin is kept between the end of screening and the patience, so that a
// person screening could not decide about still reaches an agent in time.
const screenMargin = 200 * time.Millisecond

// screen starts answering-machine detection on an answered call's audio; its
// verdict comes back to the loop as an update. A detector that cannot start
// screens nobody: the call goes on as a person's.
func (r *run) screen(ctx context.Context, c *call) {
	var customer media.Leg
	if mc, ok := c.leg.(MediaCarrier); ok {
		customer, _ = mc.MediaLeg()
	}
	det, err := amd.New(amd.DefaultParams())
	if err != nil || customer == nil {
		c.log.Error("answering-machine detector", "err", err)
		r.feed(ctx, c, callEvent{kind: evScreened, at: r.e.cfg.Now(), human: true}, channel.AttemptEvent{})
		return
	}
	until := c.deadline.Add(-screenMargin)
	id, log := c.attempt.ID, c.log
	go func() {
		res, err := amd.Screen(ctx, customer, det, until)
		if err != nil {
			log.Debug("screening", "err", err)
		}
		select {
		case r.updates <- callUpdate{attemptID: id, screened: &res}:
		case <-r.done:
		}
	}()
}

// Voicemail timing: the greeting and beep are over after this much silence; a
// machine that never goes quiet gets the message after the longest wait.
const (
	voicemailQuiet   = 800 * time.Millisecond
	voicemailMaxWait = 20 * time.Second
)

// leaveMessage waits for a voicemail's greeting and beep to end, leaves the
// campaign's message and hangs up. It runs on a goroutine of its own.
func (r *run) leaveMessage(ctx context.Context, leg channel.Attempt, log *slog.Logger) {
	defer leg.Hangup(ctx)
	mc, ok := leg.(MediaCarrier)
	if !ok {
		return
	}
	customer, err := mc.MediaLeg()
	if err != nil {
		return
	}
	if err := amd.AwaitQuiet(ctx, customer, amd.DefaultParams(), voicemailQuiet, time.Now().Add(voicemailMaxWait)); err != nil {
		log.Debug("voicemail", "err", err)
		return
	}
	if _, err := r.e.cfg.VoicemailMessage.Play(ctx, customer); err != nil {
		log.Debug("voicemail message", "err", err)
	}
}

// save writes an open attempt's progress; a failure is logged, the call goes on.
func (r *run) save(ctx context.Context, c *call) {
	if err := r.e.store.UpdateAttempt(ctx, c.attempt); err != nil {
		c.log.Error("save attempt", "err", err)
	}
}

// releaseAgent lets the agent of a connected call go when the call ends: the
// audio off the agent's bridge, the recording closed, the agent told and put in
// wrap-up.
func (r *run) releaseAgent(c *call, at time.Time) {
	r.unbridge(c)
	r.e.events.publish(c.agentID, AgentEvent{Kind: EventCallEnded, AttemptID: c.talkID(), At: at})
	r.e.agents.callEnded(c.agentID, at)
	r.wrapping[c.agentID] = wrapUp{attemptID: c.talkID(), channel: c.rung.Channel}
}

// unbridge takes the call's audio off its agent's bridge and closes its recording.
func (r *run) unbridge(c *call) {
	if c.listening != nil {
		c.listening()
		c.listening = nil
	}
	if b := r.e.audio.Bridge(c.agentID); b != nil && c.bridged != nil && b.Current() == c.bridged {
		b.Disconnect()
	}
	c.bridged = nil
	if c.recording != nil {
		if err := c.recording.Close(); err != nil {
			c.log.Error("recording", "err", err)
		}
		c.recording = nil
	}
}

// record records how an attempt ended, with the outcome step decided, moves its
// contact along the ladder (unless it stays: a resume's) and forgets the call. ev
// is the channel's report of the end, when there is one.
func (r *run) record(ctx context.Context, c *call, outcome campaigns.Outcome, at time.Time, ev channel.AttemptEvent, stays bool) {
	r.write(ctx, c, outcome, at, ev, !stays)
	r.forget(c)
}

// write records how c's attempt ended and, when moves, moves its contact through
// the journey's row for outcome; what the database refuses is kept to be written
// again.
func (r *run) write(ctx context.Context, c *call, outcome campaigns.Outcome, at time.Time, ev channel.AttemptEvent, moves bool) {
	a := &c.attempt
	a.State, a.Outcome, a.EndAt = "ended", string(outcome), &at
	if a.SetupAt == nil && !ev.SetupAt.IsZero() {
		a.SetupAt = &ev.SetupAt
	}
	if a.RingAt == nil && !ev.RingAt.IsZero() {
		a.RingAt = &ev.RingAt
	}
	if ev.SIPStatus != 0 {
		a.SIPStatus = ev.SIPStatus
	}
	if a.HangupBy == "" {
		a.HangupBy = ev.HangupBy
	}
	if ev.Detail != "" && len(a.Detail) == 0 {
		a.Detail = detailJSON(ev.Detail)
	}
	var pos campaigns.Position
	var move storage.MoveFunc
	if moves {
		move = r.e.journeyMove(r.campaign.Ladder, campaigns.OutcomeEvent(outcome), at, &pos)
	}
	// While older outcomes wait, this one waits behind them: written in order, and
	// the loop does not wait out the database's lock once per call.
	var err error
	if len(r.unrecorded) > 0 {
		err = errors.New("older outcomes wait to be written")
	} else if err = r.e.store.FinishAttempt(ctx, *a, move); errors.Is(err, storage.ErrFenced) {
		return // the lease is lost: the run stops now (loseLease), its new holder records the call
	} else if err != nil {
		r.e.metrics.writeFailures.Inc()
	}
	if err != nil {
		r.keep(unrecordedEnd{attempt: *a, move: move}, at, err)
	} else if pos.Status == campaigns.ContactPending && pos.Rung != c.due.Rung && pos.Rung < len(r.campaign.Ladder) &&
		callRung(r.campaign.Ladder[pos.Rung].Channel) && !pos.NextAt.After(at) && len(r.fallbacks) < maxFallbacks {
		r.fallbacks = append(r.fallbacks, a.ContactID)
	}
	c.log.Debug("attempt ended", "outcome", outcome, "sip_status", a.SIPStatus, "next_rung", pos.Rung, "status", pos.Status)
}

// forget stops following c: its goroutine's context ends and later updates find
// no call.
func (r *run) forget(c *call) {
	if c.cancel != nil {
		c.cancel()
	}
	delete(r.calls, c.attempt.ID)
}

// recordLate writes again the outcomes the database refused, oldest first, once
// their back-off has passed; the first refusal puts the rest off again.
func (r *run) recordLate(ctx context.Context, now time.Time) {
	if len(r.unrecorded) == 0 || now.Before(r.retryAt) {
		return
	}
	written := 0
	for _, u := range r.unrecorded {
		if err := u.store(ctx, r.e.store); err != nil {
			r.e.metrics.writeFailures.Inc()
			r.retryWait = min(2*r.retryWait, maxRewriteWait)
			r.retryAt = now.Add(r.retryWait)
			r.e.log.Debug("database still refuses attempt outcomes", "campaign", r.id, "waiting", len(r.unrecorded)-written,
				"next_try_in", r.retryWait, "err", err)
			break
		}
		written++
	}
	r.unrecorded = r.unrecorded[written:]
	r.e.metrics.unrecorded.Sub(float64(written))
	if len(r.unrecorded) == 0 {
		r.unrecorded, r.retryWait = nil, 0
		r.e.log.Info("database takes writes again: late attempt outcomes recorded", "campaign", r.id, "written", written)
	}
}

func (r *run) removeWaiting(c *call) {
	if c.holding != nil {
		c.holding()
		c.holding = nil
	}
	for _, q := range []*[]*call{&r.waiting, &r.queued} {
		for i, w := range *q {
			if w == c {
				*q = append((*q)[:i], (*q)[i+1:]...)
				return
			}
		}
	}
}

// connectWaiting gives each waiting person, in answer order, the longest-idle ready agent.
func (r *run) connectWaiting(ctx context.Context, now time.Time) {
	for len(r.waiting) > 0 {
		c := r.waiting[0]
		agent, ok := r.e.agents.reserve(r.id, c.attempt.ID, c.rung.Channel, c.due.CallbackAgentID, now)
		if !ok {
			return
		}
		r.waiting = r.waiting[1:]
		r.feed(ctx, c, callEvent{kind: evAgentFree, at: now, agent: agent.ID}, channel.AttemptEvent{})
		if c.state != callConnected {
			r.e.agents.unreserve(agent.ID, c.attempt.ID) // not taken (a pair step does not list)
		}
	}
	r.connectQueued(ctx, now)
}

// connect puts c through to agentID, reserved for it, and switches the agent's
// audio to the customer unless connectNow did (bridged).
func (r *run) connect(c *call, agentID int64, now time.Time, bridged bool) {
	c.agentID = agentID
	c.attempt.AgentID, c.attempt.ConnectAt, c.attempt.State = agentID, &now, "connected"
	r.e.agents.connected(agentID, now)
	if !bridged {
		r.bridge(c, agentID)
	}
}

// bridge switches the agent's nailed-up audio to the customer. An agent without a
// media leg (an API client) gets the call without audio.
func (r *run) bridge(c *call, agentID int64) {
	c.bridged = r.e.switchAudio(c.leg, c.attempt.ID, agentID, c.log, func() []media.ConnectOption {
		if !r.campaign.Record || r.e.cfg.RecordingsDir == "" {
			return nil
		}
		rec, err := r.recorder(c)
		if err != nil {
			c.log.Error("recording", "err", err)
			return nil
		}
		c.recording = rec
		return []media.ConnectOption{media.WithRecorder(rec)}
	})
}

// switchAudio puts the customer's audio of leg on agentID's bridge and returns the
// bridged call: nil when the agent has no audio leg (an API client; the customer's
// audio is drained) or the leg no audio. opts, when not nil, gives the call's options once the audio is there;
// log is the call's logger. It touches only the engine's agent audio, so calls'
// goroutines may use it too.
func (e *Engine) switchAudio(leg channel.Attempt, attemptID, agentID int64, log *slog.Logger, opts func() []media.ConnectOption) *media.Connection {
	b := e.audio.Bridge(agentID)
	mc, ok := leg.(MediaCarrier)
	if !ok {
		return nil
	}
	if b == nil {
		drain(mc, log)
		return nil
	}
	customer, err := mc.MediaLeg()
	if err != nil {
		log.Warn("customer audio unavailable", "err", err)
		return nil
	}
	var callOpts []media.ConnectOption
	if opts != nil {
		callOpts = opts()
	}
	bridged, err := b.Connect(customer, callOpts...)
	if err != nil {
		log.Error("bridge customer to agent", "agent", agentID, "err", err)
		return nil
	}
	// A browser sends its microphone on one path at a time: the agent is heard
	// once it is on the call's.
	e.events.publish(agentID, AgentEvent{Kind: EventAudioPath, AttemptID: attemptID, AudioPath: bridged.Path(), At: e.cfg.Now()})
	return bridged
}

// drain reads and drops the audio of a customer put through to an agent without
// an audio leg (an API client, the demo's simulated agents). Nobody hears it, but
// the SIP channel hands a call's socket over at the answer, and a socket nobody
// reads hides from the trunk's health watch whether the conversation goes on: the
// call would outlive its trunk's death. It stops when the call closes the leg.
func drain(mc MediaCarrier, log *slog.Logger) {
	customer, err := mc.MediaLeg()
	if err != nil {
		log.Debug("customer audio unavailable", "err", err)
		return
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, err := customer.ReadRTP(buf); err != nil {
				return
			}
		}
	}()
}

// recorder opens the file a call is recorded into: recordings/<campaign>/<attempt>.wav.
func (r *run) recorder(c *call) (*media.Recorder, error) {
	dir := filepath.Join(r.e.cfg.RecordingsDir, strconv.FormatInt(r.id, 10))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return media.CreateRecorder(filepath.Join(dir, strconv.FormatInt(c.attempt.ID, 10)+".wav"))
}

// screenPop tells the agent who is on the line, as the audio connects.
func (r *run) screenPop(ctx context.Context, c *call, now time.Time) {
	direction := storage.DirectionOutbound
	if c.inbound {
		direction = storage.DirectionInbound
	}
	pop := r.buildPop(ctx, c.attempt.ID, c.due.Contact, c.rung.Channel, direction, now, c.log)
	r.e.agents.setScreenPop(c.agentID, pop)
	r.e.events.publish(c.agentID, AgentEvent{Kind: EventScreenPop, At: now, ScreenPop: &pop})
}

// buildPop is the screen-pop of attemptID, a call on ch to ct connected at
// connected: the contact, its history and refusals, and the campaign's
// dispositions and script.
func (r *run) buildPop(ctx context.Context, attemptID int64, ct campaigns.Contact, ch campaigns.Channel, direction string, connected time.Time, log *slog.Logger) ScreenPop {
	history, err := r.e.store.ListAttempts(ctx, ct.ID)
	if err != nil {
		log.Error("screen-pop history", "err", err)
	}
	refusals, err := r.e.store.PolicyRefusals(ctx, ct.ID)
	if err != nil {
		log.Error("screen-pop refusals", "err", err)
	}
	return ScreenPop{
		AttemptID: attemptID, CampaignID: r.id, CampaignName: r.campaign.Name, Channel: ch, Direction: direction,
		Contact: ct, History: history, Refusals: refusals, Dispositions: r.campaign.Dispositions, Script: r.campaign.Script, ConnectedAt: connected,
	}
}

// abandonExpired hangs up on people who waited longer than the patience.
func (r *run) abandonExpired(ctx context.Context, now time.Time) {
	for len(r.waiting) > 0 && !r.waiting[0].deadline.After(now.Add(safeHarbourLead)) {
		c := r.waiting[0]
		r.waiting = r.waiting[1:]
		r.feed(ctx, c, callEvent{kind: evPatienceExpired, at: now}, channel.AttemptEvent{})
	}
	r.expireQueued(ctx, now)
}

// agentLost ends a connected call whose agent's audio went away: the customer
// hears the prompt and the call is hung up.
func (r *run) agentLost(attemptID int64) {
	c := r.callFor(attemptID)
	if c == nil {
		return
	}
	// Called in the loop by a command, which has no context of its own: the loop's.
	r.feed(r.life, c, callEvent{kind: evAgentLost, at: r.e.cfg.Now()}, channel.AttemptEvent{})
}

// agentBack puts a connected call's customer on its agent's new audio leg: the
// agent's page was reloaded (or its audio renegotiated) during the call. The old
// leg's bridge lets go of the customer first; until then the loop does not wait.
func (r *run) agentBack(agentID, attemptID int64) {
	c := r.callFor(attemptID)
	if c == nil || c.agentID != agentID || (c.state != callConnected && c.state != callResumed) {
		return
	}
	b := r.e.audio.Bridge(agentID)
	if b == nil || (c.bridged != nil && b.Current() == c.bridged) {
		return
	}
	if c.listening != nil {
		c.listening()
		c.listening = nil
	}
	if old := c.bridged; old != nil {
		select {
		case <-old.Done():
		default:
			log := c.log
			go func() {
				select {
				case <-old.Done():
					r.do(func() { r.agentBack(agentID, attemptID) })
				case <-time.After(5 * time.Second):
					log.Warn("agent audio back, but the old bridge kept the customer")
				}
			}()
			return
		}
	}
	c.bridged = r.e.switchAudio(c.leg, c.attempt.ID, agentID, c.log, func() []media.ConnectOption {
		if c.recording == nil {
			return nil
		}
		return []media.ConnectOption{media.WithRecorder(c.recording)}
	})
	c.log.Info("agent audio back: customer reconnected", "agent", agentID)
}

// agentAway keeps a connected call's customer heard while its agent's audio is
// away, for the agent to come back (agentBack) or be given up (agentLost).
func (r *run) agentAway(agentID, attemptID int64) {
	c := r.callFor(attemptID)
	if c == nil || c.agentID != agentID || c.listening != nil || (c.state != callConnected && c.state != callResumed) {
		return
	}
	mc, ok := c.leg.(MediaCarrier)
	if !ok {
		return
	}
	customer, err := mc.MediaLeg()
	if err != nil {
		return
	}
	var after <-chan struct{}
	if c.bridged != nil {
		after = c.bridged.Done()
	}
	c.listening = keepListening(customer, after)
}

// expireWrapUps ends wrap-ups that went on past the timeout without a disposition.
func (r *run) expireWrapUps(ctx context.Context, now time.Time) {
	for agentID, w := range r.wrapping {
		attemptID := w.attemptID
		a, ok := r.e.agents.Get(agentID)
		if !ok || a.State != AgentWrapUp || a.AttemptID != attemptID {
			delete(r.wrapping, agentID)
			continue
		}
		if a.closing || now.Sub(a.Since) < time.Duration(r.campaign.WrapUp) {
			continue
		}
		if _, wrap, err := r.e.agents.wrapUpDone(agentID, now); err == nil {
			r.e.wrapUpEnded(agentID)
			r.timeOutWrapUp(ctx, attemptID, now)
			r.observeWrap(attemptID, wrap)
		}
	}
}

// timeOutWrapUp records that attemptID's wrap-up ended by its timeout, or
// keeps that to be written again while the database refuses it.
func (r *run) timeOutWrapUp(ctx context.Context, attemptID int64, now time.Time) {
	u := unrecordedEnd{attempt: storage.Attempt{ID: attemptID}, disposition: "wrap_up_timeout"}
	if len(r.unrecorded) > 0 {
		r.keep(u, now, errors.New("older outcomes wait to be written"))
	} else if err := u.store(ctx, r.e.store); storage.IsUnavailable(err) {
		r.e.metrics.writeFailures.Inc()
		r.keep(u, now, err)
	} else if err != nil {
		r.e.log.Error("record disposition", "attempt", attemptID, "err", err)
	}
}

// callRungs are the ladder rungs that need an agent: calls.
func callRung(ch campaigns.Channel) bool {
	return ch == campaigns.ChannelSIP || ch == campaigns.ChannelWhatsAppCall
}

// dial asks the pacer how many calls to place and places them; message rungs, which
// need no agent, are sent as they fall due.
func (r *run) dial(ctx context.Context, now time.Time) {
	c := r.campaign
	open, err := c.Schedule.IsOpen(now)
	open = open && err == nil && c.State == campaigns.StateRunning && !r.e.Draining()
	r.previewIdle(now, open && c.Pacing.Mode == campaigns.PacingPreview)
	if !open {
		return
	}
	var calls, messages []int
	for i, rung := range c.Ladder {
		if callRung(rung.Channel) {
			calls = append(calls, i)
		} else {
			messages = append(messages, i)
		}
	}
	r.startDue(ctx, now, messages, maxMessagesPerTick)
	if c.Pacing.Mode == campaigns.PacingPreview {
		r.previewTick(ctx, now, calls) // each ready agent is offered the next contact
		return
	}
	snap := r.snapshot()
	n := r.pacer.Decide(now, snap)
	if n > 0 {
		n -= r.startFallbacks(ctx, now, n)
		r.startDue(ctx, now, calls, n)
	}
}

// startFallbacks starts up to limit remembered fallbacks that are still due where
// they were sent, and returns how many it started.
func (r *run) startFallbacks(ctx context.Context, now time.Time, limit int) int {
	started := 0
	for len(r.fallbacks) > 0 && started < limit {
		r.connectAnswered(ctx)
		id := r.fallbacks[0]
		r.fallbacks = r.fallbacks[1:]
		dc, err := r.e.store.ContactPosition(ctx, id)
		if err != nil || dc.Contact.Status != campaigns.ContactPending || dc.NextAttemptAt.After(now) ||
			dc.Rung >= len(r.campaign.Ladder) || !callRung(r.campaign.Ladder[dc.Rung].Channel) {
			continue // moved on meanwhile, or no longer due
		}
		if r.start(ctx, now, dc) {
			started++
		}
	}
	if len(r.fallbacks) == 0 {
		r.fallbacks = nil
	}
	return started
}

// maxMessagesPerTick bounds the messages one run starts per decision, so a backlog of
// messages cannot starve the calls.
const maxMessagesPerTick = 50

func (r *run) snapshot() pacing.Snapshot {
	r.agentBuf = r.e.agents.pacingView(r.id, r.agentBuf)
	r.dialBuf = r.dialBuf[:0]
	// An inbound caller on hold takes the next free agent as an answered person
	// does: the forecast counts both.
	holding, waiting := 0, len(r.waiting)+len(r.queued)
	for _, c := range r.calls {
		switch c.state {
		case callDialing, callRinging:
			if callRung(c.rung.Channel) {
				r.dialBuf = append(r.dialBuf, pacing.Dial{Start: c.started, Channel: pacing.Channel(c.rung.Channel)})
			}
		case callAbandoning, callResumeAbandoning, callMachine, callMachineNext, callVoicemail, callMissing:
			holding++ // answered, being hung up (or a message left): the line is held
		case callScreening:
			waiting++
		}
	}
	return pacing.Snapshot{Agents: r.agentBuf, Dials: r.dialBuf, Waiting: waiting, Holding: holding,
		Channel: pacing.DialChannel(r.routes())}
}

// routes are the ladder's call channels in the order it tries them, each down
// when it cannot take a call now: not configured on this server, or a channel
// that says so (channel.Health). Asked at every decision, so the forecast moves
// to the next channel the moment one goes down.
func (r *run) routes() []pacing.Route {
	out := make([]pacing.Route, 0, 2)
	for _, rung := range r.campaign.Ladder {
		ch := pacing.Channel(rung.Channel)
		if !callRung(rung.Channel) || slices.ContainsFunc(out, func(rt pacing.Route) bool { return rt.Channel == ch }) {
			continue
		}
		out = append(out, pacing.Route{Channel: ch, Down: !r.e.channelUp(rung.Channel)})
	}
	return out
}

// channelUp reports whether ch is configured and, if it can tell, takes calls now.
func (e *Engine) channelUp(ch campaigns.Channel) bool {
	c, ok := e.channels[ch]
	if !ok {
		return false
	}
	if h, ok := c.(channel.Health); ok {
		return h.Up()
	}
	return true
}

func (r *run) startDue(ctx context.Context, now time.Time, rungs []int, limit int) {
	if len(rungs) == 0 || limit <= 0 {
		return
	}
	due, err := r.e.store.DueContacts(ctx, r.id, rungs, now, limit)
	if err != nil {
		r.e.log.Error("due contacts", "campaign", r.id, "err", err)
		return
	}
	for _, dc := range due {
		r.connectAnswered(ctx)
		r.start(ctx, now, dc)
	}
}

// admit asks the policy gate whether dc may be tried on its rung at now and, when
// it may not, moves the contact through the journey's row for the refusal
// (do-not-call, opt-out, put off, or the rung skipped). It returns nil when
// allowed, the *campaigns.RefusedError of a refusal, or what kept the gate from
// ruling (the contact then stays where it is). reserved says an agent waits for
// this very call.
func (r *run) admit(ctx context.Context, dc storage.DueContact, now time.Time, reserved bool) error {
	action := campaigns.ActionFor(r.campaign.Ladder[dc.Rung].Channel)
	_, err := r.e.gate(ctx, &r.campaign, dc.Contact, action, now, reserved)
	if refused := (*campaigns.RefusedError)(nil); errors.As(err, &refused) {
		r.move(ctx, dc.Contact.ID, campaigns.RefusalEvent(refused.Decision), now)
	}
	return err
}

// start checks the policy for one due contact and, if it may be tried, records the
// attempt and only then places it.
func (r *run) start(ctx context.Context, now time.Time, dc storage.DueContact) bool {
	if !r.placeable(dc, now) {
		return false
	}
	if err := r.admit(ctx, dc, now, false); err != nil {
		if !errors.As(err, new(*campaigns.RefusedError)) {
			r.e.log.Error("policy", "contact", dc.Contact.ID, "err", err)
		}
		return false
	}
	return r.startAdmitted(ctx, now, dc)
}

// placeable reports whether dc's rung may be tried at now at all, before the gate
// is asked: a rung past the ladder, or the last rung while its channel is down,
// is not.
func (r *run) placeable(dc storage.DueContact, now time.Time) bool {
	c := r.campaign
	if dc.Rung >= len(c.Ladder) {
		return false
	}
	return dc.Rung != len(c.Ladder)-1 || !now.Before(r.downUntil[c.Ladder[dc.Rung].Channel])
}

// startAdmitted records the attempt of a contact the gate has just admitted and
// only then places it. Every caller asks the gate once, right before: start, or a
// preview dial (whose agent is reserved, so no abandon can follow).
func (r *run) startAdmitted(ctx context.Context, now time.Time, dc storage.DueContact) bool {
	c := r.campaign
	rung := c.Ladder[dc.Rung]
	contact := dc.Contact
	attempt, err := r.e.store.StartAttempt(ctx, contact.ID, rung.Channel, dc.Rung)
	if err != nil {
		if !errors.Is(err, storage.ErrConflict) {
			r.e.log.Error("start attempt", "contact", contact.ID, "err", err)
		}
		return false
	}
	cl := r.newCall(attempt, dc, rung, now)
	ch, ok := r.e.channels[rung.Channel]
	if !ok {
		r.feed(ctx, cl, callEvent{kind: evPlaceFailed, at: now, outcome: campaigns.OutcomeNoChannel}, channel.AttemptEvent{Kind: channel.AttemptEnded, At: now, Outcome: campaigns.OutcomeNoChannel, Detail: "channel " + string(rung.Channel) + " is not configured"})
		return true
	}
	r.place(ctx, cl, ch, now, dc.CallbackAgentID, true)
	return true
}

// place places cl's attempt on ch and follows it on a goroutine of its own.
// preferred is the agent to put the call through to if free (a callback's); fast
// lets the goroutine do so itself (connectNow) when the run allows it.
func (r *run) place(ctx context.Context, cl *call, ch channel.Channel, now time.Time, preferred int64, fast bool) {
	ordinal, err := r.e.store.AttemptOrdinal(ctx, cl.attempt)
	if err != nil {
		r.feed(ctx, cl, callEvent{kind: evPlaceFailed, at: now, outcome: campaigns.OutcomeInterrupted}, channel.AttemptEvent{Kind: channel.AttemptEnded, At: now, Outcome: campaigns.OutcomeInterrupted, Detail: err.Error()})
		return
	}
	callCtx, cancel := context.WithCancel(ctx)
	cl.cancel = cancel
	contact, rung := cl.due.Contact, cl.rung
	req := channel.PlaceRequest{AttemptID: cl.attempt.ID, Contact: contact, Rung: rung, To: campaigns.NumberFor(rung.Channel, contact),
		CallerID: r.campaign.CallerID, Key: outboxKey(contact.ID, ordinal), Permission: r.campaign.CallPermission}
	if callRung(rung.Channel) { // a message does not ring
		req.RingTimeout = r.ringTimeout(rung.Channel)
	}
	go r.follow(callCtx, ch, req, preferred, fast, cl.log)
}

// newCall starts following attempt, dialing from now, with the call's logger.
func (r *run) newCall(attempt storage.Attempt, dc storage.DueContact, rung campaigns.Rung, now time.Time) *call {
	c := &call{attempt: attempt, due: dc, rung: rung, state: callDialing, started: now,
		log: r.e.log.With("campaign", r.id, "attempt", attempt.ID, "contact", dc.Contact.ID, "channel", rung.Channel)}
	r.calls[attempt.ID] = c
	return c
}

// move moves a contact through the journey's table by ev (outside an attempt: the
// gate's refusals, a do-not-call number).
func (r *run) move(ctx context.Context, contactID int64, ev campaigns.Event, now time.Time) {
	if err := r.e.store.MoveContact(ctx, contactID, r.e.journeyMove(r.campaign.Ladder, ev, now, nil)); err != nil {
		r.e.log.Error("move contact", "contact", contactID, "event", ev.Name(), "err", err)
	}
}

// follow places one attempt and forwards its events to the loop. preferred is
// the agent to put the call through to if free (a callback's); fast lets it do so
// itself when the run allows (a call back on WhatsApp has its agent already); log
// is the call's logger, for what the call's goroutine does itself (connectNow).
func (r *run) follow(ctx context.Context, ch channel.Channel, req channel.PlaceRequest, preferred int64, fast bool, log *slog.Logger) {
	send := func(u callUpdate) bool {
		select {
		case r.updates <- u:
			return true
		case <-r.done:
			return false
		}
	}
	leg, err := ch.Place(ctx, req)
	if err != nil {
		send(callUpdate{attemptID: req.AttemptID, placeErr: err})
		return
	}
	if !send(callUpdate{attemptID: req.AttemptID, leg: leg}) {
		leg.Hangup(context.WithoutCancel(ctx))
		return
	}
	for ev := range leg.Events() {
		u := callUpdate{attemptID: req.AttemptID, ev: &ev}
		if ev.Kind == channel.AttemptAnswered {
			u.leg = leg
			if fast && r.fast.Load() {
				u.agentID, u.bridged = r.connectNow(leg, req, preferred, ev.At, log)
			}
			select {
			case r.answers <- u:
				continue
			case <-r.done:
				// The engine stopped: nobody will record this call, let the
				// agent go.
				if u.agentID != 0 {
					if b := r.e.audio.Bridge(u.agentID); b != nil && u.bridged != nil && b.Current() == u.bridged {
						b.Disconnect()
					}
					r.e.agents.unreserve(u.agentID, req.AttemptID)
				}
				return
			}
		}
		if !send(u) {
			return
		}
	}
}

// shutdown hangs up every call when the engine stops and tells each call's state
// machine, which records it as interrupted. The hang-ups run side by side, each with its own time limit, so a
// dead trunk's calls cannot use up the others' time.
func (r *run) shutdown() {
	// A lost lease (loseLease) leaves the calls' records to the node that took
	// the campaign: its fenced writes would be refused anyway.
	lost := r.lost.Load()
	var wg sync.WaitGroup
	for _, c := range r.calls {
		if c.leg == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c.leg.Hangup(ctx)
		}()
	}
	wg.Wait()
	if lost {
		return
	}
	// The run's context's values (its lease's fence), not its end.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.life), 5*time.Second)
	defer cancel()
	now := r.e.cfg.Now()
	for _, c := range r.calls {
		r.feed(ctx, c, callEvent{kind: evStopping, at: now}, channel.AttemptEvent{Kind: channel.AttemptEnded, At: now, Outcome: campaigns.OutcomeInterrupted, HangupBy: "local"})
	}
	// A last try; what the database still refuses stays open in it, and the next
	// start closes those attempts as interrupted.
	r.retryAt = time.Time{}
	r.recordLate(ctx, now)
}

func detailJSON(s string) []byte {
	b, _ := json.Marshal(map[string]string{"reason": s})
	return b
}
