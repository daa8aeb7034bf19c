package wachannel_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/watest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestCallTakesItsTokenBeforeItsClaim: a WhatsApp call's connect takes the rate
// limit's token before its outbox row is claimed, so a row is never sending
// while it waits for a token (a crash then would leave a call that never left
// looking placed). With a limit of one request a second, the second of two
// calls waits for its token with its row not sending, and its connect reaches
// WhatsApp a token's time after the first (measured on the emulator's clock).
func TestCallTakesItsTokenBeforeItsClaim(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	media, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: w.emu.URL(), AccessToken: watest.Token, PhoneNumberID: "1000",
		WABAID: "2000", MessagesPerSecond: 1, Burst: 1, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		whatsapp.WithMedia(media), whatsapp.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	// The numbers are not on WhatsApp: each connect is answered at once with an
	// error, which is all this test needs of the call.
	const first, second = "+5511987650101", "+5511987650102"
	for _, n := range []string{first, second} {
		w.emu.Script(n, emulator.Behaviour{ErrorCode: 131026})
	}
	calls := wachannel.NewCalls(client, w.store, "Podemos ligar?")
	place := func(key, to string) error {
		_, err := calls.Place(ctx, channel.PlaceRequest{Key: key, Contact: w.contact, To: to})
		var oe *channel.OutcomeError
		if !errors.As(err, &oe) || oe.Outcome != campaigns.OutcomeNotOnWhatsApp {
			return errors.Join(errors.New("want not_on_whatsapp"), err)
		}
		return nil
	}
	if err := place("call-1", first); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- place("call-2", second) }()
	// While the second waits for its token (about a second), its row is not sending.
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		m, err := w.store.OutboxByKey(ctx, "call-2")
		if err == nil && m.State == storage.OutboxSending {
			t.Fatal("the second call's row is sending while it waits for its token")
		}
		select {
		case err := <-done:
			t.Fatalf("the second call was placed without waiting for its token: %v", err)
		default:
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, r := range w.emu.Requests() {
		if r.Action == "connect" {
			at = append(at, r.Time)
		}
	}
	if len(at) != 2 {
		t.Fatalf("%d connects at the emulator, want 2", len(at))
	}
	// A generous margin under the second a token takes, for a loaded machine's clocks.
	if gap := at[1].Sub(at[0]); gap < 700*time.Millisecond {
		t.Errorf("the second connect came %s after the first: the rate limit of one a second was not taken", gap)
	}
	for _, key := range []string{"call-1", "call-2"} {
		if m, err := w.store.OutboxByKey(ctx, key); err != nil || m.State != storage.OutboxFailed {
			t.Errorf("%s: %+v, %v; want failed (WhatsApp refused it)", key, m, err)
		}
	}
}

// TestCallWhoseConnectAnswerIsLostRingsOnce: WhatsApp places the call but its
// answer to the connect is lost (a 500). The channel does not place it again:
// the call's webhooks name it, the phone rings once, the attempt is answered
// when the person picks up, and the outbox row keeps the call's ID.
func TestCallWhoseConnectAnswerIsLostRingsOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	media, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: w.emu.URL(), AccessToken: watest.Token, PhoneNumberID: "1000",
		WABAID: "2000", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, whatsapp.WithMedia(media))
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: watest.Secret, VerifyToken: "v"},
		whatsapp.SinkFunc(client.HandleEvents), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hooks)
	t.Cleanup(srv.Close)
	w.emu.SetCallbackURL(srv.URL)
	w.emu.Script(w.contact.Phone, emulator.Behaviour{LostConnectAnswers: 1, Call: emulator.CallAccept,
		AnswerAfter: 300 * time.Millisecond, HangupAfter: 300 * time.Millisecond})
	calls := wachannel.NewCalls(client, w.store, "Podemos ligar?")
	att, err := calls.Place(ctx, channel.PlaceRequest{Key: "lost-answer-1", Contact: w.contact, To: w.contact.Phone})
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	var kinds []channel.AttemptEventKind
	var callID string
	timeout := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-att.Events():
			if !ok {
				done = true
				break
			}
			kinds = append(kinds, ev.Kind)
			if ev.ExternalID != "" {
				callID = ev.ExternalID
			}
		case <-timeout:
			t.Fatalf("the attempt did not end; events so far %v", kinds)
		}
	}
	if !slices.Contains(kinds, channel.AttemptAnswered) {
		t.Errorf("events %v: not answered", kinds)
	}
	n := 0
	for _, c := range w.emu.Calls() {
		if "+"+c.To == w.contact.Phone {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the phone saw %d calls, want 1", n)
	}
	m, err := w.store.OutboxByKey(ctx, "lost-answer-1")
	if err != nil || m.State != storage.OutboxSent || m.ResultID != callID || callID == "" {
		t.Errorf("outbox %+v (%v), want sent with call %q", m, err, callID)
	}
}

// TestCallSettleWaitIsTheConfiguredOne: a call whose connect answer is lost and
// whose webhooks never come is left in doubt after the wait set with
// UseSettleWait, not whatsapp.DefaultSettleWait (the context's deadline, shorter
// than the default, would end it otherwise).
func TestCallSettleWaitIsTheConfiguredOne(t *testing.T) {
	w := newWorld(t) // the emulator has no callback URL: no webhook reaches the client
	w.emu.Script(w.contact.Phone, emulator.Behaviour{LostConnectAnswers: 1, Call: emulator.CallNoAnswer})
	calls := wachannel.NewCalls(w.client, w.store, "Podemos ligar?")
	calls.UseSettleWait(1500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), whatsapp.DefaultSettleWait*3/4)
	defer cancel()
	_, err := calls.Place(ctx, channel.PlaceRequest{Key: "settle-1", Contact: w.contact, To: w.contact.Phone})
	var oe *channel.OutcomeError
	if !errors.As(err, &oe) || oe.Outcome != campaigns.OutcomeNoAnswer || !errors.Is(err, whatsapp.ErrCallInDoubt) {
		t.Fatalf("place: %v, want no_answer in doubt", err)
	}
	if ctx.Err() != nil || !strings.Contains(err.Error(), "within 1.5s") {
		t.Errorf("place: %v (context %v), want the call given up after the configured 1.5s", err, ctx.Err())
	}
	m, err := w.store.OutboxByKey(context.Background(), "settle-1")
	if err != nil || m.State != storage.OutboxInDoubt {
		t.Errorf("outbox %+v (%v), want in doubt", m, err)
	}
}
