package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/storage"
)

// Several nodes on one database (PostgreSQL) show one wallboard: what the
// database holds is the same from every node, but the live parts (the agents an
// engine serves, its campaigns' pacers, ringing and waiting calls, inbound
// callers on hold, its SIP stack's trunks and their deaths) are each node's
// own. Each node publishes its live part into the database once a second
// (RunCluster), and the wallboard of any node merges the fresh parts of the
// others with its own, read directly. The same loop polls the database's change
// counters four times a second, so that a supervisor's change on any node
// reaches the node it concerns within a second: a campaign's settings wake the
// engine's sync, a trunk taken out of service is taken out on every node, an
// agent moved between campaigns is moved by the node serving it, and calls
// ringing to numbers just put on a do-not-call list are ended on every node.

// Defaults of ClusterOptions.
const (
	// DefaultClusterPoll is how often a node reads the change counters: a
	// change reaches it within this and the engine's sync.
	DefaultClusterPoll = 250 * time.Millisecond
	// DefaultLivePublish is how often a node publishes its live part, the
	// wallboard's own cadence.
	DefaultLivePublish = time.Second
	// DefaultLiveMaxAge is how old another node's live part may be and still be
	// shown: a node that has not published for this long is gone or stuck.
	DefaultLiveMaxAge = 3 * time.Second
)

// ClusterOptions tell RunCluster who this node is and how it shares.
type ClusterOptions struct {
	// Node is this node's ID, the one its leases carry.
	Node string
	// Publish says whether the node publishes its live part: on a database
	// other nodes share (PostgreSQL). On SQLite, the only node has nobody to
	// show it to, and the writes would be the single writer's.
	Publish bool
	// Poll, PublishEvery and MaxAge default to DefaultClusterPoll,
	// DefaultLivePublish and DefaultLiveMaxAge.
	Poll         time.Duration
	PublishEvery time.Duration
	MaxAge       time.Duration
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	o.Poll = cmp.Or(o.Poll, DefaultClusterPoll)
	o.PublishEvery = cmp.Or(o.PublishEvery, DefaultLivePublish)
	o.MaxAge = cmp.Or(o.MaxAge, DefaultLiveMaxAge)
	return o
}

// clusterSlot holds the options RunCluster runs with, nil before it does.
type clusterSlot struct {
	p atomic.Pointer[ClusterOptions]
	// trunks is held by a supervisor's trunk action here, from its change of
	// this node's trunk to its row's commit, and by the poll that applies the
	// rows: the poll never applies a row older than a change made meanwhile.
	trunks sync.Mutex
}

// sharing returns the options when this node shares its live part with others.
func (c *clusterSlot) sharing() (ClusterOptions, bool) {
	o := c.p.Load()
	if o == nil || !o.Publish {
		return ClusterOptions{}, false
	}
	return *o, true
}

// RunCluster publishes this node's live part and polls the change counters
// until ctx ends; then it withdraws the live part. It first applies every
// trunk's state chosen by supervisors, so a node that starts while a trunk is
// out of service keeps it out. The serve command runs it beside the engine.
func (s *Server) RunCluster(ctx context.Context, opts ClusterOptions) error {
	if opts.Node == "" {
		return errors.New("run cluster: no node id")
	}
	opts = opts.withDefaults()
	s.ui.wall.cluster.p.Store(&opts)
	if opts.Publish {
		defer func() {
			// The page of a node that left goes at once, not after MaxAge.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := s.store.RemoveNodeLive(rctx, opts.Node); err != nil {
				s.log.Warn("withdraw the wallboard's live part", "err", err)
			}
		}()
	}
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	var publish <-chan time.Time
	if opts.Publish {
		t := time.NewTicker(opts.PublishEvery)
		defer t.Stop()
		publish = t.C
		s.publishLive(ctx, opts.Node)
	}
	var w changeWatch
	w.poll(ctx, s)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			w.poll(ctx, s)
		case <-publish:
			s.publishLive(ctx, opts.Node)
		}
	}
}

// changeWatch is what RunCluster's poll has seen of the change counters.
type changeWatch struct {
	started   bool
	campaigns int64
	trunks    int64 // the last trunk choice applied
	commands  int64 // the last command done
	failing   bool  // the last poll failed: logged once, not four times a second
}

func (w *changeWatch) poll(ctx context.Context, s *Server) {
	err := w.step(ctx, s)
	switch {
	case err != nil && ctx.Err() == nil && !w.failing:
		s.log.Warn("cluster: changes from the other nodes not read", "err", err)
		w.failing = true
	case err == nil && w.failing:
		s.log.Info("cluster: changes from the other nodes read again")
		w.failing = false
	}
}

func (w *changeWatch) step(ctx context.Context, s *Server) error {
	v, err := s.store.ChangeVersions(ctx)
	if err != nil {
		return err
	}
	if c := v[storage.VersionCampaigns]; !w.started || c != w.campaigns {
		if s.cfg.Engine != nil {
			// The engine re-reads every campaign now rather than at its next
			// sync: a pause or new pacing on another node is this run's within
			// the poll. The first read wakes it too: a change between the
			// engine's first sync and this read is in the counter already.
			s.cfg.Engine.CampaignChanged()
		}
		if w.started {
			s.ui.wall.poke()
		}
		w.campaigns = c
	}
	if c := v[storage.VersionCommands]; !w.started {
		// Commands before this node started are not its: its engine started
		// from the database as it was.
		w.commands = c
	} else if c > w.commands {
		cmds, err := s.store.ClusterCommands(ctx, w.commands)
		if err != nil {
			return err
		}
		for _, cmd := range cmds {
			s.applyCommand(ctx, cmd)
			w.commands = cmd.Version
		}
	}
	if t := v[storage.VersionTrunks]; t > w.trunks {
		if err := w.applyTrunks(ctx, s); err != nil {
			return err
		}
	}
	w.started = true
	return nil
}

// applyTrunks applies the trunks' states chosen since the last it applied, in
// the order they were chosen.
func (w *changeWatch) applyTrunks(ctx context.Context, s *Server) error {
	mu := &s.ui.wall.cluster.trunks
	mu.Lock()
	defer mu.Unlock()
	rows, err := s.store.TrunkServices(ctx, w.trunks)
	if err != nil {
		return err
	}
	for _, ts := range rows {
		s.applyTrunkService(ts)
		w.trunks = ts.Version
	}
	return nil
}

// applyCommand does to this node's engine what a node did to its own at a
// supervisor's word. The node that did it does it again: both commands are
// idempotent.
func (s *Server) applyCommand(ctx context.Context, cmd storage.ClusterCommand) {
	e := s.cfg.Engine
	if e == nil {
		return
	}
	var err error
	switch cmd.Kind {
	case storage.CommandAssign, storage.CommandUnassign:
		var m storage.AssignmentCommand
		if err = json.Unmarshal(cmd.Body, &m); err != nil {
			break
		}
		move := e.Agents().Assign
		if cmd.Kind == storage.CommandUnassign {
			move = e.Agents().Unassign
		}
		// An agent this node does not serve is not signed in here: nothing
		// to move.
		if _, err = move(m.UserID, m.CampaignID); errors.Is(err, dialer.ErrAgentNotLoggedIn) {
			err = nil
		}
	case storage.CommandStopRinging:
		var m storage.StopRingingCommand
		if err = json.Unmarshal(cmd.Body, &m); err == nil && len(m.Numbers) > 0 {
			e.StopRinging(ctx, m.CampaignID, m.Numbers)
		}
	default:
		err = fmt.Errorf("unknown kind %q", cmd.Kind)
	}
	if err != nil {
		s.log.Warn("cluster: a command from another node not done", "version", cmd.Version, "kind", cmd.Kind, "err", err)
	}
}

// applyTrunkService puts this node's trunk in the state a supervisor chose,
// unless it is in it already: forcing a trunk in service opens its circuit to
// probe it, which a trunk carrying calls must not go through for nothing.
func (s *Server) applyTrunkService(ts storage.TrunkService) {
	if s.cfg.TrunkControl == nil {
		return
	}
	if trunks, ok := s.trunkStatus().([]sip.TrunkStatus); ok {
		i := slices.IndexFunc(trunks, func(st sip.TrunkStatus) bool { return st.Name == ts.Name })
		if i < 0 {
			s.log.Warn("cluster: a supervisor's choice for a trunk this node does not have", "trunk", ts.Name)
			return
		}
		if trunks[i].OutOfService == ts.OutOfService {
			return
		}
	}
	if err := s.cfg.TrunkControl.SetTrunkOutOfService(ts.Name, ts.OutOfService); err != nil {
		s.log.Warn("cluster: a supervisor's trunk choice not applied", "trunk", ts.Name, "out_of_service", ts.OutOfService, "err", err)
		return
	}
	s.log.Info("cluster: trunk set as a supervisor chose", "trunk", ts.Name, "out_of_service", ts.OutOfService)
}

// trunkStatus is this node's trunks, nil when it has none configured.
func (s *Server) trunkStatus() any {
	if s.cfg.TrunkStatus == nil {
		return nil
	}
	return s.cfg.TrunkStatus()
}

// publishLive stores this node's live part for the others' wallboards.
func (s *Server) publishLive(ctx context.Context, node string) {
	pctx, cancel := context.WithTimeout(ctx, DefaultLivePublish)
	defer cancel()
	part, err := s.ui.wall.ownPart(pctx, s.ui.now())
	if err == nil {
		var b []byte
		if b, err = json.Marshal(part); err == nil {
			err = s.store.PublishNodeLive(pctx, node, b)
		}
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("cluster: the wallboard's live part not published", "err", err)
	}
}

// livePart is what one node's engine and SIP stack know that the database does
// not: the part of the wallboard each node publishes.
type livePart struct {
	Agents []liveAgent           `json:"agents"`
	Pacers []dialer.PacerView    `json:"pacers"`
	Queues []dialer.InboundQueue `json:"inbound"`
	// Trunks are the node's SIP trunks; Failovers its trunks' deaths for the
	// banner, without the counts, which the database gives any node.
	Trunks    []sip.TrunkStatus   `json:"trunks"`
	Failovers []WallboardFailover `json:"failovers"`

	// rawTrunks is the node's own TrunkStatus as it was given, shown as it is
	// when no other node is live; node is the publisher and age how old the
	// part was when read, by the database's clock: neither is published.
	rawTrunks any
	node      string
	age       time.Duration
}

// liveAgent is a dialer.Agent as a node publishes it: the fields the wallboard
// reads, the campaigns included (dialer.Agent's JSON has them as strings only).
type liveAgent struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	State     dialer.AgentState `json:"state"`
	Reason    string            `json:"reason,omitempty"`
	Since     time.Time         `json:"since"`
	Campaigns []int64           `json:"campaigns"`
	AttemptID int64             `json:"attempt_id,omitempty"`
}

func (a liveAgent) agent() dialer.Agent {
	return dialer.Agent{ID: a.ID, Name: a.Name, State: a.State, Reason: a.Reason, Since: a.Since, Campaigns: a.Campaigns, AttemptID: a.AttemptID}
}

// ownPart reads this node's live part from its engine and SIP stack. The
// trunks' states go to the failover banner too: a node nobody watches still
// publishes its trunks' deaths.
func (wb *wallboard) ownPart(ctx context.Context, now time.Time) (livePart, error) {
	s := wb.s
	p := livePart{Agents: []liveAgent{}, Pacers: []dialer.PacerView{}, Queues: []dialer.InboundQueue{},
		Trunks: []sip.TrunkStatus{}, rawTrunks: []any{}}
	if s.cfg.TrunkStatus != nil {
		p.rawTrunks = s.cfg.TrunkStatus()
		// The poll is a backstop for a change OnTrunkChange did not bring (a
		// server whose originator was built without the hook).
		if trunks, ok := p.rawTrunks.([]sip.TrunkStatus); ok {
			p.Trunks = trunks
			for _, st := range trunks {
				wb.failovers.note(st, now)
			}
		}
	}
	p.Failovers = wb.failovers.list(now)
	if s.cfg.Engine == nil {
		return p, nil
	}
	for _, a := range s.cfg.Engine.Agents().List() {
		p.Agents = append(p.Agents, liveAgent{ID: a.ID, Name: a.Name, State: a.State, Reason: a.Reason, Since: a.Since,
			Campaigns: a.Campaigns, AttemptID: a.AttemptID})
	}
	p.Pacers = append(p.Pacers, s.cfg.Engine.PacerViews()...)
	q, err := s.cfg.Engine.InboundQueues(ctx, time.Local)
	if err != nil {
		return p, err
	}
	p.Queues = q
	return p, nil
}

// liveView is the live parts of every live node merged, as the wallboard shows
// them.
type liveView struct {
	agents []dialer.Agent
	// agentNode is the node serving each agent, and trunks' entries carry their
	// node, only when several nodes are live (multi).
	agentNode map[int64]string
	views     map[int64][]dialer.PacerView
	inbound   []dialer.InboundQueue
	trunks    any
	failovers []WallboardFailover
	multi     bool
	// holder is the node holding each campaign's live lease.
	holder map[int64]string
}

// live reads this node's live part and, when it shares with other nodes, the
// fresh parts the others published, and merges them: each campaign's pacer
// from the node holding its lease (else this node, else the first that runs
// it), each agent once, from the node holding the lease of one of its campaigns
// (else the first that serves it), every node's trunks, every trunk's death
// once.
func (wb *wallboard) live(ctx context.Context, now time.Time) (liveView, error) {
	own, err := wb.ownPart(ctx, now)
	if err != nil {
		return liveView{}, err
	}
	parts := []livePart{own}
	// Who holds each campaign's live lease: the wallboard names each card's
	// node, and with several nodes it picks which node's view of a campaign
	// to show.
	holder, err := liveHolders(ctx, wb.s.store)
	if err != nil {
		return liveView{}, err
	}
	if opts, ok := wb.cluster.sharing(); ok {
		parts[0].node = opts.Node
		remote, err := wb.s.store.NodeLiveParts(ctx, opts.MaxAge)
		if err != nil {
			return liveView{}, err
		}
		for _, r := range remote {
			if r.Node == opts.Node {
				continue
			}
			var p livePart
			if err := json.Unmarshal(r.Body, &p); err != nil {
				wb.s.log.Warn("wallboard: a node's live part unreadable", "node", r.Node, "err", err)
				continue
			}
			p.node, p.age = r.Node, r.Age
			parts = append(parts, p)
		}
	}
	prefer := holder
	if len(parts) == 1 {
		prefer = nil // one node's part: nothing to choose between
	}
	lv := mergeLive(parts, prefer)
	lv.holder = holder
	return lv, nil
}

// liveHolders maps each campaign whose lease is live to the node holding it.
func liveHolders(ctx context.Context, store storage.LeaseStore) (map[int64]string, error) {
	leases, err := store.Leases(ctx)
	if err != nil {
		return nil, err
	}
	holder := map[int64]string{}
	for _, l := range leases {
		if l.Live {
			holder[l.CampaignID] = l.NodeID
		}
	}
	return holder, nil
}

// mergeLive merges parts, this node's first, holder naming the node of each
// campaign's live lease.
func mergeLive(parts []livePart, holder map[int64]string) liveView {
	v := liveView{views: map[int64][]dialer.PacerView{}, agentNode: map[int64]string{}, multi: len(parts) > 1}
	// preferred says whether part p's view of campaign c beats the one taken.
	preferred := func(c int64, p livePart, taken string) bool {
		h, ok := holder[c]
		return ok && p.node == h && taken != h
	}
	viewFrom := map[int64]string{}
	for _, p := range parts {
		byCampaign := map[int64][]dialer.PacerView{}
		for _, pv := range p.Pacers {
			byCampaign[pv.CampaignID] = append(byCampaign[pv.CampaignID], pv)
		}
		for c, views := range byCampaign {
			if from, ok := viewFrom[c]; !ok || preferred(c, p, from) {
				v.views[c], viewFrom[c] = views, p.node
			}
		}
	}
	agentAt := map[int64]int{} // index in v.agents
	for _, p := range parts {
		for _, la := range p.Agents {
			i, ok := agentAt[la.ID]
			if !ok {
				agentAt[la.ID] = len(v.agents)
				v.agents = append(v.agents, la.agent())
				v.agentNode[la.ID] = p.node
				continue
			}
			if slices.ContainsFunc(la.Campaigns, func(c int64) bool { return preferred(c, p, v.agentNode[la.ID]) }) {
				v.agents[i], v.agentNode[la.ID] = la.agent(), p.node
			}
		}
	}
	v.inbound = mergeQueues(parts)
	v.failovers = mergeFailovers(parts)
	v.trunks = parts[0].rawTrunks
	if v.multi {
		trunks := []WallboardTrunk{}
		for _, p := range parts {
			for _, st := range p.Trunks {
				trunks = append(trunks, WallboardTrunk{TrunkStatus: st, Node: p.node})
			}
		}
		v.trunks = trunks
	} else {
		clear(v.agentNode)
	}
	return v
}

// WallboardTrunk is a SIP trunk as one node's SIP stack sees it, when several
// nodes are live: each has its own stack and circuits to the one carrier.
type WallboardTrunk struct {
	sip.TrunkStatus
	Node string `json:"node,omitempty"`
}

// mergeQueues merges the nodes' inbound queues by campaign: callers on hold are
// the node's that runs the queue (the most any node has, so none is counted
// twice while a campaign moves), aged by the database's clock since they were
// published; today's figures, read from the database, are every node's.
func mergeQueues(parts []livePart) []dialer.InboundQueue {
	byID := map[int64]*dialer.InboundQueue{}
	var order []int64
	for _, p := range parts {
		for _, q := range p.Queues {
			if q.Waiting > 0 {
				q.LongestWaitingSeconds += p.age.Seconds()
				q.LongestWaitSeconds = max(q.LongestWaitSeconds, q.LongestWaitingSeconds)
			}
			m, ok := byID[q.CampaignID]
			if !ok {
				c := q
				byID[q.CampaignID], order = &c, append(order, q.CampaignID)
				continue
			}
			if q.Waiting > m.Waiting {
				m.Waiting, m.LongestWaitingSeconds = q.Waiting, q.LongestWaitingSeconds
			}
			m.Answered, m.Abandoned = max(m.Answered, q.Answered), max(m.Abandoned, q.Abandoned)
			m.LongestWaitSeconds = max(m.LongestWaitSeconds, q.LongestWaitSeconds)
			m.CampaignName = cmp.Or(m.CampaignName, q.CampaignName)
		}
	}
	slices.Sort(order)
	out := make([]dialer.InboundQueue, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}

// mergeFailovers shows each trunk's death once, though every node's stack saw
// it: down while any node finds it down, since the first of them did.
func mergeFailovers(parts []livePart) []WallboardFailover {
	byTrunk := map[string]WallboardFailover{}
	for _, p := range parts {
		for _, f := range p.Failovers {
			cur, ok := byTrunk[f.Trunk]
			down, curDown := f.RecoveredAt == nil, ok && cur.RecoveredAt == nil
			switch {
			case !ok,
				down && !curDown,
				down == curDown && f.DownSince.Before(cur.DownSince):
				byTrunk[f.Trunk] = f
			}
		}
	}
	out := make([]WallboardFailover, 0, len(byTrunk))
	for _, f := range byTrunk {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b WallboardFailover) int {
		return cmp.Or(a.DownSince.Compare(b.DownSince), cmp.Compare(a.Trunk, b.Trunk))
	})
	return out
}

// runsHere says whether this node's figures of campaign c are the ones to
// export: when it shares with other nodes, only the node holding c's live
// lease exports them (or, while no node holds one, every node that runs c),
// so that Prometheus, scraping every node, counts each campaign once.
func (s *Server) runsHere(ctx context.Context) (func(c int64) bool, error) {
	opts, ok := s.ui.wall.cluster.sharing()
	if !ok {
		return func(int64) bool { return true }, nil
	}
	holder, err := liveHolders(ctx, s.store)
	if err != nil {
		return nil, err
	}
	return func(c int64) bool {
		h, ok := holder[c]
		return !ok || h == opts.Node
	}, nil
}
