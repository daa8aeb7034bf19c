package carrier_test

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
)

// TestCancelUnansweredEndsTheCall: the carrier's link is cut while a call rings;
// the originator's CANCEL gets no reply, and the call ends within the INVITE
// timeout rather than after sipgo's 32-second transaction timer, with a fault
// counted against the trunk.
func TestCancelUnansweredEndsTheCall(t *testing.T) {
	c := start(t, carrier.Config{Seed: 1, Odds: carrier.Odds{RingOut: 1}})
	o := originator(t, c, 3)
	call := dial(t, o, "+5511987650077", 10*time.Second)
	time.Sleep(300 * time.Millisecond) // ringing: the 180 is in
	c.Cut(true)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := call.Hangup(ctx); err != nil {
		t.Fatalf("hang-up did not end the call within 5 s: %v", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("call ended %s after the hang-up, want within the INVITE timeout (500 ms)", took)
	}
	if r := call.Result(); r.Outcome != sip.OutcomeCanceled || r.RingAt.IsZero() {
		t.Errorf("result %+v", r)
	}
	if st := o.Trunks()[0]; st.Faults == 0 {
		t.Errorf("a trunk that ignored the CANCEL counted no fault: %+v", st)
	}
}
