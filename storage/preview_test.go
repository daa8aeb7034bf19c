package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

func TestSkipContactKeepsTheSkipWithItsMoveOrNeither(t *testing.T) {
	eachBackend(t, testSkipContactKeepsTheSkipWithItsMoveOrNeither)
}

func testSkipContactKeepsTheSkipWithItsMoveOrNeither(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	b, _ := d.BeginImport(ctx, tester, c.ID)
	b.Add(ctx, campaigns.Contact{Phone: "+5511987650001"})
	b.Add(ctx, campaigns.Contact{Phone: "+5511987650002"})
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list, _, _ := d.ListContacts(ctx, c.ID, ContactFilter{})
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	next := at.Add(30 * time.Minute)
	refused := errors.New("not in the table")
	for _, tc := range []struct {
		name    string
		contact campaigns.Contact
		move    MoveFunc
		wantErr error
	}{
		{"deferred", list[0], func(_ campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			pos.NextAt = next
			return pos, nil
		}, nil},
		{"move refused", list[1], func(_ campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return pos, refused
		}, refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := d.ContactPosition(ctx, tc.contact.ID)
			if err != nil {
				t.Fatal(err)
			}
			s := PreviewSkip{ContactID: tc.contact.ID, CampaignID: c.ID, Reason: "other", Note: "fala só à tarde", At: at}
			if err := d.SkipContact(ctx, &s, tc.move); !errors.Is(err, tc.wantErr) {
				t.Fatalf("skip: %v, want %v", err, tc.wantErr)
			}
			skips, err := d.ListSkips(ctx, tc.contact.ID)
			if err != nil {
				t.Fatal(err)
			}
			after, err := d.ContactPosition(ctx, tc.contact.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != nil {
				// Nothing of a skip whose move failed is kept.
				if len(skips) != 0 || !after.NextAttemptAt.Equal(before.NextAttemptAt) {
					t.Errorf("after a refused move: skips %+v, due %s (was %s)", skips, after.NextAttemptAt, before.NextAttemptAt)
				}
				return
			}
			if s.ID == 0 || len(skips) != 1 || skips[0].Reason != "other" || skips[0].Note != "fala só à tarde" || !skips[0].At.Equal(at) || skips[0].AgentID != 0 {
				t.Errorf("skips %+v (id %d)", skips, s.ID)
			}
			if !after.NextAttemptAt.Equal(next) || after.Contact.Status != campaigns.ContactPending || after.RungAttempts != before.RungAttempts {
				t.Errorf("after the skip: %s due %s with %d attempts, want pending due %s with %d", after.Contact.Status, after.NextAttemptAt, after.RungAttempts, next, before.RungAttempts)
			}
		})
	}
	if skips, err := d.ListSkips(ctx, 999); err != nil || len(skips) != 0 {
		t.Errorf("skips of an unknown contact: %+v %v", skips, err)
	}
}
