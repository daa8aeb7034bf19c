package dialer

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestLockedDatabaseLosesNoOutcomeNorDisposition: another process holds SQLite's
// write lock (a backup tool, a stuck script) while connected calls end. The
// outcomes the database refuses are kept and written once it lets go, so no
// contact stays in progress until a restart; an agent's disposition it refuses is
// a clear error that leaves the agent in wrap-up to try again.
func TestLockedDatabaseLosesNoOutcomeNorDisposition(t *testing.T) {
	const n = 3
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: n})
	path := filepath.Join(t.TempDir(), "turbina.db")
	h := newHarnessOn(t, path, storage.Options{BusyTimeout: 100 * time.Millisecond},
		sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{})
	c := h.campaign(n, campaigns.PacingProgressive, sipOnlyLadder(1))
	ids := h.readyAgents(c.ID, n)
	h.waitAgents(ids, AgentOnCall, 15*time.Second)

	release := lockWrites(t, path)
	ctx := context.Background()
	for _, id := range ids {
		if err := h.engine.Hangup(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	h.waitAgents(ids, AgentWrapUp, 10*time.Second)
	for deadline := time.Now().Add(10 * time.Second); gaugeValue(h.engine.metrics.unrecorded) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v outcomes waiting to be written, want %d", gaugeValue(h.engine.metrics.unrecorded), n)
		}
	}
	// Readers still see the database: the contacts are in progress, not lost.
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range list {
		if ct.Status != campaigns.ContactInProgress {
			t.Errorf("contact %s is %s while its outcome waits, want in progress", ct.Phone, ct.Status)
		}
	}
	err = h.engine.Disposition(ctx, ids[0], Close{Code: "sale"})
	if !storage.IsUnavailable(err) {
		t.Fatalf("disposition into a locked database: %v, want the database's refusal", err)
	}
	if a, _ := h.engine.Agents().Get(ids[0]); a.State != AgentWrapUp {
		t.Fatalf("agent after a refused disposition: %s, want still in wrap-up", a.State)
	}

	release()
	list = h.waitContacts(c.ID, 15*time.Second, func(ct campaigns.Contact) bool { return ct.Status != campaigns.ContactInProgress })
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeConnected) || as[0].EndAt == nil || as[0].HangupBy != "agent" {
			t.Errorf("contact %s (%s): attempts %+v, want one connected call ended by the agent", ct.Phone, ct.Status, as)
		}
	}
	if v := gaugeValue(h.engine.metrics.unrecorded); v != 0 {
		t.Errorf("%v outcomes still waiting after the lock went", v)
	}
	for _, id := range ids {
		if err := h.engine.Disposition(ctx, id, Close{Code: "sale"}); err != nil {
			t.Fatalf("disposition once the database is back: %v", err)
		}
	}
	for _, ct := range list {
		if d := h.attempts(ct.ID)[0].Disposition; d != "sale" {
			t.Errorf("contact %s disposition %q, want sale", ct.Phone, d)
		}
	}
	if err := h.store.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	carrier.Wait(t, 10*time.Second)
}

// lockWrites takes SQLite's write lock on the database at path from a connection
// of its own, as another process would, and returns what lets it go.
func lockWrites(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
				t.Errorf("release the write lock: %v", err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

// waitAgents waits until every agent of ids is in state.
func (h *harness) waitAgents(ids []int64, state AgentState, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var states []string
		all := true
		for _, id := range ids {
			a, _ := h.engine.Agents().Get(id)
			states = append(states, string(a.State))
			all = all && a.State == state
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("agents %s, want all %s within %s", strings.Join(states, ", "), state, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
