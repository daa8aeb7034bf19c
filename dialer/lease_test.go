package dialer

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/campaigns"
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

// TestNodeCutOffFromItsDatabaseLosesItsCampaigns: a node on PostgreSQL whose
// database goes away cannot renew its leases: once a lease TTL has passed it is
// not ready (/readyz) and has stopped its runs, since another node may take
// them; when the database is back it takes its campaign again.
func TestNodeCutOffFromItsDatabaseLosesItsCampaigns(t *testing.T) {
	srv := pgtest.Own(t)
	ctx := context.Background()
	store, err := storage.Open(ctx, srv.Database(t, ""), storage.Options{TokenKey: []byte(strings.Repeat("k", storage.MinTokenKeyLen))})
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
