package storage

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestPolicyFactsAcrossCampaigns reads a number's facts from a real SQLite file:
// calls in another campaign count (AMD and abandon included, never-placed ones
// not), the last abandon, consent from the import, the last inbound message, and
// an opt-out that puts the number on the list for every campaign.
func TestPolicyFactsAcrossCampaigns(t *testing.T) { eachBackend(t, testPolicyFactsAcrossCampaigns) }

func testPolicyFactsAcrossCampaigns(t *testing.T, be backend) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	d, _ := be.open(t, Options{Now: func() time.Time { return now }})
	a, b := newCampaign(t, d), newCampaign(t, d)
	const phone, wa = "+5511987650001", "+5511987650002"
	consented := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	importOne := func(campaignID int64, c campaigns.Contact) campaigns.Contact {
		t.Helper()
		batch, err := d.BeginImport(ctx, tester, campaignID)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := batch.Add(ctx, c); r != "" || err != nil {
			t.Fatalf("import: %q %v", r, err)
		}
		if _, err := batch.Finish(ctx, nil); err != nil {
			t.Fatal(err)
		}
		list, _, err := d.ListContacts(ctx, campaignID, ContactFilter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("contacts: %v %v", list, err)
		}
		return list[0]
	}
	inA := importOne(a.ID, campaigns.Contact{Phone: phone})
	inB := importOne(b.ID, campaigns.Contact{Phone: phone, WhatsApp: wa, Consent: &consented})

	// Campaign A: an AMD hang-up, an abandon, a busy, a call never placed, a
	// number that does not exist, a trunk that failed (or died) before any ringing
	// and one that failed (or died) after the phone rang; one call eight days ago.
	outcomes := []struct {
		ago     time.Duration
		outcome campaigns.Outcome
		rang    bool
	}{{8 * 24 * time.Hour, campaigns.OutcomeNoAnswer, true}, {3 * time.Hour, campaigns.OutcomeMachine, true}, {2 * time.Hour, campaigns.OutcomeAbandoned, true},
		{time.Hour, campaigns.OutcomeBusy, false}, {50 * time.Minute, campaigns.OutcomeTrunkFault, true}, {40 * time.Minute, campaigns.OutcomeTrunkFault, false},
		{38 * time.Minute, campaigns.OutcomeTrunkDown, true}, {37 * time.Minute, campaigns.OutcomeTrunkDown, false},
		{35 * time.Minute, campaigns.OutcomeInvalidNumber, false}, {30 * time.Minute, campaigns.OutcomeNoChannel, false}}
	for _, o := range outcomes {
		now = time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC).Add(-o.ago)
		at, err := d.StartAttempt(ctx, inA.ID, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		at.State, at.Outcome = "ended", string(o.outcome)
		if o.rang {
			rang := now.Add(time.Second)
			at.RingAt = &rang
		}
		if o.outcome == campaigns.OutcomeAbandoned {
			answered := now.Add(10 * time.Second)
			at.AnswerAt = &answered
		}
		if err := d.FinishAttempt(ctx, at, backToPending); err != nil {
			t.Fatal(err)
		}
	}
	now = time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	if err := d.SaveWAMessage(ctx, WAMessage{ContactID: inB.ID, Direction: "in", WAID: "wamid.1", Phone: wa, Type: "text", Body: "oi", At: now.Add(-5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	f, err := d.PolicyFacts(ctx, inB.ID, phone, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{now.Add(-3 * time.Hour), now.Add(-2 * time.Hour), now.Add(-time.Hour), now.Add(-50 * time.Minute), now.Add(-38 * time.Minute)}
	if !slices.EqualFunc(f.NumberAttempts, want, time.Time.Equal) {
		t.Errorf("number attempts %v, want %v", f.NumberAttempts, want)
	}
	if wantAbandon := now.Add(-2*time.Hour + 10*time.Second); !f.LastAbandon.Equal(wantAbandon) {
		t.Errorf("last abandon %v, want %v", f.LastAbandon, wantAbandon)
	}
	if !f.Consent.Equal(consented) {
		t.Errorf("consent %v, want %v", f.Consent, consented)
	}
	if !f.LastInbound.Equal(now.Add(-5 * time.Hour)) {
		t.Errorf("last inbound %v", f.LastInbound)
	}
	if f.DoNotCall || f.OptedOut || f.Permission != campaigns.PermissionUnknown {
		t.Errorf("facts %+v", f)
	}
	// The WhatsApp number was never called.
	if fw, err := d.PolicyFacts(ctx, inB.ID, wa, now); err != nil || len(fw.NumberAttempts) != 0 || !fw.LastAbandon.IsZero() {
		t.Errorf("facts of the WhatsApp number: %+v %v", fw, err)
	}
	// Campaign A's contact has no consent recorded.
	if fa, err := d.PolicyFacts(ctx, inA.ID, "", now); err != nil || !fa.Consent.IsZero() || len(fa.NumberAttempts) != 5 {
		t.Errorf("facts of A's contact: %+v %v", fa, err)
	}

	fresh, err := d.OptOut(ctx, tester, []string{wa}, OptOutWhatsAppReply)
	if err != nil || !slices.Equal(fresh, []string{wa}) {
		t.Fatalf("opt out: %v %v", fresh, err)
	}
	if fresh, err := d.OptOut(ctx, tester, []string{wa}, OptOutWhatsAppReply); err != nil || len(fresh) != 0 {
		t.Fatalf("second opt out: %v %v", fresh, err)
	}
	f, err = d.PolicyFacts(ctx, inB.ID, phone, now)
	if err != nil || !f.DoNotCall || !f.OptedOut {
		t.Fatalf("after opt-out: %+v %v", f, err)
	}
	if c, _ := d.GetContact(ctx, inB.ID); c.Status != campaigns.ContactDoNotCall {
		t.Errorf("opted-out contact is %q", c.Status)
	}
	if c, _ := d.GetContact(ctx, inA.ID); c.Status != campaigns.ContactPending {
		t.Errorf("other number's contact is %q", c.Status)
	}
	if blocked, _ := d.IsDNC(ctx, a.ID, wa); !blocked {
		t.Error("opted-out number is not on the global list")
	}

	next := now.Add(time.Hour)
	r := PolicyRefusal{ContactID: inB.ID, CampaignID: b.ID, Action: campaigns.ActionTemplate,
		Reasons: []campaigns.Reason{campaigns.ReasonDoNotCall, campaigns.ReasonOptedOut}, At: now, NextAllowedAt: &next}
	if err := d.RecordPolicyRefusal(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := d.PolicyRefusals(ctx, inB.ID)
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Reasons, r.Reasons) || got[0].Action != r.Action ||
		!got[0].At.Equal(now) || got[0].NextAllowedAt == nil || !got[0].NextAllowedAt.Equal(next) {
		t.Fatalf("refusals %+v %v", got, err)
	}
	if _, err := d.PolicyFacts(ctx, 999999, "", now); err == nil {
		t.Error("facts of a missing contact: no error")
	}
}

// backToPending puts the contact back where it was, pending, after a seeded attempt.
func backToPending(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
	pos.Status = campaigns.ContactPending
	return pos, nil
}
