package dialer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestLockedDatabaseKeepsWrapUpTimeout: another process holds the write lock while
// a connected call ends and the agent's wrap-up runs out. The outcome and the
// wrap_up_timeout disposition the database refuses are both kept, and written in
// that order once it lets go.
func TestLockedDatabaseKeepsWrapUpTimeout(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	path := filepath.Join(t.TempDir(), "turbina.db")
	h := newHarnessOn(t, path, storage.Options{BusyTimeout: 100 * time.Millisecond},
		sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.WrapUp = campaigns.Duration(5 * time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.setState(c.ID, campaigns.StateRunning)
	ids := h.readyAgents(c.ID, 1)
	h.waitAgents(ids, AgentOnCall, 15*time.Second)

	release := lockWrites(t, path)
	if err := h.engine.Hangup(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	h.waitAgents(ids, AgentWrapUp, 10*time.Second)
	// The wrap-up runs out while the lock is still held: the agent is free again,
	// and both writes wait.
	h.waitAgents(ids, AgentReady, 15*time.Second)
	if v := gaugeValue(h.engine.metrics.unrecorded); v != 2 {
		t.Fatalf("%v writes waiting after the wrap-up ran out in a locked database, want 2 (outcome and disposition)", v)
	}
	release()
	list := h.waitContacts(c.ID, 15*time.Second, func(ct campaigns.Contact) bool { return ct.Status != campaigns.ContactInProgress })
	for deadline := time.Now().Add(10 * time.Second); gaugeValue(h.engine.metrics.unrecorded) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v writes still waiting after the lock went", gaugeValue(h.engine.metrics.unrecorded))
		}
	}
	as := h.attempts(list[0].ID)
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeConnected) || as[0].Disposition != "wrap_up_timeout" {
		t.Fatalf("attempts %+v, want one connected call disposed wrap_up_timeout", as)
	}
	carrier.Wait(t, 10*time.Second)
}
