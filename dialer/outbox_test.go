package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/internal/watest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestAgentSendOnceAcrossARestart: an agent's send with an Idempotency-Key goes
// through the outbox, so the same key after a restart (a new engine and client,
// nothing in memory) returns the first message and sends nothing; a new key
// sends anew.
func TestAgentSendOnceAcrossARestart(t *testing.T) {
	h := newWhatsAppHarness(t)
	ctx := context.Background()
	c := h.campaignWith(map[string]string{"+5511987653001": "Ouro"})
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts: %v %v", list, err)
	}
	ct := list[0]
	first, err := h.engine.SendWhatsApp(ctx, ct.ID, "", "retry-me")
	if err != nil || first.WAID == "" {
		t.Fatalf("first send: %+v %v", first, err)
	}
	restarted, err := whatsapp.NewClient(whatsapp.Config{BaseURL: h.emu.URL(), AccessToken: watest.Token, PhoneNumberID: "1000", WABAID: "2000"})
	if err != nil {
		t.Fatal(err)
	}
	e2 := New(h.store, nil, NewAgents(), Config{WhatsApp: restarted}, slog.New(slog.DiscardHandler))
	if err := e2.join(ctx); err != nil { // what its Run does first
		t.Fatal(err)
	}
	again, err := e2.SendWhatsApp(ctx, ct.ID, "", "retry-me")
	if err != nil || again.WAID != first.WAID {
		t.Errorf("retry after a restart: %+v %v; want the first message %s", again, err, first.WAID)
	}
	key := fmt.Sprintf("agent-contact-%d-retry-me", ct.ID)
	if _, byKey := h.emu.MessageCounts(); byKey[key] != 1 {
		t.Errorf("WhatsApp got the keyed send %d times, want 1", byKey[key])
	}
	other, err := e2.SendWhatsApp(ctx, ct.ID, "", "another")
	if err != nil || other.WAID == "" || other.WAID == first.WAID {
		t.Errorf("a new key: %+v %v", other, err)
	}
}

// TestInDoubtReportedToSupervisors: a message still in doubt after the wait is
// reported once (logged, counted) and stays in doubt; one settled meanwhile, or
// in doubt for less than the wait, is not reported.
func TestInDoubtReportedToSupervisors(t *testing.T) {
	ctx := context.Background()
	store := storetest.Open(t)
	h := struct{ store *storage.DB }{store}
	now := time.Now()
	e := New(h.store, nil, NewAgents(), Config{InDoubtReportAfter: time.Minute, Now: func() time.Time { return now }}, slog.New(slog.DiscardHandler))
	doubt := func(key string) {
		t.Helper()
		id, _, err := h.store.Enqueue(ctx, "whatsapp.template", key, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.ClaimKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := h.store.MarkRequestStarted(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := h.store.MarkInDoubt(ctx, id, errors.New("connection reset")); err != nil {
			t.Fatal(err)
		}
	}
	doubt("unsettled")
	doubt("settled")
	if _, err := h.store.SettleByKey(ctx, "settled", "wamid.S"); err != nil {
		t.Fatal(err)
	}
	if err := e.reportInDoubtOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := reported(t, e); n != 0 {
		t.Fatalf("%v reported before the wait", n)
	}
	now = now.Add(2 * time.Minute)
	for range 2 {
		if err := e.reportInDoubtOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := reported(t, e); n != 1 {
		t.Errorf("%v reported, want the one unsettled message once", n)
	}
	if m, _ := h.store.OutboxByKey(ctx, "unsettled"); m.State != storage.OutboxInDoubt {
		t.Errorf("reported message is %s: the wait must not close it", m.State)
	}
}

// reported reads the engine's count of messages reported in doubt.
func reported(t *testing.T, e *Engine) float64 {
	t.Helper()
	var m dto.Metric
	if err := e.metrics.inDoubtReported.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
