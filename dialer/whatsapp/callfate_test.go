package whatsapp_test

import (
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// callsTo returns what the emulated phone of number saw of every call placed to it.
func callsTo(emu *emulator.Emulator, number string) []emulator.CallStats {
	var out []emulator.CallStats
	for _, c := range emu.Calls() {
		if c.To == number {
			out = append(out, c)
		}
	}
	return out
}

// TestConnectAnswerLostRingsOnce: Meta places the call but its answer to the
// connect is lost (a 500, or a connection closed before the answer). The
// Calling API has no idempotency key, so a connect sent again would ring the
// person twice: the client sends one, learns the call from its webhooks (keyed
// by biz_opaque_callback_data) and follows it to the answer.
func TestConnectAnswerLostRingsOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    emulator.Behaviour
	}{
		{"5xx after placing", emulator.Behaviour{LostConnectAnswers: 1}},
		{"connection closed after placing", emulator.Behaviour{DroppedConnectAnswers: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, nil)
			const number = "5511900000801"
			b := tc.b
			b.Call, b.AnswerAfter, b.HangupAfter = emulator.CallAccept, 300*time.Millisecond, 300*time.Millisecond
			env.emu.Script(number, b)
			call, err := env.client.Dial(testCtx(t, 15*time.Second), "lost-1", number, whatsapp.DialOptions{SettleWait: 5 * time.Second})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			waitPhase(t, call, whatsapp.PhaseAccepted)
			collectUpdates(t, call)
			if got := call.State().Outcome; got != whatsapp.OutcomeAnswered {
				t.Errorf("outcome %q, want answered", got)
			}
			if n := len(env.requestsWithKey("lost-1")); n != 1 {
				t.Errorf("%d connect requests with the key, want 1", n)
			}
			rang := callsTo(env.emu, number)
			if len(rang) != 1 {
				t.Fatalf("the phone saw %d calls, want 1: %+v", len(rang), rang)
			}
			if rang[0].CallID != call.ID() || !rang[0].Accepted || !rang[0].Connected {
				t.Errorf("phone saw %+v; client's call %s", rang[0], call.ID())
			}
		})
	}
}

// TestConnectAnswerLostNoWebhookIsInDoubt: with the answer lost and no webhook
// within the settle wait, the call is in doubt, not failed, and not placed again.
func TestConnectAnswerLostNoWebhookIsInDoubt(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000802"
	env.emu.Script(number, emulator.Behaviour{LostConnectAnswers: 1, Call: emulator.CallNoAnswer})
	env.emu.SetCallbackURL("http://127.0.0.1:1/nobody") // the webhooks never arrive
	_, err := env.client.Dial(testCtx(t, 15*time.Second), "doubt-1", number, whatsapp.DialOptions{SettleWait: 300 * time.Millisecond})
	if !errors.Is(err, whatsapp.ErrCallInDoubt) {
		t.Fatalf("dial error %v, want ErrCallInDoubt", err)
	}
	if !whatsapp.MayHaveLeft(err) {
		t.Errorf("MayHaveLeft(%v) = false", err)
	}
	if n := len(callsTo(env.emu, number)); n != 1 {
		t.Errorf("the phone saw %d calls, want 1", n)
	}
}

// TestConnectRefusalIsNotSettled: a refusal (Meta answered with an error code
// that says the call was not placed) is returned at once.
func TestConnectRefusalIsNotSettled(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000803"
	env.emu.Script(number, emulator.Behaviour{ErrorCode: 138006})
	start := time.Now()
	_, err := env.client.Dial(testCtx(t, 15*time.Second), "refused-1", number, whatsapp.DialOptions{SettleWait: 10 * time.Second})
	if whatsapp.ErrorKind(err) != whatsapp.KindNoPermission || errors.Is(err, whatsapp.ErrCallInDoubt) {
		t.Fatalf("dial error %v, want no_permission", err)
	}
	if d := time.Since(start); d >= 10*time.Second {
		t.Errorf("a refusal waited the settle wait (%s)", d)
	}
}

// TestConnectWebhookAnswersTheCall: the person's SDP answer on the connect
// webhook answers the call; the ACCEPTED status, which Meta sends later for
// auditing, is not waited for.
func TestConnectWebhookAnswersTheCall(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000804"
	env.emu.Script(number, emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 100 * time.Millisecond, AcceptedStatusDelay: time.Hour})
	call, err := env.client.Dial(testCtx(t, 15*time.Second), "connect-1", number, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, call, whatsapp.PhaseAccepted)
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool {
		for _, e := range evs {
			if e.Type == whatsapp.EventCallConnect && e.CallID() == call.ID() {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Type == whatsapp.EventCallStatus && e.CallID() == call.ID() && e.Call.Status == "ACCEPTED" {
			t.Fatalf("ACCEPTED arrived though held back an hour: %+v", e)
		}
	}
	select {
	case <-call.MediaConnected():
	case <-time.After(10 * time.Second):
		t.Fatal("media did not connect")
	}
	if err := call.Hangup(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := call.State().Outcome; got != whatsapp.OutcomeAnswered {
		t.Errorf("outcome %q, want answered", got)
	}
}

// TestCallStateAnsweredByConnectOrMedia: whichever of the connect webhook's SDP
// answer and the person's first media comes first answers the call; ACCEPTED
// then confirms and changes nothing, and neither answers a call already
// rejected or ended.
func TestCallStateAnsweredByConnectOrMedia(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0).UTC()
	connect := whatsapp.Event{Type: whatsapp.EventCallConnect, Time: t0.Add(2 * time.Second), Call: &whatsapp.CallEvent{ID: "c", SDPType: "answer", SDP: "v=0"}}
	status := func(st string, s int) whatsapp.Event {
		return whatsapp.Event{Type: whatsapp.EventCallStatus, Time: t0.Add(time.Duration(s) * time.Second), Call: &whatsapp.CallEvent{ID: "c", Status: st}}
	}
	for _, tc := range []struct {
		name       string
		steps      []any // whatsapp.Event, or time.Time for first media
		phase      whatsapp.CallPhase
		acceptedAt time.Time
	}{
		{"connect answers", []any{status("RINGING", 1), connect}, whatsapp.PhaseAccepted, t0.Add(2 * time.Second)},
		{"ACCEPTED later confirms", []any{status("RINGING", 1), connect, status("ACCEPTED", 5)}, whatsapp.PhaseAccepted, t0.Add(2 * time.Second)},
		{"media first", []any{status("RINGING", 1), t0.Add(1500 * time.Millisecond), connect}, whatsapp.PhaseAccepted, t0.Add(1500 * time.Millisecond)},
		{"rejected stays rejected", []any{status("REJECTED", 1), connect, t0.Add(3 * time.Second)}, whatsapp.PhaseRejected, time.Time{}},
		{"ringing only", []any{status("RINGING", 1)}, whatsapp.PhaseRinging, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := whatsapp.CallState{ID: "c"}
			for _, st := range tc.steps {
				switch v := st.(type) {
				case whatsapp.Event:
					s.Apply(v)
				case time.Time:
					s.MediaStarted(v)
				}
			}
			if s.Phase != tc.phase || !s.AcceptedAt.Equal(tc.acceptedAt) {
				t.Errorf("phase %s accepted at %v, want %s at %v", s.Phase, s.AcceptedAt, tc.phase, tc.acceptedAt)
			}
		})
	}
}

// TestUnansweredCallHasNoConnect: the emulator sends the connect webhook only
// when the person picks up, as Meta does; a call let ring ends no_answer, with
// RINGING and a terminate and no SDP answer.
func TestUnansweredCallHasNoConnect(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000805"
	env.emu.Script(number, emulator.Behaviour{Call: emulator.CallNoAnswer, RingTimeout: 300 * time.Millisecond})
	call, err := env.client.Dial(testCtx(t, 15*time.Second), "ring-1", number, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	collectUpdates(t, call)
	if got := call.State().Outcome; got != whatsapp.OutcomeNoAnswer {
		t.Errorf("outcome %q, want no_answer", got)
	}
	evs := env.waitEvents(t, func(evs []whatsapp.Event) bool {
		for _, e := range evs {
			if e.Type == whatsapp.EventCallTerminate && e.CallID() == call.ID() {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Type == whatsapp.EventCallConnect && e.CallID() == call.ID() {
			t.Errorf("a connect webhook for a call nobody picked up: %+v", e.Call)
		}
	}
}
