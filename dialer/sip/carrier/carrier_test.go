package carrier_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
)

// start runs a carrier for the test with short ring and talk times.
func start(t *testing.T, cfg carrier.Config) *carrier.Carrier {
	t.Helper()
	if cfg.RingMin == 0 {
		cfg.RingMin, cfg.RingMax = 100*time.Millisecond, 200*time.Millisecond
	}
	if cfg.TalkMin == 0 {
		cfg.TalkMin, cfg.TalkMax = time.Second, time.Second
	}
	c, err := carrier.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// originator is the real Turbina originator with one trunk on the carrier.
func originator(t *testing.T, c *carrier.Carrier, faultsToOpen int) *sip.Originator {
	t.Helper()
	o, err := sip.New(context.Background(), sip.Config{
		Trunks:        []sip.TrunkConfig{{Name: "sim", Address: c.Addr()}},
		InviteTimeout: sip.Duration(500 * time.Millisecond),
		FaultsToOpen:  faultsToOpen,
		ProbeInterval: sip.Duration(100 * time.Millisecond),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func dial(t *testing.T, o *sip.Originator, to string, ring time.Duration) *sip.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, err := o.Dial(ctx, sip.DialRequest{To: to, CallerID: "+551130000000", RingTimeout: ring})
	if err != nil {
		t.Fatal(err)
	}
	return call
}

func wait(t *testing.T, call *sip.Call) sip.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := call.Wait(ctx)
	if err != nil {
		t.Fatalf("call did not end: %v", err)
	}
	return res
}

// TestBehaviours dials the carrier once per behaviour with the real originator.
func TestBehaviours(t *testing.T) {
	tests := []struct {
		behaviour carrier.Behaviour
		outcome   sip.Outcome
		status    int
	}{
		{carrier.Busy, sip.OutcomeBusy, 486},
		{carrier.Fail, sip.OutcomeTrunkFault, 503},
		{carrier.Invalid, sip.OutcomeInvalidNumber, 404},
		{carrier.RingOut, sip.OutcomeNoAnswer, 487},
	}
	for _, tc := range tests {
		t.Run(tc.behaviour.String(), func(t *testing.T) {
			t.Parallel()
			c := start(t, carrier.Config{})
			o := originator(t, c, 10)
			const to = "+5511987650001"
			c.Script(to, tc.behaviour)
			res := wait(t, dial(t, o, to, 700*time.Millisecond))
			if res.Outcome != tc.outcome || res.Status != tc.status {
				t.Fatalf("result %+v, want %s %d", res, tc.outcome, tc.status)
			}
			if tc.behaviour == carrier.RingOut && res.RingAt.IsZero() {
				t.Error("ring-out call never rang")
			}
			st := c.Stats()
			if st.Invites != 1 {
				t.Errorf("carrier saw %d INVITEs, want 1", st.Invites)
			}
			if tc.behaviour == carrier.RingOut {
				deadline := time.Now().Add(2 * time.Second)
				for c.Stats().Canceled != 1 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if got := c.Stats().Canceled; got != 1 {
					t.Errorf("carrier counted %d cancelled calls, want 1", got)
				}
			}
		})
	}
}

// TestAnswerTalksAndHangsUp: an answered call carries audio both ways and the
// carrier hangs up after the talk time.
func TestAnswerTalksAndHangsUp(t *testing.T) {
	for _, audio := range []carrier.Audio{carrier.AudioSpeech, carrier.AudioPrompt} {
		c := start(t, carrier.Config{Audio: audio})
		o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "sim", Address: c.Addr()}},
			SendSilence: true}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		const to = "+5511987650002"
		c.Script(to, carrier.Answer)
		call := dial(t, o, to, 5*time.Second)
		res := wait(t, call)
		if res.Outcome != sip.OutcomeAnswered || res.HangupBy != sip.PartyRemote {
			t.Fatalf("result %+v, want answered and hung up by the carrier", res)
		}
		if talk := res.TalkDuration(); talk < 900*time.Millisecond || talk > 3*time.Second {
			t.Errorf("talked %s, want about 1 s", talk)
		}
		if got := call.Media().PacketsReceived(); got < 30 {
			t.Errorf("caller received %d RTP packets in a second, want about 50", got)
		}
		// The carrier counts the call over once its BYE is answered.
		deadline := time.Now().Add(2 * time.Second)
		for c.Stats().Active != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		st := c.Stats()
		if st.Answered != 1 || st.HungUpByCarrier != 1 || st.RTPReceived < 20 || st.Active != 0 {
			t.Errorf("carrier stats %+v", st)
		}
	}
}

// TestCallerHangsUp: the caller's BYE ends the call at the carrier.
func TestCallerHangsUp(t *testing.T) {
	c := start(t, carrier.Config{TalkMin: time.Minute, TalkMax: time.Minute})
	o := originator(t, c, 3)
	const to = "+5511987650003"
	c.Script(to, carrier.Answer)
	call := dial(t, o, to, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !call.Answered() {
		if time.Now().After(deadline) {
			t.Fatal("not answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if res := call.Result(); res.HangupBy != sip.PartyLocal || res.Outcome != sip.OutcomeAnswered {
		t.Errorf("result %+v", res)
	}
	for c.Stats().HungUpByCaller != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("carrier stats %+v", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCutOpensTheCircuitAndRestoreClosesIt: a cut carrier is silent, so the trunk's
// circuit opens; once restored its OPTIONS probe is answered and calls flow again.
func TestCutOpensTheCircuitAndRestoreClosesIt(t *testing.T) {
	c := start(t, carrier.Config{})
	o := originator(t, c, 1)
	const to = "+5511987650004"
	c.Script(to, carrier.Busy)
	c.Cut(true)
	res := wait(t, dial(t, o, to, 2*time.Second))
	if res.Outcome != sip.OutcomeTrunkFault || res.Status != 0 {
		t.Fatalf("result through a cut carrier %+v, want a trunk fault without response", res)
	}
	if _, err := o.Dial(context.Background(), sip.DialRequest{To: to}); err != sip.ErrNoTrunk {
		t.Fatalf("dial with the circuit open: %v, want ErrNoTrunk", err)
	}
	if st := c.Stats(); st.Invites != 0 || st.Dropped == 0 {
		t.Errorf("cut carrier stats %+v", st)
	}
	c.Cut(false)
	deadline := time.Now().Add(5 * time.Second)
	for o.Trunks()[0].State != sip.CircuitClosed {
		if time.Now().After(deadline) {
			t.Fatalf("circuit still %s after the carrier came back", o.Trunks()[0].State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := wait(t, dial(t, o, to, 2*time.Second)); res.Outcome != sip.OutcomeBusy {
		t.Fatalf("result after restore %+v", res)
	}
	if c.Stats().Options == 0 {
		t.Error("no OPTIONS probe was answered")
	}
}

// TestCutSilencesAnsweredCalls: a cut link carries no RTP either: an answered
// call hears nothing while the carrier is cut, and hears it again once restored.
func TestCutSilencesAnsweredCalls(t *testing.T) {
	c := start(t, carrier.Config{TalkMin: time.Minute, TalkMax: time.Minute})
	o := originator(t, c, 1000)
	const to = "+5511987650005"
	c.Script(to, carrier.Answer)
	call := dial(t, o, to, 5*time.Second)
	received := func(after time.Duration) uint64 {
		time.Sleep(after)
		return call.Media().PacketsReceived()
	}
	deadline := time.Now().Add(5 * time.Second)
	for call.Media().PacketsReceived() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("no RTP from the carrier: %+v", call.Result())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Cut(true)
	sentAtCut := c.Stats().RTPSent
	before := received(100 * time.Millisecond) // what was in flight has landed
	if during := received(400 * time.Millisecond); during != before {
		t.Errorf("%d RTP packets crossed the cut", during-before)
	}
	if st := c.Stats(); st.RTPSent > sentAtCut+1 {
		t.Errorf("the carrier counted %d packets sent through a cut link", st.RTPSent-sentAtCut)
	}
	c.Cut(false)
	if after := received(300 * time.Millisecond); after <= before {
		t.Errorf("no RTP after the link came back: %d packets", after)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = call.Hangup(ctx)
}

// TestDrawIsSeeded: the same seed gives the same fates.
func TestDrawIsSeeded(t *testing.T) {
	fates := func() []int64 {
		c := start(t, carrier.Config{Seed: 42, RingMin: time.Millisecond, RingMax: time.Millisecond,
			Odds: carrier.Odds{Busy: 1, Invalid: 1, Fail: 1}})
		o := originator(t, c, 1000)
		for i := range 12 {
			wait(t, dial(t, o, fmt.Sprintf("+55119876500%02d", 10+i), time.Second))
		}
		st := c.Stats()
		return []int64{st.Busy, st.Invalid, st.Failed}
	}
	a, b := fates(), fates()
	if a[0]+a[1]+a[2] != 12 || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
		t.Errorf("fates %v and %v, want the same 12", a, b)
	}
}
