package dialer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/cluster"
	"github.com/turbina-dialer/turbina/storage"
)

// Cluster is how the engine shares its database's campaigns with the other
// nodes (`turbina serve` processes) on it. Each campaign's run is owned by the
// node holding its lease (storage.Lease), and everything the run writes
// carries the lease's fence: a node that lost a campaign writes nothing more
// for it.
type Cluster struct {
	// Node is this process as the other nodes see it. Its ID must be new at
	// each start (default: the host name and random bytes); its Addr is its
	// API's base URL (default "local").
	Node storage.Node
	// Shared is a database other nodes may use (PostgreSQL): the engine keeps
	// the campaigns it holds, takes those the spread (cluster.Mine) gives it
	// among the live nodes when their leases are free or expired, and hands
	// one over when it holds clearly more than its share. Not shared (SQLite), the node is the only one: it takes every
	// lease at start with a new epoch, fencing any process left on the file,
	// and its leases last a day (a database that refuses writes for a while
	// does not stop its runs, as before there were leases).
	Shared bool
	// LeaseTTL is how long a lease lasts unrenewed, and how long a node may
	// miss its heartbeat before it is dead (default 6 s: a node that stops
	// renewing loses its campaigns within 10 s).
	LeaseTTL time.Duration
	// RenewEvery is how often the node heartbeats and renews its leases
	// (default 2 s); it must be below LeaseTTL.
	RenewEvery time.Duration
}

// Defaults of Cluster.
const (
	DefaultLeaseTTL   = 6 * time.Second
	DefaultRenewEvery = 2 * time.Second
	// soleLeaseTTL is the leases' life on a database no other node uses.
	soleLeaseTTL   = 24 * time.Hour
	soleRenewEvery = time.Minute
)

func (c Cluster) withDefaults() Cluster {
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RenewEvery <= 0 {
		c.RenewEvery = DefaultRenewEvery
	}
	if !c.Shared {
		c.LeaseTTL = max(c.LeaseTTL, soleLeaseTTL)
		c.RenewEvery = max(c.RenewEvery, soleRenewEvery)
	}
	if c.Node.ID == "" {
		c.Node.ID = NewNodeID()
	}
	if c.Node.Addr == "" {
		c.Node.Addr = "local"
	}
	return c
}

// NewNodeID returns a node ID new to this start: the host's name, so that a
// person reading the leases knows the box, and random bytes.
func NewNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// Advertise sets the node's address (Node.Addr) to url, before Run: the
// address it listens on, known once it listens.
func (e *Engine) Advertise(url string) { e.cfg.Cluster.Node.Addr = url }

// NodeID is the engine's node.
func (e *Engine) NodeID() string { return e.cfg.Cluster.Node.ID }

// ClusterStatus is what the node runs and whether it keeps its leases.
type ClusterStatus struct {
	Node string
	// Campaigns are the campaigns whose lease this node holds.
	Campaigns []int64
	// Err is why the node is not ready: it could not heartbeat and renew its
	// leases for a lease TTL; nil when ready.
	Err error
}

// Cluster reports the campaigns this node runs and whether it keeps its
// leases, for /readyz.
func (e *Engine) Cluster() ClusterStatus {
	st := ClusterStatus{Node: e.NodeID(), Campaigns: []int64{}}
	e.mu.Lock()
	for id, r := range e.runs {
		if !r.lost.Load() {
			st.Campaigns = append(st.Campaigns, id)
		}
	}
	e.mu.Unlock()
	slices.Sort(st.Campaigns)
	e.keep.mu.Lock()
	defer e.keep.mu.Unlock()
	// Before Run joins, the node has no campaign to lose: ready as before.
	if !e.keep.beat.IsZero() && time.Since(e.keep.beat) >= e.cfg.Cluster.LeaseTTL {
		st.Err = fmt.Errorf("the node could not renew its leases since %s: %w", e.keep.beat.UTC().Format(time.RFC3339), e.keep.err)
	}
	return st
}

// join registers the node (alone on its database, as its only node) and
// settles what dead nodes left in the outbox. Sends wait for it.
func (e *Engine) join(ctx context.Context) error {
	n := e.cfg.Cluster.Node
	if err := e.store.RegisterNode(ctx, n); err != nil {
		return err
	}
	if !e.cfg.Cluster.Shared {
		if err := e.store.ClaimSole(ctx, n.ID); err != nil {
			return err
		}
	}
	live, err := e.liveNodes(ctx)
	if err != nil {
		return err
	}
	e.keep.mu.Lock()
	e.keep.beat, e.keep.live = time.Now(), live
	e.keep.mu.Unlock()
	scope := storage.OutboxScope{Live: live}
	if !e.cfg.Cluster.Shared {
		scope = storage.OutboxScope{} // the only node: whatever is left is a stopped process's
	}
	if err := e.recoverOutbox(ctx, scope); err != nil {
		return err
	}
	close(e.outboxReady)
	if err := e.recoverIdle(ctx); err != nil {
		return err
	}
	close(e.joined)
	return nil
}

// leave gives up the node's place once its runs ended (their leases released).
func (e *Engine) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.RemoveNode(ctx, e.NodeID()); err != nil {
		e.log.Warn("leave the database's nodes", "node", e.NodeID(), "err", err)
	}
}

// liveNodes are the IDs of the nodes that heartbeat within a lease TTL,
// draining or not.
func (e *Engine) liveNodes(ctx context.Context) ([]string, error) {
	live, _, err := e.nodes(ctx)
	return live, err
}

// nodes are the IDs of the nodes that heartbeat within a lease TTL (live), and
// of those among them that do not drain, which the campaigns are spread over
// (takers).
func (e *Engine) nodes(ctx context.Context) (live, takers []string, err error) {
	nodes, err := e.store.LiveNodes(ctx, e.cfg.Cluster.LeaseTTL)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range nodes {
		live = append(live, n.ID)
		if !n.Draining {
			takers = append(takers, n.ID)
		}
	}
	return live, takers, nil
}

// recoverOutbox settles the outbox messages of scope that stopped nodes left
// claimed: with the live nodes as scope, those of no campaign (agents'
// messages, opt-out replies). Those of a campaign are settled by the node that
// takes the campaign over (recoverCampaign).
func (e *Engine) recoverOutbox(ctx context.Context, scope storage.OutboxScope) error {
	r, err := e.store.RecoverOutbox(ctx, scope, []string{outboxTemplateKind})
	if err != nil {
		return err
	}
	if r.Requeued+r.InDoubt+r.NotSent > 0 {
		e.log.Warn("outbox messages left by a node that stopped: recorded not sent if nothing will send them, in doubt until WhatsApp's status webhook settles them",
			"requeued", r.Requeued, "not_sent", r.NotSent, "in_doubt", r.InDoubt)
	}
	return nil
}

// recoverIdle settles the campaigns no run will take (finished or stopped
// since) that a stopped node left attempts open in: each is taken for the
// time of its recovery, so no other node does it at the same time.
func (e *Engine) recoverIdle(ctx context.Context) error {
	open, err := e.store.OpenAttempts(ctx)
	if err != nil {
		return fmt.Errorf("recover interrupted attempts: %w", err)
	}
	seen := map[int64]bool{}
	for _, a := range open {
		if seen[a.CampaignID] {
			continue
		}
		seen[a.CampaignID] = true
		c, err := e.store.GetCampaign(ctx, a.CampaignID)
		if err != nil {
			return fmt.Errorf("recover attempt %d: %w", a.ID, err)
		}
		if c.State == campaigns.StateRunning || c.State == campaigns.StatePaused {
			continue // its run's node recovers it
		}
		l, err := e.store.AcquireLease(ctx, c.ID, e.NodeID(), e.cfg.Cluster.LeaseTTL)
		if errors.Is(err, storage.ErrLeaseHeld) {
			continue
		}
		if err != nil {
			return err
		}
		err = e.recoverCampaign(storage.WithFence(ctx, l.Fence()), c)
		if rerr := e.store.ReleaseLease(ctx, l); err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// recoverCampaign settles what the campaign's previous holder left, under the
// lease just taken (ctx carries its fence), before its run dials: its outbox
// messages claimed (in doubt when their request started, else sent again or
// recorded not sent), then its attempts still open, closed as interrupted.
// The outbox first: a template whose contact's attempt is recovered is placed
// again under its key, and must find its row settled.
func (e *Engine) recoverCampaign(ctx context.Context, c campaigns.Campaign) error {
	r, err := e.store.RecoverOutbox(ctx, storage.OutboxScope{Campaign: c.ID}, []string{outboxTemplateKind})
	if err != nil {
		return err
	}
	if r.Requeued+r.InDoubt+r.NotSent > 0 {
		e.log.Warn("outbox messages left by the campaign's last run: sent again if their request never left, recorded not sent if nothing will send them, in doubt until WhatsApp's status webhook settles them",
			"campaign", c.ID, "requeued", r.Requeued, "not_sent", r.NotSent, "in_doubt", r.InDoubt)
	}
	open, err := e.store.OpenAttempts(ctx)
	if err != nil {
		return fmt.Errorf("recover interrupted attempts: %w", err)
	}
	now := e.cfg.Now()
	n := 0
	for _, a := range open {
		if a.CampaignID != c.ID {
			continue
		}
		a.State, a.Outcome, a.EndAt = "ended", string(campaigns.OutcomeInterrupted), &now
		move := e.journeyMove(c.Ladder, campaigns.OutcomeEvent(campaigns.OutcomeInterrupted), now, nil)
		if a.ResumedFrom != 0 {
			move = nil // a call back on WhatsApp: its conversation moved the contact already (connected)
		}
		if err := e.store.FinishAttempt(ctx, a, move); err != nil {
			return fmt.Errorf("recover attempt %d: %w", a.ID, err)
		}
		n++
	}
	if n > 0 {
		e.log.Warn("attempts interrupted by the campaign's last run were closed; their contacts wait their rung's retry delay", "campaign", c.ID, "attempts", n)
	}
	return nil
}

// keeper is the node's heartbeat and lease renewal, read by Cluster.
type keeper struct {
	mu sync.Mutex
	// beat is when the node last heartbeat and renewed all its leases; err
	// the last failure since.
	beat time.Time
	err  error
	// live are the live nodes as last read; recoverOutbox runs when one goes.
	live []string
}

// keepLeases heartbeats the node and renews its runs' leases every RenewEvery
// until ctx ends. A lease lost (it expired and another node took the campaign)
// or not renewed for a lease TTL stops its run at once, without writing.
func (e *Engine) keepLeases(ctx context.Context) {
	t := time.NewTicker(e.cfg.Cluster.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.renewLeases(ctx)
	}
}

// renewLeases is one round of keepLeases.
func (e *Engine) renewLeases(ctx context.Context) {
	start := time.Now()
	n := e.cfg.Cluster.Node
	err := e.store.HeartbeatNode(ctx, n.ID)
	if errors.Is(err, storage.ErrNotFound) {
		n.Draining = e.Draining()
		err = e.store.RegisterNode(ctx, n)
	}
	e.mu.Lock()
	var held []*run
	for _, r := range e.runs {
		if !r.lost.Load() {
			held = append(held, r)
		}
	}
	e.mu.Unlock()
	for _, r := range held {
		e.mu.Lock()
		l := r.lease
		e.mu.Unlock()
		l, rerr := e.store.RenewLease(ctx, l, e.cfg.Cluster.LeaseTTL)
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		switch {
		case rerr == nil:
			r.lease, r.renewed = l, start
		case errors.Is(rerr, storage.ErrLeaseLost):
			r.loseLease(rerr)
		default:
			err = rerr
			if time.Since(r.renewed) >= e.cfg.Cluster.LeaseTTL {
				r.loseLease(fmt.Errorf("%w: not renewed for %s: %w", storage.ErrLeaseLost, e.cfg.Cluster.LeaseTTL, rerr))
			}
		}
		e.mu.Unlock()
	}
	if ctx.Err() != nil {
		return
	}
	e.keep.mu.Lock()
	if err == nil {
		e.keep.beat, e.keep.err = start, nil
	} else {
		e.keep.err = err
		e.metrics.renewFailures.Inc()
	}
	last := e.keep.live
	e.keep.mu.Unlock()
	if err != nil {
		e.log.Warn("heartbeat or lease renewal failed", "node", n.ID, "err", err)
		return
	}
	live, err := e.liveNodes(ctx)
	if err != nil {
		return
	}
	e.keep.mu.Lock()
	e.keep.live = live
	e.keep.mu.Unlock()
	for _, id := range last {
		if !slices.Contains(live, id) {
			// A node died: what it left of no campaign, and of campaigns no
			// longer running, is settled by the living (its running campaigns
			// by the nodes that take them over).
			err := e.recoverOutbox(ctx, storage.OutboxScope{Live: live})
			if err == nil {
				err = e.recoverIdle(ctx)
			}
			if err != nil && ctx.Err() == nil {
				e.log.Error("settle what a dead node left", "node", id, "err", err)
			}
			break
		}
	}
}

// claimable is the set of campaigns among active this node should run: all of
// them alone on its database, else those the spread gives it (cluster.Mine)
// among the live nodes that do not drain, with leases as last read: those it
// holds, and free ones. A draining node is given none: each campaign it holds
// goes to a node the spread gives it among the others, which takes its lease
// once the draining node's run there ends and releases it. overloaded says the
// node holds clearly more than its share (cluster.Overloaded).
func (e *Engine) claimable(ctx context.Context, active []int64, leases []storage.Lease) (mine map[int64]bool, overloaded bool, err error) {
	ids := active
	if e.cfg.Cluster.Shared {
		_, takers, err := e.nodes(ctx)
		if err != nil {
			return nil, false, err
		}
		if !slices.Contains(takers, e.NodeID()) && !e.Draining() {
			// Not seen live (its heartbeat late): it takes nothing new, and
			// hands over nothing either until it is seen again.
			takers = append(takers, e.NodeID())
		}
		held := make(map[int64]string, len(leases))
		for _, l := range leases {
			if l.Live {
				held[l.CampaignID] = l.NodeID
			}
		}
		ids = cluster.Mine(e.NodeID(), takers, active, held)
		overloaded = cluster.Overloaded(e.NodeID(), takers, active, held)
	}
	mine = make(map[int64]bool, len(ids))
	e.mu.Lock()
	shedding := e.shedding
	e.mu.Unlock()
	for _, id := range ids {
		// The campaign being handed over is not taken back while its run
		// ends and its lease is released.
		mine[id] = id != shedding
	}
	return mine, overloaded, nil
}

// shed hands over one campaign of a node that holds clearly more than its
// share, unless one is on its way already: the one that follows fewest calls
// and wrap-ups (a paused or idle campaign moves at once), which ends its run
// as a hand-over does: no new dial, its calls end, then its lease is released
// and the node the spread gives it takes it. Called with e.mu held.
func (e *Engine) shed() {
	if e.shedding != 0 {
		return
	}
	var pick *run
	for _, r := range e.runs {
		if r.lost.Load() || r.stopOnce {
			continue
		}
		if pick == nil || r.busy.Load() < pick.busy.Load() || r.busy.Load() == pick.busy.Load() && r.id < pick.id {
			pick = r
		}
	}
	if pick == nil {
		return
	}
	e.shedding = pick.id
	e.log.Info("campaign handed over: this node holds more than its share", "campaign", pick.id, "calls_and_wrap_ups", pick.busy.Load())
	pick.stop()
}

// takeLease takes campaign c's lease for a new run when it is free or expired
// (prev is the lease as last read, nil when never taken), and settles what its
// last holder left, under the new lease's fence. It reports whether the lease
// was taken; the caller holds e.mu.
func (e *Engine) takeLease(ctx context.Context, c campaigns.Campaign, prev *storage.Lease) (storage.Lease, bool) {
	if prev != nil && prev.Live && prev.NodeID != e.NodeID() {
		return storage.Lease{}, false // held by another node
	}
	l, err := e.store.AcquireLease(ctx, c.ID, e.NodeID(), e.cfg.Cluster.LeaseTTL)
	if err != nil {
		if !errors.Is(err, storage.ErrLeaseHeld) && ctx.Err() == nil {
			e.log.Error("take a campaign's lease", "campaign", c.ID, "err", err)
		}
		return storage.Lease{}, false
	}
	if err := e.recoverCampaign(storage.WithFence(ctx, l.Fence()), c); err != nil {
		if ctx.Err() == nil {
			e.log.Error("recover the campaign's last run; its lease is given up, to be taken again", "campaign", c.ID, "err", err)
		}
		e.releaseLease(l)
		return storage.Lease{}, false
	}
	if prev != nil && prev.NodeID != e.NodeID() {
		e.metrics.handovers.Inc()
		e.log.Info("campaign taken over", "campaign", c.ID, "from", prev.NodeID, "epoch", l.Epoch)
	}
	return l, true
}

// releaseLease gives up l, its run over, so another node may take the
// campaign at once.
func (e *Engine) releaseLease(l storage.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.ReleaseLease(ctx, l); err != nil && !errors.Is(err, storage.ErrLeaseLost) {
		e.log.Warn("release a campaign's lease: it expires on its own", "campaign", l.CampaignID, "err", err)
	}
}
