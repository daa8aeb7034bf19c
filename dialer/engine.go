package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/agentaudio"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/waevents"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// Store is what the engine needs from storage.
type Store interface {
	storage.CampaignStore
	storage.AttemptStore
	storage.DNCStore
	storage.ComplianceStore
	storage.Outbox
	storage.WhatsAppStore
	storage.PolicyStore
	storage.InboundStore
	storage.LeaseStore
	GetContact(ctx context.Context, id int64) (campaigns.Contact, error)
	// SkipContact records a preview agent's skip and moves the contact as move says.
	SkipContact(ctx context.Context, s *storage.PreviewSkip, move storage.MoveFunc) error
	// ListSkips lists a contact's preview skips.
	ListSkips(ctx context.Context, contactID int64) ([]storage.PreviewSkip, error)
}

// Config tunes the engine.
type Config struct {
	// Tick is the longest time between two pacing decisions (default 250 ms).
	Tick time.Duration
	// RingTimeout is how long a call rings before it is given up (default 25 s) when its
	// campaign leaves the ring timeout automatic: it is the ceiling of what a predictive
	// campaign chooses. A campaign's fixed ring timeout overrides it.
	RingTimeout time.Duration
	// Patience is how long an answered person may wait for an agent before the call
	// is abandoned (default 2 s).
	Patience time.Duration
	// Sync is how often running campaigns are re-read from storage (default 1 s).
	Sync time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AgentPeers answers browser agents' WebRTC offers; nil refuses them.
	AgentPeers *media.AgentPeers
	// AbandonPrompt is played to a person no agent was free for (default: the
	// prompt shipped in package media).
	AbandonPrompt *media.Player
	// VoicemailMessage is left on answering machines when the campaign asks for it
	// (default: the message shipped in package media).
	VoicemailMessage *media.Player
	// WhatsApp is the Cloud API client whose calls webhooks are routed to; nil
	// without a WhatsApp account.
	WhatsApp *whatsapp.Client
	// RecordingsDir is where recorded calls go, one folder per campaign.
	RecordingsDir string
	// Registrar is where agents' SIP phones register; nil without one.
	Registrar *sip.Registrar
	// AgentSilence is how long an agent's nailed-up leg may send no audio before
	// it is taken as lost (a phone unplugged or killed, a browser's network gone)
	// and detached: the agent is paused (no_audio) and a customer on the line
	// hears the safe-harbour message (default 4 s, so that a lost agent is out
	// within 5 s: browsers and phones send packets through silence too;
	// negative: never).
	AgentSilence time.Duration
	// AgentReturn is how long a browser agent's call waits for the agent's audio
	// to come back (its page reloaded or reconnected) before the customer hears
	// the safe-harbour message (default 8 s; negative: no wait). A phone's leg
	// does not come back on its own: its call ends at once.
	AgentReturn time.Duration
	// NumberLimits bound the calls one number gets across every campaign and
	// channel (default DefaultNumberLimits; a zero field: no limit of that period).
	NumberLimits *campaigns.NumberLimits
	// QuietAfterAbandon is how long an abandoned person is not called again unless
	// an agent is reserved for the call (default 72 h; negative: never quiet).
	QuietAfterAbandon time.Duration
	// OptOutWords are the WhatsApp replies that put the person's number on the
	// do-not-call list (default DefaultOptOutWords).
	OptOutWords []string
	// OptOutReply is the one confirmation an opted-out person gets on WhatsApp
	// (default DefaultOptOutReply, pt-BR).
	OptOutReply string
	// PreviewHold is how long a preview agent may hold the contact offered to it
	// without dialling or skipping it before it goes back (default 60 s).
	PreviewHold time.Duration
	// PreviewSkipDelay is how long a contact a preview agent skipped waits before
	// it is due again, for any agent (default 30 min).
	PreviewSkipDelay time.Duration
	// InDoubtReportAfter is how long a WhatsApp message a crash left in doubt
	// waits for its status webhook before it is reported to the supervisors
	// (logged and counted in turbina_outbox_in_doubt_reported_total); it stays in
	// doubt until InDoubtWindow (default 15 min).
	InDoubtReportAfter time.Duration
	// InDoubtWindow is how long a WhatsApp message in doubt waits for its status
	// webhook before it is recorded not sent (never sent again; a status that
	// comes later still settles it sent). Default 1 h.
	InDoubtWindow time.Duration
	// InboundCampaign is the campaign whose agents take WhatsApp calls from
	// numbers no running campaign knows (the default inbound queue); 0: such
	// calls are left unanswered.
	InboundCampaign int64
	// InboundMaxWait is how long a person who called the business waits in the
	// queue for an agent before the apology and a callback (default 60 s).
	InboundMaxWait time.Duration
	// InboundHold is played, again and again, to a caller waiting in the queue
	// (default: the hold tone shipped in package media).
	InboundHold *media.Player
	// InboundSorry is played to a caller nobody took before the call is hung up
	// (default: the abandon prompt, which says that the call centre calls back).
	InboundSorry *media.Player
	// Cluster is how the engine shares its database with other nodes (default:
	// the only node on it).
	Cluster Cluster
}

func (c Config) withDefaults() Config {
	if c.Tick <= 0 {
		c.Tick = 250 * time.Millisecond
	}
	if c.RingTimeout <= 0 {
		c.RingTimeout = 25 * time.Second
	}
	if c.Patience <= 0 {
		c.Patience = 2 * time.Second
	}
	if c.Sync <= 0 {
		c.Sync = time.Second
	}
	switch {
	case c.AgentSilence == 0:
		c.AgentSilence = 4 * time.Second
	case c.AgentSilence < 0:
		c.AgentSilence = 0
	}
	switch {
	case c.AgentReturn == 0:
		c.AgentReturn = 8 * time.Second
	case c.AgentReturn < 0:
		c.AgentReturn = 0
	}
	if c.InDoubtReportAfter <= 0 {
		c.InDoubtReportAfter = 15 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NumberLimits == nil {
		c.NumberLimits = &DefaultNumberLimits
	}
	if c.QuietAfterAbandon == 0 {
		c.QuietAfterAbandon = campaigns.DefaultQuietAfterAbandon
	}
	if len(c.OptOutWords) == 0 {
		c.OptOutWords = DefaultOptOutWords
	}
	if c.OptOutReply == "" {
		c.OptOutReply = DefaultOptOutReply
	}
	if c.PreviewHold <= 0 {
		c.PreviewHold = 60 * time.Second
	}
	if c.PreviewSkipDelay <= 0 {
		c.PreviewSkipDelay = 30 * time.Minute
	}
	// The shipped prompts are embedded and known to parse.
	if c.AbandonPrompt == nil {
		c.AbandonPrompt, _ = media.NewAbandonPlayer()
	}
	if c.VoicemailMessage == nil {
		c.VoicemailMessage, _ = media.NewVoicemailPlayer()
	}
	if c.InboundMaxWait <= 0 {
		c.InboundMaxWait = 60 * time.Second
	}
	if c.InboundHold == nil {
		c.InboundHold = media.NewHoldPlayer()
	}
	if c.InboundSorry == nil {
		c.InboundSorry = c.AbandonPrompt
	}
	c.Cluster = c.Cluster.withDefaults()
	return c
}

// Engine runs every running campaign: it paces, places and follows their attempts.
type Engine struct {
	store    Store
	channels map[campaigns.Channel]channel.Channel
	agents   *Agents
	cfg      Config
	log      *slog.Logger

	mu     sync.Mutex
	runs   map[int64]*run
	wake   chan struct{}
	events *hub
	audio  *agentaudio.Hub
	// wa keeps and applies WhatsApp's webhook events.
	wa *waevents.Inbox
	// outboxReady is closed once Run has settled what stopped nodes left in the
	// outbox: nothing is sent before, so no live send is taken for a leftover.
	outboxReady chan struct{}
	// joined is closed once Run has joined the database's nodes and settled
	// the attempts stopped runs left open (recoverIdle): an attempt written
	// before may be taken for a leftover.
	joined  chan struct{}
	metrics metrics
	// draining is set by Drain, for good; drainWake wakes Drain when a run's
	// count of what it follows may have reached zero.
	draining  atomic.Bool
	drainWake chan struct{}
	// keep is the node's heartbeat and lease renewal (lease.go).
	keep keeper
	// shedding is the campaign this node hands over to even the spread out
	// (lease.go's shed), 0 when none: guarded by mu, cleared once its lease
	// is released, so the node does not take it back meanwhile.
	shedding int64
}

// gated is a channel that makes outbound actions of its own beyond Place (the
// WhatsApp call's permission request): New hands it the policy gate to ask
// before each, with the contact and the action.
type gated interface {
	UseGate(gate func(ctx context.Context, contactID int64, action campaigns.ContactAction) error)
}

// New returns an engine that places attempts on channels (by ladder channel) and
// routes answered calls to agents.
func New(store Store, channels map[campaigns.Channel]channel.Channel, agents *Agents, cfg Config, log *slog.Logger) *Engine {
	e := &Engine{
		store:    store,
		channels: channels,
		agents:   agents,
		cfg:      cfg.withDefaults(),
		log:      log,
		runs:     map[int64]*run{},
		wake:     make(chan struct{}, 1),
		events:   newHub(),
		metrics:  newMetrics(),

		outboxReady: make(chan struct{}),
		joined:      make(chan struct{}),
		drainWake:   make(chan struct{}, 1),
	}
	e.wa = waevents.New(store, waEngine{e}, waevents.Config{Client: e.cfg.WhatsApp, OptOutWords: e.cfg.OptOutWords,
		OptOutReply: e.cfg.OptOutReply, Now: e.cfg.Now, Logger: log, InDoubtWindow: e.cfg.InDoubtWindow})
	e.audio = agentaudio.New(agentaudio.Config{Peers: e.cfg.AgentPeers, Registrar: e.cfg.Registrar, Silence: e.cfg.AgentSilence, Logger: log}, audioAgents{e})
	for _, ch := range channels {
		if g, ok := ch.(gated); ok {
			g.UseGate(func(ctx context.Context, contactID int64, action campaigns.ContactAction) error {
				return e.gateContact(ctx, contactID, action, e.cfg.Now(), false)
			})
		}
	}
	agents.onChange = e.agentsChanged
	agents.watch = func(a Agent) {
		e.events.publish(a.ID, AgentEvent{Kind: EventState, Agent: &a, At: e.cfg.Now()})
	}
	return e
}

// Subscribe returns the events of one agent's session (state changes, screen-pops,
// call ends) and a function that ends the subscription.
func (e *Engine) Subscribe(agentID int64) (<-chan AgentEvent, func()) {
	return e.events.subscribe(agentID)
}

// Agents is the engine's agent pool.
func (e *Engine) Agents() *Agents { return e.agents }

// CampaignChanged tells the engine a campaign's state or settings changed, so that a
// pause stops new dials at once rather than at the next sync.
func (e *Engine) CampaignChanged() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// ChannelChanged tells the engine a channel went down or came back (a SIP
// trunk's death or recovery): every run routes its due contacts now, not at its
// next tick, and a run that held off the channel's last-rung contacts after
// finding it down tries it again once it is up.
func (e *Engine) ChannelChanged(ch campaigns.Channel) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.runs {
		r.channelChanged(ch)
	}
}

func (e *Engine) agentsChanged(ids []int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		if r, ok := e.runs[id]; ok {
			r.poke()
		}
	}
}

// Run drives campaigns until ctx ends. The node first joins its database's
// nodes (Config.Cluster), then runs the campaigns whose leases it takes,
// settling what their last holder left (recoverCampaign) before each dials. On
// its way out it releases its leases once their runs ended, and leaves.
func (e *Engine) Run(ctx context.Context) error {
	// Agents' sessions end last, once no run can bridge a call to them.
	defer e.audio.Close()
	ctx = storage.WithNode(ctx, e.NodeID())
	if err := e.join(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("join the database's nodes: %w", err)
	}
	defer e.leave()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.wa.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.reportInDoubt(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.keepLeases(ctx)
	}()
	t := time.NewTicker(e.cfg.Sync)
	defer t.Stop()
	for {
		if err := e.sync(ctx, &wg); err != nil && ctx.Err() == nil {
			e.log.Error("sync campaigns", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.wake:
		}
	}
}

// sync starts a run for every running or paused campaign this node should run
// (claimable) and whose lease it takes, and hands each its current settings; a
// finished or deleted campaign's run ends once its calls do. A node holding
// clearly more than its share hands one campaign over (shed). A draining node
// starts no run.
func (e *Engine) sync(ctx context.Context, wg *sync.WaitGroup) error {
	list, err := e.store.ListCampaigns(ctx, nil)
	if err != nil {
		return err
	}
	var active []int64
	for _, c := range list {
		if c.State == campaigns.StateRunning || c.State == campaigns.StatePaused {
			active = append(active, c.ID)
		}
	}
	leases, err := e.store.Leases(ctx)
	if err != nil {
		return err
	}
	held := make(map[int64]*storage.Lease, len(leases))
	for i := range leases {
		held[leases[i].CampaignID] = &leases[i]
	}
	mine, overloaded, err := e.claimable(ctx, active, leases)
	if err != nil {
		return err
	}
	seen := map[int64]bool{}
	// Read after e.mu is let go: a database round trip under it holds up every
	// agent's hang-up and disposition (runFor, wrapEnded) meanwhile.
	var refresh []*run
	defer func() {
		for _, r := range refresh {
			if err := r.refreshSafeHarbour(ctx); err != nil {
				e.log.Error("safe-harbour message", "campaign", r.id, "err", err)
			}
		}
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range list {
		if c.State != campaigns.StateRunning && c.State != campaigns.StatePaused {
			continue
		}
		if r, ok := e.runs[c.ID]; ok {
			// A draining node's runs end on their own once their calls and
			// wrap-ups are over (the campaign is handed over then), and until
			// then go on as draining says, not as stopped.
			seen[c.ID] = mine[c.ID] || e.Draining()
			r.setCampaign(c)
			refresh = append(refresh, r)
			continue
		}
		if e.Draining() {
			continue // a campaign started while the node drains runs on the next one
		}
		if !mine[c.ID] {
			continue
		}
		l, ok := e.takeLease(ctx, c, held[c.ID])
		if !ok {
			continue
		}
		seen[c.ID] = true
		e.startRun(ctx, wg, c, l)
	}
	for id, r := range e.runs {
		if !seen[id] {
			r.stop()
		}
	}
	if overloaded && !e.Draining() {
		e.shed()
	}
	e.metrics.leasesHeld.Set(float64(len(e.runs)))
	return nil
}

// startRun starts campaign c's run under lease l; called with e.mu held. The
// run's context carries the lease's fence, and is cancelled when the lease is
// lost (loseLease): the run then stops at once, without writing. A run that
// ends otherwise releases its lease.
func (e *Engine) startRun(ctx context.Context, wg *sync.WaitGroup, c campaigns.Campaign, l storage.Lease) {
	r := newRun(e, c)
	r.lease, r.renewed = l, time.Now()
	rctx, lose := context.WithCancelCause(storage.WithFence(ctx, l.Fence()))
	rctx = storage.WhenFenced(rctx, func() {
		e.metrics.fenced.Inc()
		r.loseLease(storage.ErrFenced)
	})
	r.lose = lose
	if err := r.resumePacing(rctx); err != nil {
		// The guards then start from nothing, as before they were kept: dialling goes on.
		e.log.Error("resume pacing", "campaign", c.ID, "err", err)
	}
	if err := r.refreshSafeHarbour(rctx); err != nil {
		e.log.Error("safe-harbour message", "campaign", c.ID, "err", err)
	}
	e.runs[c.ID] = r
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.loop(rctx)
		lose(nil)
		e.mu.Lock()
		if e.runs[c.ID] == r {
			delete(e.runs, c.ID)
		}
		e.metrics.leasesHeld.Set(float64(len(e.runs)))
		lease := r.lease
		e.mu.Unlock()
		if !r.lost.Load() {
			e.releaseLease(lease)
		}
		e.mu.Lock()
		if e.shedding == c.ID {
			e.shedding = 0 // released: the next one may go
		}
		e.mu.Unlock()
		e.drainPoke()
	}()
}

// journeyMove is the storage's move of a contact through ev at now on ladder: the
// journey's table decides. A pair the table refuses (the contact moved on
// meanwhile, e.g. a callback) leaves the contact where it is and is logged, so
// that the attempt it comes with is still recorded. When into is set, it receives
// the contact's new position.
func (e *Engine) journeyMove(ladder []campaigns.Rung, ev campaigns.Event, now time.Time, into *campaigns.Position) storage.MoveFunc {
	return func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
		to, err := campaigns.Apply(ladder, c, pos, ev, now)
		if errors.Is(err, campaigns.ErrNoTransition) {
			e.log.Error("contact left where it is", "contact", c.ID, "err", err)
			to, err = pos, nil
		}
		if into != nil {
			*into = to
		}
		return to, err
	}
}

// Hangup ends the call an agent is on (the agent hung up).
func (e *Engine) Hangup(ctx context.Context, agentID int64) error {
	a, ok := e.agents.Get(agentID)
	// A reserved agent may hang up the preview call it placed, still ringing.
	if !ok {
		return fmt.Errorf("agent %d: %w", agentID, ErrAgentNotLoggedIn)
	}
	if a.State != AgentOnCall && a.State != AgentReserved {
		return fmt.Errorf("agent %d has no call to hang up: %w", agentID, ErrNoCall)
	}
	r := e.runFor(a.Campaigns, a.AttemptID)
	if r == nil {
		return fmt.Errorf("agent %d: call %d not found", agentID, a.AttemptID)
	}
	return r.hangup(ctx, a.AttemptID)
}

// Close is how an agent closes a call in wrap-up.
type Close struct {
	// Code is one of the campaign's disposition codes.
	Code string `json:"code"`
	// CallbackAt is when to call the contact again; required by callback codes.
	CallbackAt time.Time `json:"callback_at,omitzero"`
	// SameAgent routes the callback to this agent when it is ready then.
	SameAgent bool `json:"same_agent,omitempty"`
	// Notes are the agent's words on the call, kept with the attempt.
	Notes string `json:"notes,omitempty"`
}

// ErrBadDisposition means a Close does not fit the campaign's dispositions.
var ErrBadDisposition = errors.New("invalid disposition")

// ErrCallbackTime means a callback disposition's time is in the past or more
// than 90 days ahead. It comes wrapped in ErrBadDisposition.
var ErrCallbackTime = errors.New("the callback time must be in the next 90 days")

// maxCallbackAhead bounds how far ahead a callback may be scheduled.
const maxCallbackAhead = 90 * 24 * time.Hour

// Disposition ends an agent's wrap-up with a disposition for its last call, and
// schedules the callback the disposition asks for.
func (e *Engine) Disposition(ctx context.Context, agentID int64, cl Close) error {
	a, ok := e.agents.Get(agentID)
	if !ok {
		return fmt.Errorf("agent %d: %w", agentID, ErrAgentNotLoggedIn)
	}
	if a.State != AgentWrapUp {
		return fmt.Errorf("agent %d is not in wrap-up: %w", agentID, ErrNoCall)
	}
	attempt, err := e.store.GetAttempt(ctx, a.AttemptID)
	if err != nil {
		return err
	}
	c, err := e.store.GetCampaign(ctx, attempt.CampaignID)
	if err != nil {
		return err
	}
	d, ok := c.Disposition(cl.Code)
	if !ok {
		return fmt.Errorf("%w: campaign %d has no disposition %q", ErrBadDisposition, c.ID, cl.Code)
	}
	now := e.cfg.Now()
	var callback *storage.Callback
	if d.Callback {
		if !cl.CallbackAt.After(now) || cl.CallbackAt.After(now.Add(maxCallbackAhead)) {
			return fmt.Errorf("%w: %s: %w", ErrBadDisposition, cl.Code, ErrCallbackTime)
		}
		callback = &storage.Callback{At: cl.CallbackAt}
		if cl.SameAgent {
			callback.AgentID = agentID
		}
		// The callback time must be one the law allows; a refusal carries the
		// reasons and the next allowed time for the agent to pick.
		ct, err := e.store.GetContact(ctx, attempt.ContactID)
		if err != nil {
			return err
		}
		if _, err := e.gate(ctx, &c, ct, campaigns.ActionCallback, cl.CallbackAt, cl.SameAgent); err != nil {
			return err
		}
	}
	if cl.Code == campaigns.DispositionDoNotCall {
		// On the list before the disposition is kept: a failure leaves the agent
		// in wrap-up to try again, and the number never off the list.
		ct, err := e.store.GetContact(ctx, attempt.ContactID)
		if err != nil {
			return err
		}
		if _, err := e.OptOut(ctx, storage.Actor{UserID: agentID, Username: a.Name}, personNumbers(ct), storage.OptOutDisposition); err != nil {
			return fmt.Errorf("do-not-call not recorded, still in wrap-up: %w", err)
		}
	}
	// Stored first, the agent freed after: a database that refuses the write
	// (busy, disk full) leaves the agent in wrap-up to try again, nothing lost.
	attemptID := a.AttemptID
	if err := e.agents.claimWrapUp(agentID, attemptID); err != nil {
		return err
	}
	disposed := e.store.Dispose(ctx, attemptID, cl.Code, cl.Notes, callback)
	if disposed != nil && !errors.Is(disposed, storage.ErrDisposed) {
		e.agents.releaseWrapUp(agentID)
		return fmt.Errorf("disposition not recorded, still in wrap-up: %w", disposed)
	}
	// Closed already (a wrap-up left open by a run that moved, closed on the
	// node the campaign went to): the wrap-up here is over all the same.
	_, wrap, err := e.agents.wrapUpDone(agentID, now)
	if err != nil {
		return err
	}
	e.wrapUpEnded(agentID)
	e.mu.Lock()
	for _, r := range e.runs {
		r.wrapEnded(attemptID, wrap)
	}
	e.mu.Unlock()
	if disposed != nil {
		return fmt.Errorf("%w: %w", ErrNoCall, disposed)
	}
	return nil
}

func (e *Engine) runFor(campaignIDs []int64, attemptID int64) *run {
	// Asked outside the lock: a run's loop may itself need e.mu (an agent change
	// pokes the runs) while it answers.
	e.mu.Lock()
	var runs []*run
	for _, id := range campaignIDs {
		if r, ok := e.runs[id]; ok {
			runs = append(runs, r)
		}
	}
	e.mu.Unlock()
	for _, r := range runs {
		if r.has(attemptID) {
			return r
		}
	}
	return nil
}

// errStopped ends a run whose campaign is no longer running or paused.
var errStopped = errors.New("campaign stopped")
