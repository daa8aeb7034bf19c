package wachannel_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/internal/watest"
	"github.com/turbina-dialer/turbina/storage"
)

// world is the Cloud API emulator, a client of it and a real SQLite file holding
// one contact.
type world struct {
	emu     *emulator.Emulator
	client  *whatsapp.Client
	store   *storage.DB
	contact campaigns.Contact
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	emu, client := watest.Start(t, slog.New(slog.DiscardHandler))
	store := storetest.Open(t)
	who := storage.Actor{Username: "test"}
	c := campaigns.Campaign{Name: "wa", CallerID: "+551130000000", Ladder: []campaigns.Rung{
		{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1},
		{Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1, Template: "lembrete", Language: "pt_BR", Params: []string{"name", "plano"}},
	}}
	c.ApplyDefaults()
	if err := store.CreateCampaign(ctx, who, &c); err != nil {
		t.Fatal(err)
	}
	b, err := store.BeginImport(ctx, who, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, campaigns.Contact{Phone: "+5511987650001", Name: "Ana", Timezone: "UTC", Line: 2,
		Attributes: map[string]string{"plano": "Ouro"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list, _, err := store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %v: %v", list, err)
	}
	return &world{emu: emu, client: client, store: store, contact: list[0]}
}

// sends counts the emulator's message sends.
func (w *world) sends() int {
	n := 0
	for _, r := range w.emu.Requests() {
		if filepath.Base(r.Path) == "messages" && r.Method == "POST" {
			n++
		}
	}
	return n
}

// ended reads an attempt's only event.
func ended(t *testing.T, l channel.Attempt) channel.AttemptEvent {
	t.Helper()
	var last channel.AttemptEvent
	n := 0
	for ev := range l.Events() {
		last, n = ev, n+1
	}
	if n != 1 || last.Kind != channel.AttemptEnded {
		t.Fatalf("%d events, last %+v: want one AttemptEnded", n, last)
	}
	return last
}

func TestTemplateIsSentOnceAcrossARestart(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	rung := campaigns.Rung{Channel: campaigns.ChannelWhatsAppTemplate, Template: "lembrete", Language: "pt_BR", Params: []string{"name", "plano"}}
	req := channel.PlaceRequest{AttemptID: 1, Key: "contact-1-rung-1-try-1", Contact: w.contact, Rung: rung, To: w.contact.Phone}

	l, err := wachannel.NewTemplates(w.client, w.store).Place(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if ev := ended(t, l); ev.Outcome != campaigns.OutcomeSent || ev.ExternalID == "" {
		t.Errorf("first send: %+v", ev)
	}
	if n := w.sends(); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
	msgs, err := w.store.ListWAMessages(ctx, w.contact.ID)
	if err != nil || len(msgs) != 1 || msgs[0].Type != "template" || msgs[0].Body != "lembrete" {
		t.Errorf("conversation %+v: %v", msgs, err)
	}

	// A new channel, as after a restart, on the same key: the template is not sent twice.
	l, err = wachannel.NewTemplates(w.client, w.store).Place(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if ev := ended(t, l); ev.Outcome != campaigns.OutcomeSent {
		t.Errorf("second place: %+v", ev)
	}
	if n := w.sends(); n != 1 {
		t.Errorf("%d sends after the same key again, want 1", n)
	}

	// A parameter naming a column the contact lacks sends nothing and says which.
	rung.Params = []string{"name", "cpf"}
	_, err = wachannel.NewTemplates(w.client, w.store).Place(ctx, channel.PlaceRequest{Key: "other", Contact: w.contact, Rung: rung, To: w.contact.Phone})
	var oe *channel.OutcomeError
	if !errors.As(err, &oe) || oe.Outcome != campaigns.OutcomeSendFailed || !errors.Is(err, campaigns.ErrMissingColumn) {
		t.Errorf("missing column: %v", err)
	}
	if n := w.sends(); n != 1 {
		t.Errorf("%d sends after a missing column, want 1", n)
	}
}

func TestPermissionRequestAsksTheGateAndGoesOutOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	calls := wachannel.NewCalls(w.client, w.store, "Podemos ligar?")
	req := channel.PlaceRequest{Key: "contact-1-rung-0-try-1", Contact: w.contact, To: w.contact.Phone,
		Permission: campaigns.CallPermission{Template: "pedido_ligacao", Language: "pt_BR"}}
	var asked []campaigns.ContactAction
	refuse := errors.New("refused")
	gateErr := refuse
	calls.UseGate(func(_ context.Context, contactID int64, action campaigns.ContactAction) error {
		if contactID != w.contact.ID {
			t.Errorf("gate asked about contact %d, want %d", contactID, w.contact.ID)
		}
		asked = append(asked, action)
		return gateErr
	})

	calls.RequestPermission(ctx, req)
	if n := len(w.emu.Requests()); n != 0 {
		t.Fatalf("%d requests to WhatsApp after the gate refused, want 0", n)
	}
	gateErr = nil
	calls.RequestPermission(ctx, req)
	// The same refused call again: Meta's state says its limit (one a day) is
	// used up, so no request is sent.
	calls.RequestPermission(ctx, req)
	if n := w.sends(); n != 1 {
		t.Errorf("%d sends, want 1", n)
	}
	want := []campaigns.ContactAction{campaigns.ActionPermissionRequest, campaigns.ActionPermissionRequest, campaigns.ActionPermissionRequest}
	if !slices.Equal(asked, want) {
		t.Errorf("gate asked %v, want %v", asked, want)
	}
	state, _, err := w.store.WhatsAppPermission(ctx, w.contact.ID)
	if err != nil || state != storage.PermissionRequested {
		t.Errorf("permission %q (%v), want %q", state, err, storage.PermissionRequested)
	}
}

// TestTemplateAfterACrash: a template placed again under its key after a crash
// is decided by what the outbox knows of the first try: one whose request never
// started is sent (once); one whose request started is in doubt, not sent again
// and not called sent, with its key for the status webhook to find it; one
// sent keeps its wamid.
func TestTemplateAfterACrash(t *testing.T) {
	rung := campaigns.Rung{Channel: campaigns.ChannelWhatsAppTemplate, Template: "lembrete", Language: "pt_BR", Params: []string{"name", "plano"}}
	for _, tc := range []struct {
		name      string
		started   bool // the crashed process had started the request
		sent      bool // and recorded Meta's answer
		outcome   campaigns.Outcome
		sends     int
		wantState string
	}{
		{name: "claimed, request never started", outcome: campaigns.OutcomeSent, sends: 1, wantState: storage.OutboxSent},
		{name: "request started, answer lost", started: true, outcome: campaigns.OutcomeInDoubt, sends: 0, wantState: storage.OutboxInDoubt},
		{name: "sent and recorded", started: true, sent: true, outcome: campaigns.OutcomeSent, sends: 0, wantState: storage.OutboxSent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			req := channel.PlaceRequest{AttemptID: 1, Key: "contact-1-attempt-1", Contact: w.contact, Rung: rung, To: w.contact.Phone}
			// The crashed process's part: enqueued, claimed, perhaps started.
			id, _, err := w.store.Enqueue(ctx, "whatsapp.template", req.Key, []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.store.ClaimKey(ctx, req.Key); err != nil {
				t.Fatal(err)
			}
			if tc.started {
				if err := w.store.MarkRequestStarted(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if tc.sent {
				if err := w.store.MarkSent(ctx, id, "wamid.FIRST"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.store.RecoverOutbox(ctx, storage.OutboxScope{}, []string{"whatsapp.template"}); err != nil {
				t.Fatal(err)
			}
			l, err := wachannel.NewTemplates(w.client, w.store).Place(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			ev := ended(t, l)
			if ev.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s (%s)", ev.Outcome, tc.outcome, ev.Detail)
			}
			switch {
			case tc.sent && ev.ExternalID != "wamid.FIRST":
				t.Errorf("external id %q, want the first send's wamid", ev.ExternalID)
			case tc.outcome == campaigns.OutcomeInDoubt && ev.ExternalID != req.Key:
				t.Errorf("in doubt with external id %q, want the key its status webhook carries", ev.ExternalID)
			}
			if n := w.sends(); n != tc.sends {
				t.Errorf("%d sends, want %d", n, tc.sends)
			}
			if m, _ := w.store.OutboxByKey(ctx, req.Key); m.State != tc.wantState {
				t.Errorf("outbox %s, want %s", m.State, tc.wantState)
			}
		})
	}
}
