package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestRecoverOutboxAfterCrash: what a crash leaves claimed is settled by what
// provably happened: a request that started is in doubt (never sent again and
// never called sent), one that did not is sent again (a template) or recorded
// not sent (kinds nothing resends); sent and failed rows keep their state.
func TestRecoverOutboxAfterCrash(t *testing.T) { eachBackend(t, testRecoverOutboxAfterCrash) }

func testRecoverOutboxAfterCrash(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	type row struct {
		key, kind string
		claim     bool // claimed (sending) at the crash
		started   bool // its request had started
		sent      bool
	}
	rows := []row{
		{key: "tpl-started", kind: "whatsapp.template", claim: true, started: true},
		{key: "tpl-claimed", kind: "whatsapp.template", claim: true},
		{key: "tpl-pending", kind: "whatsapp.template"},
		{key: "perm-started", kind: "whatsapp.permission_request", claim: true, started: true},
		{key: "perm-claimed", kind: "whatsapp.permission_request", claim: true},
		{key: "perm-pending", kind: "whatsapp.permission_request"},
		{key: "agent-sent", kind: "whatsapp.agent_message", claim: true, started: true, sent: true},
	}
	for _, r := range rows {
		id, _, err := d.Enqueue(ctx, r.kind, r.key, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.claim {
			if ok, err := d.ClaimKey(ctx, r.key); err != nil || !ok {
				t.Fatalf("claim %s: %v %v", r.key, ok, err)
			}
		}
		if r.started {
			if err := d.MarkRequestStarted(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if r.sent {
			if err := d.MarkSent(ctx, id, "wamid.A"); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := d.RecoverOutbox(ctx, OutboxScope{}, []string{"whatsapp.template"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (OutboxRecovery{Requeued: 1, InDoubt: 2, NotSent: 2}); got != want {
		t.Errorf("recovery = %+v, want %+v", got, want)
	}
	want := map[string]string{"tpl-started": OutboxInDoubt, "tpl-claimed": OutboxPending, "tpl-pending": OutboxPending,
		"perm-started": OutboxInDoubt, "perm-claimed": OutboxFailed, "perm-pending": OutboxFailed, "agent-sent": OutboxSent}
	for key, state := range want {
		m, err := d.OutboxByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if m.State != state {
			t.Errorf("%s: state %s, want %s (%s)", key, m.State, state, m.LastError)
		}
		if state == OutboxInDoubt && m.InDoubtSince.IsZero() {
			t.Errorf("%s: in doubt with no time", key)
		}
	}
	// A second start finds nothing more to recover: doubt is settled by evidence only.
	if again, err := d.RecoverOutbox(ctx, OutboxScope{}, []string{"whatsapp.template"}); err != nil || again != (OutboxRecovery{}) {
		t.Errorf("second recovery = %+v, %v", again, err)
	}
	// A request that may have left is never claimed again.
	if ok, _ := d.ClaimKey(ctx, "tpl-started"); ok {
		t.Error("a message in doubt was claimed again")
	}
	// The status webhook settles it, with the wamid the crash lost.
	if ok, err := d.SettleByKey(ctx, "tpl-started", "wamid.B"); err != nil || !ok {
		t.Fatalf("settle: %v %v", ok, err)
	}
	if m, _ := d.OutboxByKey(ctx, "tpl-started"); m.State != OutboxSent || m.ResultID != "wamid.B" {
		t.Errorf("settled: %+v", m)
	}
	if ok, _ := d.SettleByKey(ctx, "tpl-started", "wamid.B"); ok {
		t.Error("a second status settled the message again")
	}
}

// TestInDoubtReportedOnce: a message in doubt past the wait is listed for the
// supervisors' report once, and stays in doubt.
func TestInDoubtReportedOnce(t *testing.T) { eachBackend(t, testInDoubtReportedOnce) }

func testInDoubtReportedOnce(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	id, _, err := d.Enqueue(ctx, "whatsapp.template", "k", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ClaimKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkRequestStarted(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkInDoubt(ctx, id, errors.New("connection reset")); err != nil {
		t.Fatal(err)
	}
	if early, _ := d.InDoubtSince(ctx, time.Now().Add(-time.Hour), 10); len(early) != 0 {
		t.Fatalf("reported before the wait: %+v", early)
	}
	due, err := d.InDoubtSince(ctx, time.Now().Add(time.Second), 10)
	if err != nil || len(due) != 1 || due[0].IdempotencyKey != "k" || due[0].LastError != "connection reset" {
		t.Fatalf("due: %+v %v", due, err)
	}
	if err := d.MarkReported(ctx, []int64{id}); err != nil {
		t.Fatal(err)
	}
	if again, _ := d.InDoubtSince(ctx, time.Now().Add(time.Second), 10); len(again) != 0 {
		t.Errorf("reported twice: %+v", again)
	}
	if m, _ := d.OutboxByKey(ctx, "k"); m.State != OutboxInDoubt {
		t.Errorf("reporting changed the state: %+v", m)
	}
}

// TestDeferredWebhookEventWaitsItsTurn: a kept event deferred is left out of
// the pending ones until its retry is due (the events after it are listed), and
// comes back in event-time order with its tries counted.
func TestDeferredWebhookEventWaitsItsTurn(t *testing.T) {
	eachBackend(t, testDeferredWebhookEventWaitsItsTurn)
}

func testDeferredWebhookEventWaitsItsTurn(t *testing.T, be backend) {
	now := time.Now()
	d, _ := be.open(t, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	var evs []WebhookEvent
	for i, k := range []string{"status-read", "reply", "status-delivered"} {
		evs = append(evs, WebhookEvent{Key: k, Type: "t", Payload: []byte(`{}`), At: now.Add(time.Duration(i) * time.Millisecond)})
	}
	if _, err := d.SaveWebhookEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		t.Helper()
		p, err := d.PendingWebhookEvents(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range p {
			out = append(out, fmt.Sprintf("%s/%d", e.Key, e.Tries))
		}
		return out
	}
	if err := d.DeferWebhookEvent(ctx, "status-read", now.Add(250*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := keys(); !slices.Equal(got, []string{"reply/0", "status-delivered/0"}) {
		t.Errorf("pending while the read status is deferred: %v", got)
	}
	now = now.Add(250 * time.Millisecond)
	if got := keys(); !slices.Equal(got, []string{"status-read/1", "reply/0", "status-delivered/0"}) {
		t.Errorf("pending once its retry is due: %v", got)
	}
	if err := d.MarkWebhookEventsApplied(ctx, []string{"status-read"}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeferWebhookEvent(ctx, "status-read", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("deferring an applied event: %v, want ErrNotFound", err)
	}
}

// TestRecordNotSentOnlyWhileInDoubt: a message in doubt past its window is
// recorded not sent with the reason; one settled meanwhile by its status is
// left sent, and a status after the record still settles it sent.
func TestRecordNotSentOnlyWhileInDoubt(t *testing.T) {
	eachBackend(t, testRecordNotSentOnlyWhileInDoubt)
}

func testRecordNotSentOnlyWhileInDoubt(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	for _, k := range []string{"late", "settled"} {
		id, _, err := d.Enqueue(ctx, OutboxKindTemplate, k, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.ClaimKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := d.MarkInDoubt(ctx, id, errors.New("connection reset")); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := d.SettleByKey(ctx, "settled", "wamid.1"); !ok || err != nil {
		t.Fatalf("settle: %v %v", ok, err)
	}
	list, err := d.InDoubtBefore(ctx, time.Now().Add(time.Second), 10)
	if err != nil || len(list) != 1 || list[0].IdempotencyKey != "late" {
		t.Fatalf("in doubt past the window: %+v, %v", list, err)
	}
	settled, _ := d.OutboxByKey(ctx, "settled")
	const cause = "no status from WhatsApp within 1h: recorded not sent"
	for _, tt := range []struct {
		id   int64
		want bool
	}{{list[0].ID, true}, {list[0].ID, false}, {settled.ID, false}} {
		if ok, err := d.RecordNotSent(ctx, tt.id, cause); ok != tt.want || err != nil {
			t.Errorf("record %d not sent: %v, %v; want %v", tt.id, ok, err, tt.want)
		}
	}
	if m, _ := d.OutboxByKey(ctx, "late"); m.State != OutboxFailed || m.LastError != cause {
		t.Errorf("recorded not sent: %+v", m)
	}
	if m, _ := d.OutboxByKey(ctx, "settled"); m.State != OutboxSent {
		t.Errorf("a settled message recorded not sent: %+v", m)
	}
	if ok, err := d.SettleByKey(ctx, "late", "wamid.2"); !ok || err != nil {
		t.Errorf("a late status: %v, %v", ok, err)
	}
	if m, _ := d.OutboxByKey(ctx, "late"); m.State != OutboxSent || m.ResultID != "wamid.2" || m.LastError != "" {
		t.Errorf("after a late status: %+v", m)
	}
}

// TestDropPendingOnlyWhilePending: the pending messages of one kind are listed
// page by page; one is recorded not sent with its reason only while it is still
// pending, never once claimed.
func TestDropPendingOnlyWhilePending(t *testing.T) { eachBackend(t, testDropPendingOnlyWhilePending) }

func testDropPendingOnlyWhilePending(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "claimed"} {
		if _, _, err := d.Enqueue(ctx, OutboxKindTemplate, k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.Enqueue(ctx, "whatsapp.permission", "other kind", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ClaimKey(ctx, "claimed"); err != nil {
		t.Fatal(err)
	}
	first, err := d.PendingOutbox(ctx, OutboxKindTemplate, 0, 1)
	if err != nil || len(first) != 1 || first[0].IdempotencyKey != "a" {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	rest, err := d.PendingOutbox(ctx, OutboxKindTemplate, first[0].ID, 10)
	if err != nil || len(rest) != 1 || rest[0].IdempotencyKey != "b" {
		t.Fatalf("second page: %+v, %v; want b alone", rest, err)
	}
	claimed, _ := d.OutboxByKey(ctx, "claimed")
	const cause = "not sent: its contact was closed (do_not_call) before it could be sent again"
	for _, tt := range []struct {
		id   int64
		want bool
	}{{first[0].ID, true}, {first[0].ID, false}, {claimed.ID, false}} {
		if ok, err := d.DropPending(ctx, tt.id, cause); ok != tt.want || err != nil {
			t.Errorf("drop %d: %v, %v; want %v", tt.id, ok, err, tt.want)
		}
	}
	if m, _ := d.OutboxByKey(ctx, "a"); m.State != OutboxFailed || m.LastError != cause {
		t.Errorf("dropped: %+v", m)
	}
	if m, _ := d.OutboxByKey(ctx, "claimed"); m.State != OutboxSending {
		t.Errorf("a claimed message was dropped: %+v", m)
	}
}

// TestRecoverOutboxScope: a node settles only what no live node will: the
// messages of a campaign whose lease it just took (enqueued under that
// campaign's fence, whichever node claimed them), or the messages of no
// campaign that a node no longer live enqueued or claimed; a live node's
// sends in flight, and another campaign's, are left alone.
func TestRecoverOutboxScope(t *testing.T) { eachBackend(t, testRecoverOutboxScope) }

func testRecoverOutboxScope(t *testing.T, b backend) {
	ctx := context.Background()
	d, _ := b.open(t, Options{})
	mine, other := newCampaign(t, d), newCampaign(t, d)
	claimed := func(ctx context.Context, kind, key string) {
		t.Helper()
		if _, _, err := d.Enqueue(ctx, kind, key, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if ok, err := d.ClaimKey(ctx, key); err != nil || !ok {
			t.Fatalf("claim %s: %v %v", key, ok, err)
		}
	}
	for _, c := range []struct {
		id  int64
		key string
	}{{mine.ID, "template-mine"}, {other.ID, "template-other"}} {
		l, err := d.AcquireLease(ctx, c.id, "old", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		claimed(WithNode(WithFence(ctx, l.Fence()), "old"), OutboxKindTemplate, c.key)
	}
	claimed(WithNode(ctx, "dead"), "whatsapp.agent_message", "agent-dead")
	claimed(WithNode(ctx, "live"), "whatsapp.agent_message", "agent-live")
	state := func(key string) string {
		t.Helper()
		m, err := d.OutboxByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return m.State
	}
	want := func(states map[string]string) {
		t.Helper()
		for key, st := range states {
			if got := state(key); got != st {
				t.Errorf("%s is %s, want %s", key, got, st)
			}
		}
	}
	r, err := d.RecoverOutbox(ctx, OutboxScope{Campaign: mine.ID}, []string{OutboxKindTemplate})
	if err != nil || r != (OutboxRecovery{Requeued: 1}) {
		t.Fatalf("campaign's recovery %+v, %v; want its one template requeued", r, err)
	}
	want(map[string]string{"template-mine": OutboxPending, "template-other": OutboxSending, "agent-dead": OutboxSending, "agent-live": OutboxSending})
	r, err = d.RecoverOutbox(ctx, OutboxScope{Live: []string{"live", "old"}}, []string{OutboxKindTemplate})
	if err != nil || r != (OutboxRecovery{NotSent: 1}) {
		t.Fatalf("dead nodes' recovery %+v, %v; want the dead node's message recorded not sent", r, err)
	}
	want(map[string]string{"template-other": OutboxSending, "agent-dead": OutboxFailed, "agent-live": OutboxSending})
}
