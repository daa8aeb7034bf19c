package dialer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
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
