package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestInboundCallsAreAttemptsOfTheirOwn: an unknown caller becomes a contact of
// the inbound queue's campaign (done, so it is not dialled), once; the call
// claims it as an inbound attempt, which the gate's facts report while it is
// open and which never counts against the number's call limits; a second claim
// while it is open is a conflict; the queue's figures count the answered and
// the missed calls and the longest wait.
func TestInboundCallsAreAttemptsOfTheirOwn(t *testing.T) {
	eachBackend(t, testInboundCallsAreAttemptsOfTheirOwn)
}

func testInboundCallsAreAttemptsOfTheirOwn(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	const phone = "+5511987650301"
	dc, err := d.InboundContact(ctx, c.ID, phone)
	if err != nil || dc.Contact.Phone != phone || dc.Contact.WhatsApp != phone || dc.Contact.Status != campaigns.ContactDone {
		t.Fatalf("inbound contact %+v, %v", dc, err)
	}
	again, err := d.InboundContact(ctx, c.ID, phone)
	if err != nil || again.Contact.ID != dc.Contact.ID {
		t.Fatalf("second call's contact %+v, %v; want the same contact %d", again, err, dc.Contact.ID)
	}
	if _, err := d.InboundContact(ctx, c.ID, ""); err == nil {
		t.Error("an empty number was taken")
	}
	base := time.Now()
	missed := func(at time.Time, wait time.Duration, outcome campaigns.Outcome, connect bool) {
		t.Helper()
		a, err := d.StartInboundAttempt(ctx, dc.Contact.ID, campaigns.ChannelWhatsAppCall, 1)
		if err != nil || a.Direction != DirectionInbound {
			t.Fatalf("inbound attempt %+v, %v", a, err)
		}
		if _, err := d.StartInboundAttempt(ctx, dc.Contact.ID, campaigns.ChannelWhatsAppCall, 1); !errors.Is(err, ErrConflict) {
			t.Errorf("second claim while the call is open: %v, want a conflict", err)
		}
		f, err := d.PolicyFacts(ctx, dc.Contact.ID, "", at)
		if err != nil || !f.OnInboundCallUntil.Equal(at.Add(campaigns.InboundRecheck)) || len(f.NumberAttempts) != 0 {
			t.Errorf("facts during the inbound call %+v, %v", f, err)
		}
		answer, end := at, at.Add(wait)
		a.State, a.Outcome, a.AnswerAt, a.EndAt = "ended", string(outcome), &answer, &end
		if !connect {
			// Left the queue after 30 s for the apology, which took the rest.
			a.Detail = []byte(`{"reason":"no agent within the longest wait","waited_ms":30000}`)
		}
		if connect {
			a.ConnectAt = &end
			a.EndAt = new(time.Time)
			*a.EndAt = end.Add(time.Minute)
		}
		move := func(ct campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return campaigns.Apply(campaigns.DefaultLadder(), ct, pos, campaigns.OutcomeEvent(outcome), end)
		}
		if err := d.FinishAttempt(ctx, a, move); err != nil {
			t.Fatal(err)
		}
		if f, err := d.PolicyFacts(ctx, dc.Contact.ID, "", at); err != nil || !f.OnInboundCallUntil.IsZero() {
			t.Errorf("facts after the inbound call %+v, %v", f, err)
		}
	}
	missed(base, 40*time.Second, campaigns.OutcomeInboundMissed, false)
	pos, err := d.ContactPosition(ctx, dc.Contact.ID)
	if err != nil || pos.Contact.Status != campaigns.ContactPending || pos.Rung != 0 || pos.NextAttemptAt.UnixMilli() != 0 {
		t.Fatalf("contact after its missed call %+v, %v: want pending first in line", pos, err)
	}
	missed(base.Add(time.Minute), 5*time.Second, campaigns.OutcomeConnected, true)
	as, err := d.ListAttempts(ctx, dc.Contact.ID)
	if err != nil || len(as) != 2 || as[0].Direction != DirectionInbound {
		t.Fatalf("attempts %+v, %v", as, err)
	}
	qs, err := d.InboundQueues(ctx, base.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if q := qs[c.ID]; q.Answered != 1 || q.Abandoned != 1 || q.LongestWait != 30*time.Second {
		t.Errorf("queue %+v, want 1 answered, 1 abandoned, longest wait 30 s", q)
	}
	// An outbound attempt keeps its direction, and the stats of dials ignore inbound ones.
	st, err := d.CampaignStats(ctx, c.ID)
	if err != nil || st.Dials != 0 || st.Connected != 0 {
		t.Errorf("campaign stats count inbound calls as dials: %+v, %v", st, err)
	}
}
