package dialer

import (
	"context"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/dialer/pacing"
)

// resumePacing starts the run's pacer from the abandonment the database keeps: the
// current clock hour's answers and abandons for the hourly guard, the rolling 24 h
// (Ofcom's period) for the run guard. A run that starts after a crash or a restart in
// the middle of an hour spent at its cap thus does not get a fresh hour's allowance, as
// a pacer that forgot would: the law counts the campaign's calls, not the process's.
func (r *run) resumePacing(ctx context.Context) error {
	now := r.e.cfg.Now()
	loc, err := time.LoadLocation(r.campaign.Schedule.Timezone)
	if err != nil {
		loc = time.UTC
	}
	a, err := r.e.store.Abandonment(ctx, r.id, now, loc)
	if err != nil {
		return fmt.Errorf("resume pacing of campaign %d: %w", r.id, err)
	}
	r.pacer.Resume(pacing.History{
		At:            now,
		HourElapsed:   now.Sub(a.HourStart),
		HourAnswered:  a.Hour.Answered,
		HourAbandoned: a.Hour.Abandoned,
		Answered:      a.Hours24.Answered,
		Abandoned:     a.Hours24.Abandoned,
	})
	return nil
}
