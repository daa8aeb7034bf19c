// Package storetest sets the database up as a scene of the engine's tests needs
// it, through the store's own calls.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// EndJourney ends a contact's journey as reached: one connected SIP attempt,
// moved along its campaign's ladder, so the campaign does not dial it again.
func EndJourney(ctx context.Context, t testing.TB, db *storage.DB, contactID int64) {
	t.Helper()
	ct, err := db.GetContact(ctx, contactID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.GetCampaign(ctx, ct.CampaignID)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.StartAttempt(ctx, contactID, campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.State, a.Outcome, a.AnswerAt, a.EndAt = "ended", string(campaigns.OutcomeConnected), &now, &now
	if err := db.FinishAttempt(ctx, a, func(ct campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
		return campaigns.Apply(c.Ladder, ct, pos, campaigns.OutcomeEvent(campaigns.OutcomeConnected), now)
	}); err != nil {
		t.Fatal(err)
	}
}
