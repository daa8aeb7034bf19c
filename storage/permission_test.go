package storage

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestPolicyFactsPermissionRequests: the call permission requests sent to the
// person's WhatsApp number in the last 7 days count, the ones before their last
// connected WhatsApp call do not (it resets Meta's limits), and Meta's own
// bound for the next request is read back.
func TestPolicyFactsPermissionRequests(t *testing.T) {
	eachBackend(t, testPolicyFactsPermissionRequests)
}

func testPolicyFactsPermissionRequests(t *testing.T, be backend) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	d, _ := be.open(t, Options{Now: func() time.Time { return now }})
	c := newCampaign(t, d)
	const phone, wa = "+5511987650011", "+5511987650012"
	batch, err := d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := batch.Add(ctx, campaigns.Contact{Phone: phone, WhatsApp: wa}); r != "" || err != nil {
		t.Fatalf("import: %q %v", r, err)
	}
	if _, err := batch.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list, _, err := d.ListContacts(ctx, c.ID, ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts: %v %v", list, err)
	}
	ct := list[0]
	for _, ago := range []time.Duration{8 * 24 * time.Hour, 3 * 24 * time.Hour, 2 * time.Hour} {
		if err := d.RecordPermissionRequest(ctx, ct.ID, wa, now.Add(-ago)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordPermissionRequest(ctx, ct.ID, "+5511900000000", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	facts := func() campaigns.Facts {
		t.Helper()
		f, err := d.PolicyFacts(ctx, ct.ID, wa, now)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if got, want := facts().PermissionRequests, []time.Time{now.Add(-3 * 24 * time.Hour), now.Add(-2 * time.Hour)}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("requests %v, want %v", got, want)
	}

	// A WhatsApp call connected a day ago resets the count.
	now = now.Add(-24 * time.Hour)
	at, err := d.StartAttempt(ctx, ct.ID, campaigns.ChannelWhatsAppCall, 0)
	if err != nil {
		t.Fatal(err)
	}
	answered := now.Add(5 * time.Second)
	at.State, at.Outcome, at.AnswerAt = "ended", string(campaigns.OutcomeConnected), &answered
	if err := d.FinishAttempt(ctx, at, backToPending); err != nil {
		t.Fatal(err)
	}
	now = now.Add(24 * time.Hour)
	if got, want := facts().PermissionRequests, []time.Time{now.Add(-2 * time.Hour)}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("requests after a connected call %v, want %v", got, want)
	}

	if f := facts(); !f.PermissionNextRequest.IsZero() {
		t.Errorf("Meta's bound %v before any was set", f.PermissionNextRequest)
	}
	bound := now.Add(5 * time.Hour)
	if err := d.SetPermissionNextRequest(ctx, wa, bound); err != nil {
		t.Fatal(err)
	}
	if f := facts(); !f.PermissionNextRequest.Equal(bound) {
		t.Errorf("Meta's bound %v, want %v", f.PermissionNextRequest, bound)
	}
	if err := d.SetPermissionNextRequest(ctx, wa, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if f := facts(); !f.PermissionNextRequest.IsZero() {
		t.Errorf("Meta's bound %v after it was lifted", f.PermissionNextRequest)
	}
}
