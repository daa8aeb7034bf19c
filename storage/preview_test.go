package storage

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

func TestSkipContactKeepsTheSkipAndDefersOnlyAPendingContact(t *testing.T) {
	d, _ := openTestDB(t)
	ctx := context.Background()
	c := newCampaign(t, d)
	b, _ := d.BeginImport(ctx, tester, c.ID)
	b.Add(ctx, campaigns.Contact{Phone: "+5511987650001"})
	b.Add(ctx, campaigns.Contact{Phone: "+5511987650002"})
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list, _, _ := d.ListContacts(ctx, c.ID, ContactFilter{})
	pending, done := list[0], list[1]
	if err := d.SetContactStatus(ctx, done.ID, campaigns.ContactDone); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	next := at.Add(30 * time.Minute)
	for _, tc := range []struct {
		contact  campaigns.Contact
		wantNext bool
	}{{pending, true}, {done, false}} {
		s := PreviewSkip{ContactID: tc.contact.ID, CampaignID: c.ID, Reason: "other", Note: "fala só à tarde", At: at}
		if err := d.SkipContact(ctx, &s, next); err != nil {
			t.Fatal(err)
		}
		if s.ID == 0 {
			t.Error("skip without an id")
		}
		skips, err := d.ListSkips(ctx, tc.contact.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(skips) != 1 || skips[0].Reason != "other" || skips[0].Note != "fala só à tarde" || !skips[0].At.Equal(at) || skips[0].AgentID != 0 {
			t.Errorf("contact %d skips %+v", tc.contact.ID, skips)
		}
		pos, err := d.ContactPosition(ctx, tc.contact.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := pos.NextAttemptAt.Equal(next); got != tc.wantNext {
			t.Errorf("contact %s (%s) due %s after the skip; deferred %v, want %v", tc.contact.Phone, pos.Contact.Status, pos.NextAttemptAt, got, tc.wantNext)
		}
	}
	if skips, err := d.ListSkips(ctx, 999); err != nil || len(skips) != 0 {
		t.Errorf("skips of an unknown contact: %+v %v", skips, err)
	}
}
