package whatsapp_test

import (
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// TestFreeTextOnlyInsideTheServiceWindow: a free-form text is refused (131047,
// outside the window) until the user writes, then it goes through; the user's
// message arrives as an inbound message event.
func TestFreeTextOnlyInsideTheServiceWindow(t *testing.T) {
	env := newEnv(t, nil)
	ctx := testCtx(t, 10*time.Second)
	const user = "+5511987654000"
	_, err := env.client.SendText(ctx, "text-1", user, "Olá!")
	if whatsapp.ErrorKind(err) != whatsapp.KindOutsideWindow {
		t.Fatalf("text before the user wrote: %v, want outside_window", err)
	}
	wamid := env.emu.UserMessage(user, "Oi, quero falar com alguém")
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool {
		for _, ev := range evs {
			if ev.Message != nil && ev.Message.ID == wamid {
				return true
			}
		}
		return false
	})
	for _, ev := range evs {
		if ev.Message != nil && ev.Message.ID == wamid && (ev.Message.Text != "Oi, quero falar com alguém" || ev.Message.From != "5511987654000") {
			t.Errorf("inbound message %+v", ev.Message)
		}
	}
	res, err := env.client.SendText(ctx, "text-2", user, "Claro, sou a Ana.")
	if err != nil || res.MessageID == "" {
		t.Fatalf("text inside the window: %+v, %v", res, err)
	}
	if _, err := env.client.SendText(ctx, "text-3", user, "  "); err == nil {
		t.Error("an empty text was sent")
	}
}
