package waevents

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// engine is the engine as the inbox sees it: it records what it was asked.
type engine struct {
	// apply moves contacts through the journey's own table; without it they stay.
	apply   bool
	mu      sync.Mutex
	moves   []campaigns.EventKind
	optOuts [][]string
	routed  []string
	wakeups int
}

func (e *engine) JourneyMove(ladder []campaigns.Rung, ev campaigns.Event, now time.Time) storage.MoveFunc {
	return func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.moves = append(e.moves, ev.Kind)
		if e.apply {
			return campaigns.Apply(ladder, c, pos, ev, now)
		}
		return pos, nil
	}
}

// moved reports whether the engine was asked to move a contact through kind.
func (e *engine) moved(kind campaigns.EventKind) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.moves, kind)
}

func (e *engine) OptOut(_ context.Context, _ storage.Actor, phones []string, _ string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.optOuts = append(e.optOuts, phones)
	return phones, nil
}

func (e *engine) RouteInboundCall(_ context.Context, ev whatsapp.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.routed = append(e.routed, ev.Call.ID)
	return nil
}

func (e *engine) CampaignChanged() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wakeups++
}

const phone = "+5511987650000"

// newInbox returns an inbox on a real SQLite file holding one campaign (SIP,
// WhatsApp call, template) with one contact, running until the test ends.
func newInbox(t *testing.T) (*Inbox, *storage.DB, *engine, campaigns.Contact) {
	t.Helper()
	return newInboxWith(t, filepath.Join(t.TempDir(), "turbina.db"), Config{}, false)
}

// newInboxWith is newInbox on the database file path with cfg's settings
// (opt-out words added) and an engine that moves contacts through the
// journey's table when apply is set.
func newInboxWith(t *testing.T, path string, cfg Config, apply bool) (*Inbox, *storage.DB, *engine, campaigns.Contact) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := campaigns.Campaign{Name: "test", CallerID: "+551130000000", Ladder: campaigns.DefaultLadder()}
	c.ApplyDefaults()
	who := storage.Actor{Username: "test"}
	if err := store.CreateCampaign(ctx, who, &c); err != nil {
		t.Fatal(err)
	}
	b, err := store.BeginImport(ctx, who, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, campaigns.Contact{Phone: phone, Timezone: "UTC", Line: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	contacts, err := store.ContactsByWhatsApp(ctx, phone)
	if err != nil || len(contacts) != 1 {
		t.Fatalf("contacts of %s: %v, %v", phone, contacts, err)
	}
	eng := &engine{apply: apply}
	cfg.OptOutWords, cfg.OptOutReply = []string{"SAIR", "STOP"}, "ok"
	in := New(store, eng, cfg)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); in.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return in, store, eng, contacts[0]
}

// waitFor polls cond until it holds, or fails the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5 s", what)
		}
	}
}

// TestOptOutWords: a reply is an opt-out word whatever its case, accents and
// the punctuation around it; a sentence holding the word is not one.
func TestOptOutWords(t *testing.T) {
	in := New(nil, nil, Config{OptOutWords: []string{"SAIR", "STOP"}})
	tests := []struct {
		text string
		want bool
	}{
		{"SAIR", true},
		{"sáir", true},
		{"  Sair!! ", true},
		{"stop.", true},
		{"quero sair", false},
		{"", false},
		{"!!!", false},
		{"PARAR", false},
	}
	for _, tc := range tests {
		if got := in.isOptOut(tc.text); got != tc.want {
			t.Errorf("isOptOut(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// TestRepliesKeptOnceAndOptOut: a reply delivered twice by WhatsApp is kept
// once in the contact's conversation; an opt-out reply asks the engine to opt
// the number out, and without a WhatsApp client its confirmation waits in the
// outbox, not recorded as sent.
func TestRepliesKeptOnceAndOptOut(t *testing.T) {
	in, store, eng, ct := newInbox(t)
	ctx := context.Background()
	hello := whatsapp.Event{Key: "m1", Type: whatsapp.EventMessage, Time: time.Now(),
		Message: &whatsapp.InboundMessage{ID: "wamid.1", From: phone[1:], Type: "text", Text: "Oi"}}
	for range 2 {
		if err := in.HandleEvents(ctx, []whatsapp.Event{hello}); err != nil {
			t.Fatal(err)
		}
	}
	stop := whatsapp.Event{Key: "m2", Type: whatsapp.EventMessage, Time: time.Now(),
		Message: &whatsapp.InboundMessage{ID: "wamid.2", From: phone[1:], Type: "text", Text: "Sáir"}}
	if err := in.HandleEvents(ctx, []whatsapp.Event{stop}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the opt-out applied", func() bool {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return len(eng.optOuts) > 0
	})
	msgs, err := store.ListWAMessages(ctx, ct.ID)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, m.Body)
	}
	if !slices.Equal(bodies, []string{"Oi", "Sáir"}) {
		t.Errorf("conversation %q, want [Oi Sáir]", bodies)
	}
	eng.mu.Lock()
	if len(eng.optOuts) != 1 || !slices.Equal(eng.optOuts[0], []string{phone}) {
		t.Errorf("opt-outs %v, want one of %s", eng.optOuts, phone)
	}
	eng.mu.Unlock()
	m, err := store.OutboxByKey(ctx, "opt-out-"+phone+"-wamid.2")
	if err != nil {
		t.Fatalf("the confirmation is not in the outbox: %v", err)
	}
	if m.State == "sent" {
		t.Errorf("confirmation recorded as %s without a WhatsApp client", m.State)
	}
}

// TestPermissionAndCalls: a granted permission is stored and moves the
// contact to its WhatsApp call rung, waking the runs; a contact's call to the
// business is kept in its conversation and routed to the engine.
func TestPermissionAndCalls(t *testing.T) {
	in, store, eng, ct := newInbox(t)
	ctx := context.Background()
	until := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Second)
	events := []whatsapp.Event{
		{Key: "p1", Type: whatsapp.EventPermissionReply, Time: time.Now(), Permission: &whatsapp.PermissionReply{From: phone[1:], Granted: true, Expires: until}},
		{Key: "c1", Type: whatsapp.EventCallConnect, Time: time.Now(), Call: &whatsapp.CallEvent{ID: "wacid.1", From: phone[1:], Direction: "USER_INITIATED"}},
	}
	if err := in.HandleEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the call routed", func() bool {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return len(eng.routed) > 0
	})
	state, got, err := store.WhatsAppPermission(ctx, ct.ID)
	if err != nil || state != storage.PermissionGranted || !got.Equal(until) {
		t.Errorf("permission %q until %v (%v), want granted until %v", state, got, err, until)
	}
	eng.mu.Lock()
	if !slices.Equal(eng.moves, []campaigns.EventKind{campaigns.EventPermissionGranted}) || eng.wakeups != 1 || !slices.Equal(eng.routed, []string{"wacid.1"}) {
		t.Errorf("moves %v, wakeups %d, routed %v; want one grant, one wakeup, the call routed", eng.moves, eng.wakeups, eng.routed)
	}
	eng.mu.Unlock()
	msgs, err := store.ListWAMessages(ctx, ct.ID)
	if err != nil || len(msgs) != 1 || msgs[0].Type != "call" {
		t.Errorf("conversation %+v (%v), want the contact's call", msgs, err)
	}
}

// TestStatusSettlesATemplateInDoubt: a template a crash left in doubt (its
// attempt holds the send's key, not the wamid the crash lost) is settled by its
// status webhook, found by the biz_opaque_callback_data the send attached. The
// webhook is Meta's documented status payload (testdata/meta/
// messages_status_sent.json, from webhooks/reference/messages/status):
//
//	"statuses": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
//	  "status": "sent", "timestamp": "1750263773", "recipient_id": "16505551234",
//	  "biz_opaque_callback_data": "outbox-4711", "pricing": {…}}]
func TestStatusSettlesATemplateInDoubt(t *testing.T) {
	ctx := context.Background()
	in, store, _, ct := newInbox(t)
	const key = "outbox-4711"
	body, err := os.ReadFile(filepath.Join("..", "whatsapp", "testdata", "meta", "messages_status_sent.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := whatsapp.ParseWebhook(body)
	if err != nil || len(evs) != 1 || evs[0].Status == nil || evs[0].Status.BizOpaque != key {
		t.Fatalf("golden status: %+v, %v", evs, err)
	}
	wamid := evs[0].Status.ID
	// The crash's leftovers: the outbox row in doubt, the attempt ended in_doubt.
	id, _, err := store.Enqueue(ctx, "whatsapp.template", key, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ClaimKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkRequestStarted(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := store.RecoverOutbox(ctx, storage.OutboxScope{}, []string{"whatsapp.template"}); err != nil || r.InDoubt != 1 {
		t.Fatalf("recover: %+v %v", r, err)
	}
	a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppTemplate, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.State, a.Outcome, a.ExternalID, a.EndAt = "ended", string(campaigns.OutcomeInDoubt), key, &now
	if err := store.FinishAttempt(ctx, a, func(_ campaigns.Contact, p campaigns.Position) (campaigns.Position, error) { return p, nil }); err != nil {
		t.Fatal(err)
	}

	if err := in.HandleEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outbox row and the attempt settled", func() bool {
		m, _ := store.OutboxByKey(ctx, key)
		as, _ := store.ListAttempts(ctx, ct.ID)
		return m.State == storage.OutboxSent && len(as) == 1 && as[0].Outcome != string(campaigns.OutcomeInDoubt)
	})
	if m, _ := store.OutboxByKey(ctx, key); m.ResultID != wamid {
		t.Errorf("settled with wamid %q, want %q", m.ResultID, wamid)
	}
	as, err := store.ListAttempts(ctx, ct.ID)
	if err != nil || len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeSent) {
		t.Errorf("attempt after the sent status: %+v, %v", as, err)
	}
}

// TestPermissionFromTheirOwnCallMovesNoJourney: a permission the person gave by
// calling the business (Meta's callback permission: response_source automatic)
// is recorded, but does not queue the contact for a WhatsApp call as an answer
// to our request does: the person is on the line with the business already,
// and a call queued now would cross theirs or ring them again after it.
func TestPermissionFromTheirOwnCallMovesNoJourney(t *testing.T) {
	ctx := context.Background()
	until := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		source string
		moves  bool
	}{{"automatic", false}, {"user_action", true}} {
		t.Run(tc.source, func(t *testing.T) {
			in, store, eng, ct := newInbox(t)
			ev := whatsapp.Event{Key: "p-" + tc.source, Type: whatsapp.EventPermissionReply, Time: time.Now(),
				Permission: &whatsapp.PermissionReply{MessageID: "wamid.r", ContextID: "wacid.theirs", From: phone[1:], Granted: true,
					Expires: until, Source: tc.source}}
			if err := in.Apply(ctx, ev); err != nil {
				t.Fatal(err)
			}
			state, got, err := store.WhatsAppPermission(ctx, ct.ID)
			if err != nil || state != storage.PermissionGranted || !got.Equal(until) {
				t.Errorf("permission %q until %v (%v), want granted until %v", state, got, err, until)
			}
			if moved := eng.moved(campaigns.EventPermissionGranted); moved != tc.moves {
				t.Errorf("contact moved by the grant: %v, want %v", moved, tc.moves)
			}
		})
	}
}
