package sip

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/media"
)

// TestSRTPHoldResumeWithBaresip: baresip as a carrier that requires SRTP
// (mediaenc=srtp-mand) puts the call on hold and resumes it, each a
// re-INVITE with RTP/SAVP and its keys. Both are answered RTP/SAVP with our
// key, so baresip takes them, and after the resume the audio flows both ways
// through the bridge's relay as before.
func TestSRTPHoldResumeWithBaresip(t *testing.T) {
	carrier := baresiptest.StartCarrier(t, baresiptest.CarrierOptions{User: "34600000001", MediaEnc: "srtp-mand"})
	tc := udpTrunk("carrier", carrier.SIPAddr(), 0)
	tc.SRTP = SRTPRequire
	c := answeredCall(t, baresipOriginator(t, carrier, testConfig(tc)), "34600000001")
	m := c.Media()
	ours := m.localCrypto()
	if ours == nil {
		t.Fatalf("answered as plain RTP: %+v", c.Result())
	}
	conn, _ := m.Detach()
	leg := media.NewUDPLeg(conn, m.RemoteAddr(), media.PCMU)

	waitHeld := func(held bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for m.State().Held != held {
			if time.Now().After(deadline) {
				t.Fatalf("the call never went held=%v: %+v\n%s", held, m.State(), carrier.Output())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	carrier.Command(t, "hold")
	waitHeld(true)
	carrier.Command(t, "resume")
	waitHeld(false)
	if now := m.localCrypto(); now == nil || now.String() != ours.String() {
		t.Errorf("our key after hold and resume: %v, was %v", now, ours)
	}

	sendTone(t, leg, 100)
	sine, frames := hearSine(t, leg, 100, 440)
	if sine < frames*8/10 {
		t.Errorf("after the resume, heard the carrier's 440 Hz tone in %d of %d frames", sine, frames)
	}
	if err := c.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, c, 10*time.Second); r.Outcome != OutcomeAnswered || r.HangupBy != PartyLocal {
		t.Errorf("result %s %q (%s)", r.Outcome, r.HangupBy, r.Reason)
	}
	// baresip prints its counts when its call ends; with srtp-mand it counts
	// only packets its SRTP layer authenticated and passed on, and during the hold we
	// sent none (it was sendonly), so these came after the resume. (Its
	// decode recording does not survive a hold within the same second.)
	sent, received := carrier.RTPStats(t, 10*time.Second)
	if received < 90 || sent < 100 {
		t.Errorf("baresip sent %d and received %d packets, want at least 100 and 90 of our tone", sent, received)
	}
}
