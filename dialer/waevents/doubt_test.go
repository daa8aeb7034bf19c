package waevents

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/waoutbox"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// keptEvent reads a kept webhook event's bookkeeping from the database file
// itself: whether it was applied (or given up) and how often it was deferred.
func keptEvent(t *testing.T, path, key string) (applied bool, tries int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var processed sql.NullInt64
	if err := db.QueryRow("SELECT processed_at, tries FROM webhook_events WHERE event_key = ?", key).Scan(&processed, &tries); err != nil {
		t.Fatalf("kept event %s: %v", key, err)
	}
	return processed.Valid, tries
}

// statusEvent is a message status webhook event of our send under key.
func statusEvent(key, wamid, status string, at time.Time) whatsapp.Event {
	return whatsapp.Event{Key: "status-" + status + "-" + key, Type: whatsapp.EventMessageStatus, Time: at,
		Status: &whatsapp.MessageStatus{ID: wamid, Status: status, BizOpaque: key}}
}

// attemptOutcome is the outcome of the contact's only attempt.
func attemptOutcome(t *testing.T, store *storage.DB, contactID int64) string {
	t.Helper()
	as, err := store.ListAttempts(context.Background(), contactID)
	if err != nil || len(as) != 1 {
		t.Fatalf("attempts of contact %d: %+v, %v", contactID, as, err)
	}
	return as[0].Outcome
}

// TestStatusOvertakingItsSendIsDeferred: WhatsApp's delivered and read statuses
// of a template arrive before the run recorded the send's wamid on the attempt
// (the webhook raced the send's answer). They are deferred, not dropped; the
// events after them go on (an opt-out is not held up); once the wamid is
// recorded they are applied, and read outranks delivered whatever order the
// retries take.
func TestStatusOvertakingItsSendIsDeferred(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	in, store, eng, ct := newInboxWith(t, path, Config{DeferFirst: 20 * time.Millisecond, DeferMax: 100 * time.Millisecond}, false)
	const key, wamid = "contact-1-template", "wamid.HBgLNTUxMTk4NzY1MDAwMRUCABEYEjdGRkE"
	if _, _, err := store.Enqueue(ctx, storage.OutboxKindTemplate, key, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppTemplate, 2)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	delivered, read := statusEvent(key, wamid, "delivered", t0), statusEvent(key, wamid, "read", t0.Add(time.Millisecond))
	reply := whatsapp.Event{Key: "reply-stop", Type: whatsapp.EventMessage, Time: t0.Add(2 * time.Millisecond),
		Message: &whatsapp.InboundMessage{ID: "wamid.reply", From: strings.TrimPrefix(ct.Phone, "+"), Type: "text", Text: "STOP"}}
	if err := in.HandleEvents(ctx, []whatsapp.Event{delivered, read, reply}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the opt-out after the deferred statuses applied", func() bool {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return len(eng.optOuts) > 0
	})
	waitFor(t, "the read status deferred at least twice", func() bool {
		_, tries := keptEvent(t, path, read.Key)
		return tries >= 2
	})
	if applied, _ := keptEvent(t, path, read.Key); applied {
		t.Fatal("the read status was marked applied before its attempt carried the wamid: it was dropped")
	}
	if got := attemptOutcome(t, store, ct.ID); got != "" {
		t.Fatalf("before the send's record a status changed the attempt: outcome %q", got)
	}
	// The run records the send's answer now, after its statuses arrived.
	now := time.Now()
	a.State, a.Outcome, a.ExternalID, a.EndAt = "ended", string(campaigns.OutcomeSent), wamid, &now
	if err := store.FinishAttempt(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both deferred statuses applied", func() bool {
		d, _ := keptEvent(t, path, delivered.Key)
		r, _ := keptEvent(t, path, read.Key)
		return d && r
	})
	if got := attemptOutcome(t, store, ct.ID); got != string(campaigns.OutcomeRead) {
		t.Errorf("attempt outcome after its statuses: %q, want read", got)
	}
}

// TestStatusThatNeverFindsItsAttemptHoldsNothingBack: a status of a template
// whose attempt never records it (the send's run died) is deferred with backoff
// while every event after it is applied, then given up after DeferGiveUp and
// marked applied: it never blocks the queue and is not kept for ever.
func TestStatusThatNeverFindsItsAttemptHoldsNothingBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	in, store, eng, ct := newInboxWith(t, path, Config{DeferFirst: 50 * time.Millisecond, DeferMax: 200 * time.Millisecond,
		DeferGiveUp: 2 * time.Second}, false)
	const orphanKey, key, wamid = "contact-9-template", "contact-1-template", "wamid.delivered-later"
	for _, k := range []string{orphanKey, key} {
		if _, _, err := store.Enqueue(ctx, storage.OutboxKindTemplate, k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppTemplate, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.State, a.Outcome, a.ExternalID, a.EndAt = "ended", string(campaigns.OutcomeSent), wamid, &now
	if err := store.FinishAttempt(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	orphan := statusEvent(orphanKey, "wamid.never-recorded", "read", t0)
	behind := statusEvent(key, wamid, "delivered", t0.Add(time.Millisecond))
	reply := whatsapp.Event{Key: "reply-sair", Type: whatsapp.EventMessage, Time: t0.Add(2 * time.Millisecond),
		Message: &whatsapp.InboundMessage{ID: "wamid.reply", From: strings.TrimPrefix(ct.Phone, "+"), Type: "text", Text: "SAIR"}}
	kept := time.Now()
	if err := in.HandleEvents(ctx, []whatsapp.Event{orphan, behind, reply}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events behind the orphan status applied", func() bool {
		b, _ := keptEvent(t, path, behind.Key)
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return b && len(eng.optOuts) > 0
	})
	if got := attemptOutcome(t, store, ct.ID); got != string(campaigns.OutcomeDelivered) {
		t.Errorf("the attempt behind the orphan: outcome %q, want delivered", got)
	}
	if applied, _ := keptEvent(t, path, orphan.Key); applied && time.Since(kept) < 2*time.Second {
		t.Fatal("the orphan status was marked applied before its give-up time: it was dropped")
	}
	waitFor(t, "the orphan status given up", func() bool {
		applied, _ := keptEvent(t, path, orphan.Key)
		return applied
	})
	if _, tries := keptEvent(t, path, orphan.Key); tries < 2 || tries > 20 {
		t.Errorf("the orphan status was deferred %d times in 2 s with a 50 ms doubling backoff capped at 200 ms", tries)
	}
}

// TestInDoubtPastTheWindowIsRecordedNotSent: a template a crash left in doubt
// that no status settles within the window is recorded not sent (outbox failed
// with the reason, attempt send_failed, the contact it had finished exhausted
// through the journey's table) and is never sent again; a status that comes
// after all settles it sent (and the contact done).
func TestInDoubtPastTheWindowIsRecordedNotSent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	in, store, eng, ct := newInboxWith(t, path, Config{InDoubtWindow: 400 * time.Millisecond}, true)
	body, err := os.ReadFile(filepath.Join("..", "whatsapp", "testdata", "meta", "messages_status_sent.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := whatsapp.ParseWebhook(body)
	if err != nil || len(evs) != 1 || evs[0].Status == nil {
		t.Fatalf("golden status: %+v, %v", evs, err)
	}
	key, wamid := evs[0].Status.BizOpaque, evs[0].Status.ID
	// The crash's leftovers: the outbox row in doubt, the attempt ended in_doubt.
	id, _, err := store.Enqueue(ctx, storage.OutboxKindTemplate, key, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ClaimKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkRequestStarted(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := store.RecoverOutbox(ctx, storage.OutboxScope{}, []string{storage.OutboxKindTemplate}); err != nil || r.InDoubt != 1 {
		t.Fatalf("recover: %+v %v", r, err)
	}
	camp, err := store.GetCampaign(ctx, ct.CampaignID)
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppTemplate, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.State, a.Outcome, a.ExternalID, a.EndAt = "ended", string(campaigns.OutcomeInDoubt), key, &now
	if err := store.FinishAttempt(ctx, a, eng.JourneyMove(camp.Ladder, campaigns.OutcomeEvent(campaigns.OutcomeInDoubt), now)); err != nil {
		t.Fatal(err)
	}
	status := func() campaigns.ContactStatus {
		c, err := store.GetContact(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		return c.Status
	}
	if s := status(); s != campaigns.ContactDone {
		t.Fatalf("contact after its template in doubt: %q, want done", s)
	}

	waitFor(t, "the template recorded not sent after the window", func() bool {
		m, _ := store.OutboxByKey(ctx, key)
		return m.State == storage.OutboxFailed
	})
	m, err := store.OutboxByKey(ctx, key)
	if err != nil || m.LastError != "no status from WhatsApp within 400ms: recorded not sent" {
		t.Errorf("outbox row recorded not sent: %+v, %v", m, err)
	}
	if got := attemptOutcome(t, store, ct.ID); got != string(campaigns.OutcomeSendFailed) {
		t.Errorf("attempt recorded not sent: outcome %q, want send_failed", got)
	}
	if s := status(); s != campaigns.ContactExhausted || !eng.moved(campaigns.EventTemplateUnconfirmed) {
		t.Errorf("contact after its template was recorded not sent: %q, want exhausted through %s", s, campaigns.EventTemplateUnconfirmed)
	}
	// Placed again (a restart, a retry), it is not sent again.
	got, err := waoutbox.Send(ctx, store, nil, storage.OutboxKindTemplate, key, struct{}{}, func(context.Context) (whatsapp.SendResult, error) {
		t.Error("a template recorded not sent was sent again")
		return whatsapp.SendResult{}, errors.New("sent again")
	})
	if err != nil || got.State != storage.OutboxFailed {
		t.Errorf("placed again: %+v, %v", got, err)
	}

	// WhatsApp's status comes after all: it had the message.
	if err := in.HandleEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late status settling the template sent", func() bool {
		m, _ := store.OutboxByKey(ctx, key)
		return m.State == storage.OutboxSent && attemptOutcome(t, store, ct.ID) == string(campaigns.OutcomeSent)
	})
	if m, _ := store.OutboxByKey(ctx, key); m.ResultID != wamid || m.LastError != "" {
		t.Errorf("settled late: %+v", m)
	}
	if s := status(); s != campaigns.ContactDone || !eng.moved(campaigns.EventTemplateSentLate) {
		t.Errorf("contact after the late status: %q, want done through %s", s, campaigns.EventTemplateSentLate)
	}
}

// TestShortDuration: the window in a not-sent reason reads as configured.
func TestShortDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{time.Hour, "1h"}, {90 * time.Minute, "1h30m"}, {3 * time.Second, "3s"}, {400 * time.Millisecond, "400ms"},
		{10 * time.Minute, "10m"}, {time.Hour + time.Second, "1h0m1s"}} {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
