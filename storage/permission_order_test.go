package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestPermissionWritesAreTimeOrdered: a contact's call permission is written
// by event time in one statement. "requested" as of a request's second yields
// to a reply recorded in that second or later; a reply older than what is
// recorded (a reply or a request) is not written, and says so.
func TestPermissionWritesAreTimeOrdered(t *testing.T) {
	eachBackend(t, testPermissionWritesAreTimeOrdered)
}

func testPermissionWritesAreTimeOrdered(t *testing.T, be backend) {
	ctx := context.Background()
	req := time.Date(2026, 12, 7, 10, 0, 0, 700e6, time.UTC) // 10:00:00.700
	for _, tc := range []struct {
		name  string
		write func(d *DB, id int64) (bool, error)
		// The permission recorded before: none, or a reply at replyAt.
		replyAt time.Time
		want    string
		wrote   bool
	}{
		{name: "requested, nothing recorded", want: PermissionRequested, wrote: true,
			write: func(d *DB, id int64) (bool, error) { return d.SetWhatsAppPermissionRequested(ctx, id, req) }},
		{name: "requested after a reply in its second", replyAt: req.Truncate(time.Second), want: PermissionGranted,
			write: func(d *DB, id int64) (bool, error) { return d.SetWhatsAppPermissionRequested(ctx, id, req) }},
		{name: "requested after a newer reply", replyAt: req.Add(time.Minute), want: PermissionGranted,
			write: func(d *DB, id int64) (bool, error) { return d.SetWhatsAppPermissionRequested(ctx, id, req) }},
		{name: "requested after an older reply", replyAt: req.Add(-time.Second), want: PermissionRequested, wrote: true,
			write: func(d *DB, id int64) (bool, error) { return d.SetWhatsAppPermissionRequested(ctx, id, req) }},
		{name: "reply older than the one recorded", replyAt: req, want: PermissionGranted,
			write: func(d *DB, id int64) (bool, error) {
				return d.SetWhatsAppPermissionReply(ctx, id, PermissionReply{State: PermissionDenied, At: req.Add(-time.Second)})
			}},
		{name: "reply as new as the one recorded", replyAt: req, want: PermissionDenied, wrote: true,
			write: func(d *DB, id int64) (bool, error) {
				return d.SetWhatsAppPermissionReply(ctx, id, PermissionReply{State: PermissionDenied, At: req})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := be.open(t, Options{})
			c := newCampaign(t, d)
			b, err := d.BeginImport(ctx, tester, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Add(ctx, campaigns.Contact{Phone: "+5511987650001", Line: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Finish(ctx, nil); err != nil {
				t.Fatal(err)
			}
			list, _, err := d.ListContacts(ctx, c.ID, ContactFilter{})
			if err != nil || len(list) != 1 {
				t.Fatalf("contacts %+v, %v", list, err)
			}
			id := list[0].ID
			if !tc.replyAt.IsZero() {
				if ok, err := d.SetWhatsAppPermissionReply(ctx, id, PermissionReply{State: PermissionGranted, At: tc.replyAt}); err != nil || !ok {
					t.Fatalf("the reply before: %v, %v", ok, err)
				}
			}
			wrote, err := tc.write(d, id)
			if err != nil || wrote != tc.wrote {
				t.Errorf("written %v (%v), want %v", wrote, err, tc.wrote)
			}
			if state, _, err := d.WhatsAppPermission(ctx, id); err != nil || state != tc.want {
				t.Errorf("permission %q (%v), want %q", state, err, tc.want)
			}
			if _, err := tc.write(d, id+1); !errors.Is(err, ErrNotFound) {
				t.Errorf("write to no contact: %v, want not found", err)
			}
		})
	}
}
