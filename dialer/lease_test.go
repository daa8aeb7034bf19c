package dialer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/cluster"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/pgtest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// counter reads a counter of the engine's metrics.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestSecondProcessOnTheFileFencesTheFirst: on SQLite a starting node is the
// only one: it takes the running campaign at once (no lease TTL to wait),
// records the call the other process still has up as interrupted, and that
// process, whose lease's epoch is no longer current, writes nothing more for
// the campaign: its next write is refused and its run stops.
func TestSecondProcessOnTheFileFencesTheFirst(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	trunk := sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}
	path := filepath.Join(t.TempDir(), "turbina.db")
	h := newHarnessOn(t, path, storage.Options{}, trunk, Config{})
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(3))
	agent := h.agents(c.ID, 1, time.Hour)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	h.waitOnCall(ctx, agent, "the call")
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	contact := list[0].ID

	// A second process on the same file, with no agent: it dials nothing.
	second := newHarnessOn(t, path, storage.Options{}, trunk, Config{})
	h.waitAttemptsWhere(ctx, contact, "the call recorded interrupted by the new process", func(as []storage.Attempt) bool {
		return len(as) == 1 && as[0].Outcome == string(campaigns.OutcomeInterrupted)
	})
	if st := second.engine.Cluster(); len(st.Campaigns) != 1 || st.Campaigns[0] != c.ID {
		t.Fatalf("the new process runs %v, want campaign %d", st.Campaigns, c.ID)
	}

	// The first process's agent hangs up: the run's write of the call's end is
	// refused, and the run stops.
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	for len(h.engine.Cluster().Campaigns) != 0 {
		if ctx.Err() != nil {
			t.Fatalf("the first process still runs %v after its write was fenced", h.engine.Cluster().Campaigns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := counter(t, h.engine.metrics.fenced); n < 1 {
		t.Errorf("%v fenced writes counted, want the call's end", n)
	}
	if n := counter(t, h.engine.metrics.leasesLost); n != 1 {
		t.Errorf("%v leases lost counted, want 1", n)
	}
	as := h.attempts(contact)
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeInterrupted) {
		t.Errorf("attempts %+v: the fenced process changed the call's record", as)
	}
	if n := counter(t, second.engine.metrics.handovers); n != 1 {
		t.Errorf("the new process counted %v hand-overs, want 1", n)
	}
}

// waitCluster waits until the engine's cluster status is what ok says.
func waitCluster(t *testing.T, e *Engine, within time.Duration, want string, ok func(ClusterStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for st := e.Cluster(); !ok(st); st = e.Cluster() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %+v, want %s", within, st, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flush writes what the PostgreSQL server at dsn committed to disk.
func flush(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CHECKPOINT"); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
}

// TestNodeCutOffFromItsDatabaseLosesItsCampaigns: a node on PostgreSQL whose
// database goes away cannot renew its leases: once a lease TTL has passed it is
// not ready (/readyz) and has stopped its runs, since another node may take
// them; when the database is back it takes its campaign again.
func TestNodeCutOffFromItsDatabaseLosesItsCampaigns(t *testing.T) {
	srv := pgtest.Own(t)
	ctx := context.Background()
	dsn := srv.Database(t, "")
	store, err := storage.Open(ctx, dsn, storage.Options{TokenKey: []byte(strings.Repeat("k", storage.MinTokenKeyLen))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	const ttl = time.Second
	e := New(store, nil, NewAgents(), Config{Tick: 50 * time.Millisecond, Sync: 100 * time.Millisecond,
		Cluster: Cluster{Shared: true, LeaseTTL: ttl, RenewEvery: ttl / 4}}, slog.New(slog.DiscardHandler))
	h := &harness{t: t, store: store, engine: e}
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	runs := func(st ClusterStatus) bool { return st.Err == nil && slices.Equal(st.Campaigns, []int64{c.ID}) }
	waitCluster(t, e, 10*time.Second, "the campaign run, ready", runs)

	// The test server commits asynchronously: what was committed last (the
	// campaign's start) is on disk before the kill, or the kill may undo it.
	flush(t, dsn)
	killed := time.Now()
	srv.Kill()
	waitCluster(t, e, 10*time.Second, "not ready, no campaign run", func(st ClusterStatus) bool {
		return st.Err != nil && len(st.Campaigns) == 0
	})
	if n := counter(t, e.metrics.renewFailures); n < 1 {
		t.Errorf("%v renew failures counted", n)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitCluster(t, e, 30*time.Second, "the campaign run again, ready", runs)
	// The test server commits asynchronously, so its kill may lose the first
	// taking: the lease is a new one whatever its epoch.
	leases, err := store.Leases(ctx)
	if err != nil || len(leases) != 1 || leases[0].NodeID != e.NodeID() || leases[0].Acquired.Before(killed) {
		t.Errorf("leases %+v, %v; want this node's, taken again after the database came back", leases, err)
	}
}

// pgNode starts an engine as node id on the PostgreSQL database dsn, with a
// lease TTL of ttl, placing SIP calls through sipCfg's trunks.
func pgNode(t *testing.T, dsn, id string, ttl time.Duration, sipCfg sip.Config) *harness {
	t.Helper()
	return newHarnessLogging(t, dsn, storage.Options{TokenKey: []byte(strings.Repeat("k", storage.MinTokenKeyLen))}, sipCfg,
		Config{Cluster: Cluster{Shared: true, LeaseTTL: ttl, RenewEvery: ttl / 4, Node: storage.Node{ID: id}}}, slog.New(slog.DiscardHandler))
}

// noCalls is the SIP configuration of a node whose campaigns have no agent:
// it places no call, so its trunk points at a loopback port nobody answers.
func noCalls() sip.Config {
	return sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: "127.0.0.1:9", KeepaliveInterval: sip.KeepaliveEvery(0)}}}
}

// nodeIDs returns two node IDs of which the spread gives campaign 1 to the
// one at index owner while both are live.
func nodeIDs(owner int) []string {
	ids := []string{"a", "b"}
	for i := 0; cluster.Owner(1, ids) != ids[owner]; i++ {
		ids = []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)}
	}
	return ids
}

// runs and runsNone are waitCluster's conditions: the node runs exactly
// campaigns, or none.
func runs(campaigns ...int64) func(ClusterStatus) bool {
	return func(st ClusterStatus) bool { return slices.Equal(st.Campaigns, campaigns) }
}

func runsNone(st ClusterStatus) bool { return len(st.Campaigns) == 0 }

// TestDrainingNodeHandsItsCampaignOver: a node that drains while it runs a
// campaign with nothing under way there ends that run and releases its lease
// at once, and the other node, leaving the draining one (still live) out of
// the spread, takes the campaign within a couple of syncs, long before the
// draining process exits.
func TestDrainingNodeHandsItsCampaignOver(t *testing.T) {
	srv := pgtest.Own(t)
	ctx := context.Background()
	dsn := srv.Database(t, "")
	const ttl = 2 * time.Second
	ids := nodeIDs(0)
	h := pgNode(t, dsn, ids[0], ttl, noCalls())
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	a := h.engine
	waitCluster(t, a, 10*time.Second, "a runs the campaign", runs(c.ID))
	b := pgNode(t, dsn, ids[1], ttl, noCalls()).engine
	waitLive(t, h.store, ttl, 2)
	waitCluster(t, b, 10*time.Second, "b runs nothing while a is live", runsNone)

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Drain(dctx); err != nil {
		t.Fatalf("Drain with no call: %v", err)
	}
	waitCluster(t, b, ttl, "b runs the campaign a drains, within a lease TTL", runs(c.ID))
	waitCluster(t, a, time.Second, "a runs nothing", runsNone)
	live, err := h.store.LiveNodes(ctx, ttl)
	if err != nil || len(live) != 2 || !live[0].Draining || live[1].Draining {
		t.Errorf("live nodes %+v, %v; want a draining and b, both live", live, err)
	}
	if n := counter(t, b.metrics.handovers); n != 1 {
		t.Errorf("b counted %v hand-overs, want 1", n)
	}
}

// waitLive waits until n nodes are live on store.
func waitLive(t *testing.T, store *storage.DB, ttl time.Duration, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, err := store.LiveNodes(context.Background(), ttl)
		if err == nil && len(live) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("live nodes %+v, %v; want %d", live, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeJoiningLeavesRunningCampaignsAlone: a node joining a cluster
// takes no campaign that runs, even one the hash gives it: the holder keeps
// its lease (same epoch) and goes on dialling, here its second contact once
// its agent is free again.
func TestNodeJoiningLeavesRunningCampaignsAlone(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 2})
	trunk := sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}
	dsn := pgtest.Own(t).Database(t, "")
	const ttl = 2 * time.Second
	ids := nodeIDs(1) // the joiner is the hash's choice for the campaign
	a := pgNode(t, dsn, ids[0], ttl, trunk)
	c := a.campaign(2, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := a.agents(c.ID, 1, time.Hour)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a.waitOnCall(ctx, agent, "the first call")
	before, err := a.store.Leases(ctx)
	if err != nil || len(before) != 1 || before[0].NodeID != ids[0] {
		t.Fatalf("leases %+v, %v; want a's", before, err)
	}

	b := pgNode(t, dsn, ids[1], ttl, trunk)
	waitLive(t, a.store, ttl, 2)
	// Ten of a's syncs with b live: before leases were sticky, the first one
	// stopped a's dialling for b.
	time.Sleep(10 * a.engine.cfg.Sync)
	if err := a.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	list, _, err := a.store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	for _, ct := range list {
		a.waitAttemptsWhere(ctx, ct.ID, "a call to each contact, by a", func(as []storage.Attempt) bool { return len(as) == 1 })
	}
	a.waitOnCall(ctx, agent, "the second call")
	if st := b.engine.Cluster(); len(st.Campaigns) != 0 {
		t.Errorf("the joiner runs %v", st.Campaigns)
	}
	after, err := a.store.Leases(ctx)
	if err != nil || len(after) != 1 || after[0].NodeID != ids[0] || after[0].Epoch != before[0].Epoch {
		t.Errorf("leases %+v, %v; want a's, epoch %d as before b joined", after, err, before[0].Epoch)
	}
}

// TestClearImbalanceEvensOut: a node holding four idle campaigns when a second
// joins holds more than its share plus one (2+1): it hands one over, one only,
// and the joiner takes it.
func TestClearImbalanceEvensOut(t *testing.T) {
	dsn := pgtest.Own(t).Database(t, "")
	const ttl = 2 * time.Second
	a := pgNode(t, dsn, "a", ttl, noCalls())
	var cs []int64
	for range 4 {
		cs = append(cs, a.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1)).ID)
	}
	waitCluster(t, a.engine, 10*time.Second, "a runs the four campaigns", runs(cs...))
	b := pgNode(t, dsn, "b", ttl, noCalls())
	waitCluster(t, b.engine, 10*time.Second, "b runs one campaign", func(st ClusterStatus) bool { return len(st.Campaigns) == 1 })
	waitCluster(t, a.engine, time.Second, "a runs the three others", func(st ClusterStatus) bool {
		return len(st.Campaigns) == 3 && !slices.Contains(st.Campaigns, b.engine.Cluster().Campaigns[0])
	})
	// Three and one is within the slack: nothing more moves.
	time.Sleep(10 * a.engine.cfg.Sync)
	if n := counter(t, b.engine.metrics.handovers); n != 1 {
		t.Errorf("b counted %v hand-overs, want 1", n)
	}
	if st := a.engine.Cluster(); len(st.Campaigns) != 3 {
		t.Errorf("a runs %v, want three campaigns", st.Campaigns)
	}
}

// TestWrapUpFollowsTheCampaign: an agent in wrap-up when its campaign's run
// ends on one node (its process stopped before the agent gave the
// disposition) gets the wrap-up back on the node that takes the campaign
// over, once logged in there (as the page does when it follows the
// campaign): in wrap-up for that call, its screen-pop shown, and the
// disposition given there is recorded, once.
func TestWrapUpFollowsTheCampaign(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	trunk := sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}
	dsn := pgtest.Own(t).Database(t, "")
	const ttl = 2 * time.Second
	a := pgNode(t, dsn, "a", ttl, trunk)
	c := a.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := a.readyAgents(c.ID, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a.waitOnCall(ctx, agent, "the call")
	if err := a.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	for st, _ := a.engine.Agents().Get(agent); st.State != AgentWrapUp; st, _ = a.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatalf("the agent is %s on a, want in wrap-up", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	call, _ := a.engine.Agents().Get(agent)
	b := pgNode(t, dsn, "b", ttl, noCalls())
	waitLive(t, a.store, ttl, 2)
	a.stop() // a's run ends with the wrap-up open; its lease is released
	waitCluster(t, b.engine, 10*time.Second, "b runs the campaign", runs(c.ID))

	events, unsubscribe := b.engine.Subscribe(agent)
	defer unsubscribe()
	b.engine.Agents().Login(agent, call.Name, []int64{c.ID}, time.Now())
	var pop *ScreenPop
	for pop == nil {
		select {
		case ev := <-events:
			if ev.Kind == EventScreenPop {
				pop = ev.ScreenPop
			}
		case <-ctx.Done():
			st, _ := b.engine.Agents().Get(agent)
			t.Fatalf("no screen-pop on b; the agent is %s there", st.State)
		}
	}
	if st, _ := b.engine.Agents().Get(agent); st.State != AgentWrapUp || st.AttemptID != call.AttemptID || pop.AttemptID != call.AttemptID {
		t.Fatalf("on b the agent is %s after call %d, its screen-pop of call %d; want in wrap-up after call %d", st.State, st.AttemptID, pop.AttemptID, call.AttemptID)
	}
	if len(pop.Dispositions) == 0 || pop.Contact.ID == 0 {
		t.Errorf("screen-pop %+v: want the contact and the campaign's dispositions", pop)
	}
	if err := b.engine.Disposition(ctx, agent, Close{Code: "sale"}); err != nil {
		t.Fatalf("the disposition on b: %v", err)
	}
	if at, err := b.store.GetAttempt(ctx, call.AttemptID); err != nil || at.Disposition != "sale" {
		t.Errorf("attempt %+v, %v; want the disposition sale", at, err)
	}
	if err := b.store.Dispose(ctx, call.AttemptID, "no_interest", "", nil); !errors.Is(err, storage.ErrDisposed) {
		t.Errorf("a second disposition: %v, want ErrDisposed", err)
	}
	if st, _ := b.engine.Agents().Get(agent); st.State != AgentReady {
		t.Errorf("the agent is %s on b after its disposition, want ready", st.State)
	}
}
