package web

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// noTemplates marks WhatsApp as configured; the wallboard's health comes from the
// sends in the outbox, not from it.
type noTemplates struct{}

func (noTemplates) ApprovedTemplates(context.Context) ([]TemplateInfo, error) { return nil, nil }

// TestWallboardWhatsAppHealth: the WhatsApp API's health on the wallboard follows
// the last ten minutes of sends through the outbox, within the second a
// snapshot is shared for.
func TestWallboardWhatsAppHealth(t *testing.T) {
	e := newUIEnv(t, Config{Templates: noTemplates{}})
	ctx := context.Background()
	health := func(want string) WallboardWhatsApp {
		t.Helper()
		for deadline := time.Now().Add(snapshotTTL + 3*time.Second); ; time.Sleep(50 * time.Millisecond) {
			h := decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", e.tokens[storage.RoleSupervisor]), http.StatusOK).WhatsApp
			if h.Status == want || time.Now().After(deadline) {
				return h
			}
		}
	}
	if h := health("ok"); !h.Configured || h.Status != "ok" {
		t.Fatalf("no sends yet: %+v", h)
	}
	send := func(key string, ok bool) {
		t.Helper()
		id, _, err := e.db.Enqueue(ctx, "whatsapp.template", key, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			err = e.db.MarkSent(ctx, id, "wamid."+key)
		} else {
			err = e.db.MarkFailed(ctx, id, errors.New("131026"), time.Time{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	send("a", false)
	if h := health("failing"); h.Status != "failing" {
		t.Errorf("only failures: %+v", h)
	}
	send("b", true)
	if h := health("degraded"); h.Status != "degraded" {
		t.Errorf("some failures: %+v", h)
	}
}
