package waevents

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// handleAndWait keeps evs and waits until every kept event was applied.
func handleAndWait(t *testing.T, in *Inbox, store *storage.DB, evs ...whatsapp.Event) {
	t.Helper()
	ctx := context.Background()
	if err := in.HandleEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events applied", func() bool {
		p, err := store.PendingWebhookEvents(ctx, 10)
		return err == nil && len(p) == 0
	})
}

// TestPermissionRepliesByEventTime: an older "reject" arriving after a newer
// "accept" leaves the contact granted; a reply newer than both decides.
func TestPermissionRepliesByEventTime(t *testing.T) {
	in, store, _, ct := newInbox(t)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	reply := func(key string, at time.Time, granted bool) whatsapp.Event {
		return whatsapp.Event{Key: key, Type: whatsapp.EventPermissionReply, Time: at,
			Permission: &whatsapp.PermissionReply{MessageID: key, From: phone[1:], Granted: granted, Permanent: granted}}
	}
	for _, step := range []struct {
		ev   whatsapp.Event
		want string
	}{
		{reply("accept-newer", t0, true), storage.PermissionGranted},
		{reply("reject-older", t0.Add(-time.Minute), false), storage.PermissionGranted},
		{reply("reject-newest", t0.Add(time.Minute), false), storage.PermissionDenied},
		{reply("accept-between", t0.Add(30*time.Second), true), storage.PermissionDenied},
	} {
		handleAndWait(t, in, store, step.ev)
		state, _, err := store.WhatsAppPermission(ctx, ct.ID)
		if err != nil || state != step.want {
			t.Fatalf("after %s: permission %q (%v), want %q", step.ev.Key, state, err, step.want)
		}
	}
}

// TestStatusesFinal: statuses that arrive out of order are applied by rank:
// failed is final over delivered (an older delivered arriving after it does
// not flip the outcome), and read, which proves delivery, is not overwritten by
// failed.
func TestStatusesFinal(t *testing.T) {
	in, store, _, ct := newInbox(t)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	attempt := func(wamid string) int64 {
		t.Helper()
		a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppTemplate, 2)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a.State, a.Outcome, a.ExternalID, a.EndAt = "ended", string(campaigns.OutcomeSent), wamid, &now
		// Pending again, so that the next case can start its attempt.
		pending := func(_ campaigns.Contact, p campaigns.Position) (campaigns.Position, error) {
			p.Status = campaigns.ContactPending
			return p, nil
		}
		if err := store.FinishAttempt(ctx, a, pending); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	outcome := func(id int64) string {
		t.Helper()
		as, err := store.ListAttempts(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.ID == id {
				return a.Outcome
			}
		}
		t.Fatalf("attempt %d not found", id)
		return ""
	}
	status := func(wamid, st string, at time.Time) whatsapp.Event {
		return whatsapp.Event{Key: "msg|" + wamid + "|" + st, Type: whatsapp.EventMessageStatus, Time: at,
			Status: &whatsapp.MessageStatus{ID: wamid, Status: st, RecipientID: phone[1:]}}
	}
	for _, tc := range []struct {
		name  string
		steps []whatsapp.Event
		want  campaigns.Outcome
	}{
		{"failed, then an older delivered", []whatsapp.Event{status("wamid.F", "failed", t0), status("wamid.F", "delivered", t0.Add(-time.Second))}, campaigns.OutcomeSendFailed},
		{"read, then failed", []whatsapp.Event{status("wamid.R", "read", t0), status("wamid.R", "failed", t0.Add(time.Second))}, campaigns.OutcomeRead},
		{"delivered, then read", []whatsapp.Event{status("wamid.D", "delivered", t0), status("wamid.D", "read", t0.Add(time.Second))}, campaigns.OutcomeRead},
		{"read, then an older delivered", []whatsapp.Event{status("wamid.X", "read", t0), status("wamid.X", "delivered", t0.Add(-time.Second))}, campaigns.OutcomeRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := attempt(tc.steps[0].Status.ID)
			for _, ev := range tc.steps {
				handleAndWait(t, in, store, ev)
			}
			if got := outcome(id); got != string(tc.want) {
				t.Errorf("outcome %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTopLevelErrorsRecorded: Meta's out-of-band errors at the top of a
// messages change (an asynchronous 130429, testdata/meta/
// messages_errors_toplevel.json) are kept and logged with their code.
func TestTopLevelErrorsRecorded(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	in, store, _, _ := newInboxWith(t, filepath.Join(t.TempDir(), "turbina.db"), Config{Logger: log}, false)
	body, err := os.ReadFile(filepath.Join("..", "whatsapp", "testdata", "meta", "messages_errors_toplevel.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := whatsapp.ParseWebhook(body)
	if err != nil || len(evs) != 1 {
		t.Fatalf("golden errors: %+v, %v", evs, err)
	}
	handleAndWait(t, in, store, evs...)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "whatsapp out-of-band error") || !strings.Contains(logs.String(), "code=130429") {
		t.Errorf("log %q, want the 130429 recorded", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
