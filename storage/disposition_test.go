package storage

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestAgentsDispositionSurvivesTheCallsEnd: an agent in wrap-up may dispose
// before the engine writes the call's end (the agent is freed first); the end,
// written from the engine's copy of the attempt, which has no disposition,
// keeps the agent's disposition and notes.
func TestAgentsDispositionSurvivesTheCallsEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		d, _ := b.open(t, Options{})
		c := newCampaign(t, d).ID
		ct := addDue(t, d, c, 0, 1, 1000, "pending")[0]
		a, err := d.StartAttempt(ctx, ct, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a.State, a.AnswerAt, a.ConnectAt = "connected", &now, &now
		if err := d.UpdateAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := d.Dispose(ctx, a.ID, "sale", "wants the blue plan", nil); err != nil {
			t.Fatal(err)
		}
		a.State, a.Outcome, a.EndAt = "ended", string(campaigns.OutcomeConnected), &now
		if err := d.FinishAttempt(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		got, err := d.GetAttempt(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Disposition != "sale" || got.Notes != "wants the blue plan" || got.State != "ended" {
			t.Errorf("attempt after the disposition and the end: disposition %q, notes %q, state %q; want sale, the notes, ended",
				got.Disposition, got.Notes, got.State)
		}
	})
}
