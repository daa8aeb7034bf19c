package dialer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestTemplateLeftByACrashIsSentOnlyIfTheGateAllowsItNow: a template a crash left
// claimed before its request left goes back to its contact's rung, and is sent
// again under its key only when the policy gate, asked again at the new start,
// allows it then: a number put on the do-not-call list or opted out while the
// server was down gets nothing, and its row is recorded not sent (not left
// pending for ever); a contact whose campaign's hours are closed now waits for
// them, its row pending; one allowed gets the template once.
func TestTemplateLeftByACrashIsSentOnlyIfTheGateAllowsItNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "turbina.db")
	ctx := context.Background()
	store, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The closed campaign's window is half a day from now, whatever the hour.
	start := campaigns.ClockTime(min((time.Now().UTC().Hour()*60+12*60)%(24*60), 24*60-10))
	open := templateCampaign(t, store, campaigns.Window{Start: 0, End: 24*60 - 1}, "+5511987650100", "+5511987650101", "+5511987650102")
	closed := templateCampaign(t, store, campaigns.Window{Start: start, End: start + 5}, "+5511987650103")
	// The crashed process's part: each contact's template attempt started and its
	// row claimed, its request not started.
	type left struct {
		contact campaigns.Contact
		key     string
	}
	var rows []left
	for _, c := range []campaigns.Campaign{open, closed} {
		list, _, err := store.ListContacts(ctx, c.ID, storage.ContactFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range list {
			a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppTemplate, 0)
			if err != nil {
				t.Fatal(err)
			}
			ord, err := store.AttemptOrdinal(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("contact-%d-attempt-%d", ct.ID, ord)
			if _, _, err := store.Enqueue(ctx, storage.OutboxKindTemplate, key, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			if ok, err := store.ClaimKey(ctx, key); err != nil || !ok {
				t.Fatalf("claim %s: %t, %v", key, ok, err)
			}
			rows = append(rows, left{ct, key})
		}
		if _, err := store.UpdateCampaign(ctx, tester, c.ID, "test", func(c *campaigns.Campaign) error {
			c.State = campaigns.StateRunning
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	dnc, optedOut, allowed, outside := rows[0], rows[1], rows[2], rows[3]
	// While the server was down.
	if _, err := store.AddDNC(ctx, tester, 0, []string{dnc.contact.Phone}, "asked by phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OptOut(ctx, tester, []string{optedOut.contact.Phone}, "email"); err != nil {
		t.Fatal(err)
	}
	store.Close()

	h := newWhatsAppHarnessOn(t, path, sip.Config{Trunks: []sip.TrunkConfig{{Name: "t", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}}},
		func(o *sip.Originator) channel.Channel { return sipchannel.New(o) }, Config{InDoubtReportAfter: 400 * time.Millisecond})
	h.waitContacts(open.ID, 15*time.Second, func(ct campaigns.Contact) bool {
		return ct.Status != campaigns.ContactPending && ct.Status != campaigns.ContactInProgress
	})
	_, byKey := h.emu.MessageCounts()
	for _, r := range rows {
		want := 0
		if r.key == allowed.key {
			want = 1
		}
		if byKey[r.key] != want {
			t.Errorf("contact %s: %d templates under %s, want %d", r.contact.Phone, byKey[r.key], r.key, want)
		}
	}
	for _, r := range []left{dnc, optedOut} {
		// Swept on the in-doubt report's clock (every 100 ms here).
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			m, err := h.store.OutboxByKey(ctx, r.key)
			if err != nil {
				t.Fatal(err)
			}
			if m.State == storage.OutboxFailed && strings.Contains(m.LastError, "not sent: its contact was closed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("row of %s, refused for good: %s (%s), want recorded not sent, naming why", r.contact.Phone, m.State, m.LastError)
			}
		}
	}
	if m, err := h.store.OutboxByKey(ctx, allowed.key); err != nil || m.State != storage.OutboxSent {
		t.Errorf("row of the allowed contact: %+v, %v; want sent", m, err)
	}
	if m, err := h.store.OutboxByKey(ctx, outside.key); err != nil || m.State != storage.OutboxPending {
		t.Errorf("row of the contact outside its hours: %+v, %v; want pending, for when they open", m, err)
	}
	if as := h.attempts(outside.contact.ID); slices.ContainsFunc(as, func(a storage.Attempt) bool {
		return a.State != "ended" || a.Outcome != string(campaigns.OutcomeInterrupted)
	}) {
		t.Errorf("attempts of the contact outside its hours: %+v, want only the interrupted one", as)
	}
}

// templateCampaign creates a draft campaign open in window whose one rung sends
// the emulator's lembrete template to phones.
func templateCampaign(t *testing.T, store *storage.DB, window campaigns.Window, phones ...string) campaigns.Campaign {
	t.Helper()
	ctx := context.Background()
	c := campaigns.Campaign{Name: "templates", CallerID: "+551130000000", Window: window, Ladder: []campaigns.Rung{{
		Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1, RetryDelay: campaigns.Duration(time.Hour),
		Template: "lembrete", Language: "pt_BR", Params: []string{"name", "plano"}}}}
	c.ApplyDefaults()
	c.Pacing.Mode = campaigns.PacingProgressive
	if err := store.CreateCampaign(ctx, tester, &c); err != nil {
		t.Fatal(err)
	}
	b, err := store.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, phone := range phones {
		if _, err := b.Add(ctx, campaigns.Contact{Phone: phone, Name: "Ana", Timezone: "UTC", Line: i + 2,
			Attributes: map[string]string{"plano": "ouro"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOutboxKeyNamesItsContact: the contact of a placement's key is read back,
// and a key of another shape (an agent's Idempotency-Key) names none.
func TestOutboxKeyNamesItsContact(t *testing.T) {
	for _, tt := range []struct {
		key string
		id  int64
		ok  bool
	}{
		{outboxKey(42, 0), 42, true},
		{outboxKey(7, 3), 7, true},
		{"agent-5-c1b2", 0, false},
		{"contact-9-attempt-1-x", 0, false},
		{"contact-9", 0, false},
	} {
		if id, ok := keyContact(tt.key); id != tt.id || ok != tt.ok {
			t.Errorf("keyContact(%q) = %d, %t; want %d, %t", tt.key, id, ok, tt.id, tt.ok)
		}
	}
}
