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

// checkInterrupted checks a contact whose only attempt a stop cut short: the attempt
// is interrupted, it counts, and the contact is not due before the rung's delay.
func checkInterrupted(t *testing.T, store *storage.DB, contactID int64, stoppedAt time.Time, delay time.Duration) {
	t.Helper()
	ctx := context.Background()
	as, err := store.ListAttempts(ctx, contactID)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeInterrupted) || as[0].State != "ended" {
		t.Fatalf("attempts %+v, want one, ended interrupted", as)
	}
	pos, err := store.ContactPosition(ctx, contactID)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Contact.Status != campaigns.ContactPending || pos.Rung != 0 || pos.RungAttempts != 1 {
		t.Errorf("contact %s on rung %d with %d attempts, want pending on rung 0 with its 1 attempt kept", pos.Contact.Status, pos.Rung, pos.RungAttempts)
	}
	if earliest := stoppedAt.Add(delay).Truncate(time.Millisecond); pos.NextAttemptAt.Before(earliest) {
		t.Errorf("contact due at %s, want no sooner than the stop + the rung's %s: %s", pos.NextAttemptAt, delay, earliest)
	}
	if due, err := store.DueContacts(ctx, pos.Contact.CampaignID, []int{0}, time.Now().Add(delay/2), 10); err != nil || len(due) != 0 {
		t.Errorf("due before the rung's delay: %+v, %v", due, err)
	}
}

// TestStopInterruptsACallAsAnAttempt: a call connected to an agent when the engine
// stops is recorded interrupted, uses up its attempt and waits the rung's delay.
func TestStopInterruptsACallAsAnAttempt(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	ladder := sipOnlyLadder(3)
	c := h.campaign(1, campaigns.PacingProgressive, ladder)
	agent := h.agents(c.ID, 1, time.Minute)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	h.waitOnCall(ctx, agent, "the call")
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	h.waitAttemptsWhere(ctx, list[0].ID, "one connected", func(as []storage.Attempt) bool {
		return len(as) == 1 && as[0].State == "connected"
	})
	stoppedAt := time.Now()
	h.stop()
	checkInterrupted(t, h.store, list[0].ID, stoppedAt, time.Duration(ladder[0].RetryDelay))
}

// TestRestartRecoversOpenAttemptsAsAttempts: attempts a crash left open in the
// database are closed at the next start as interrupted attempts that count; a
// contact put on the do-not-call list stays there; an interrupted template send is
// tried again at once under the same idempotency key.
func TestRestartRecoversOpenAttemptsAsAttempts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "turbina.db")
	ctx := context.Background()
	store, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed := &harness{t: t, store: store}
	ladder := sipOnlyLadder(2)
	calls := seed.draft(2, campaigns.PacingProgressive, ladder)
	templates := seed.draft(1, campaigns.PacingProgressive, []campaigns.Rung{{Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1,
		RetryDelay: campaigns.Duration(time.Hour), Template: "lembrete", Language: "pt_BR"}})
	open := func(campaignID int64, ch campaigns.Channel, state string) (storage.Attempt, int) {
		t.Helper()
		list, _, err := store.ListContacts(ctx, campaignID, storage.ContactFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var a storage.Attempt
		for _, ct := range list {
			if ct.Status == campaigns.ContactPending {
				if a, err = store.StartAttempt(ctx, ct.ID, ch, 0); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		now := time.Now()
		a.State, a.AnswerAt = state, &now
		if err := store.UpdateAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		ord, err := store.AttemptOrdinal(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return a, ord
	}
	talking, _ := open(calls.ID, campaigns.ChannelSIP, "connected")
	dnc, _ := open(calls.ID, campaigns.ChannelSIP, "ringing")
	sending, sendOrdinal := open(templates.ID, campaigns.ChannelWhatsAppTemplate, "dialing")
	dncPhone, err := store.ContactPosition(ctx, dnc.ContactID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddDNC(ctx, tester, 0, []string{dncPhone.Contact.Phone}, "asked during the call"); err != nil {
		t.Fatal(err)
	}
	store.Close()

	// The "crash": the process is gone with the attempts open; a new engine starts.
	crashedAt := time.Now()
	// No campaign runs: the trunk is never dialled.
	h := newHarnessOn(t, path, storage.Options{}, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: "127.0.0.1:9"}}}, Config{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, err := h.store.OpenAttempts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempts still open after the start: %+v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkInterrupted(t, h.store, talking.ContactID, crashedAt, time.Duration(ladder[0].RetryDelay))

	if pos, err := h.store.ContactPosition(ctx, dnc.ContactID); err != nil || pos.Contact.Status != campaigns.ContactDoNotCall {
		t.Errorf("contact put on the do-not-call list mid-call: %+v, %v; want do_not_call", pos, err)
	}

	pos, err := h.store.ContactPosition(ctx, sending.ContactID)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Contact.Status != campaigns.ContactPending || pos.RungAttempts != 0 || pos.NextAttemptAt.After(time.Now()) {
		t.Errorf("interrupted template send: %s, %d attempts, due %s; want pending, free, due now", pos.Contact.Status, pos.RungAttempts, pos.NextAttemptAt)
	}
	again, err := h.store.StartAttempt(ctx, sending.ContactID, campaigns.ChannelWhatsAppTemplate, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ord, err := h.store.AttemptOrdinal(ctx, again); err != nil || ord != sendOrdinal {
		t.Errorf("the send tried again has ordinal %d (%v), want %d: the same idempotency key", ord, err, sendOrdinal)
	}
}
