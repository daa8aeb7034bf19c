package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRecoverOutboxAfterCrash: what a crash leaves claimed is settled by what
// provably happened: a request that started is in doubt (never sent again and
// never called sent), one that did not is sent again (a template) or recorded
// not sent (kinds nothing resends); sent and failed rows keep their state.
func TestRecoverOutboxAfterCrash(t *testing.T) {
	d, _ := openTestDB(t)
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
	got, err := d.RecoverOutbox(ctx, []string{"whatsapp.template"})
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
	if again, err := d.RecoverOutbox(ctx, []string{"whatsapp.template"}); err != nil || again != (OutboxRecovery{}) {
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
func TestInDoubtReportedOnce(t *testing.T) {
	d, _ := openTestDB(t)
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
