package dialer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
	"github.com/turbina-dialer/turbina/storage"
)

// keepAnswered stores n attempts a person answered in the hour before at, the first
// abandoned of them abandoned, through the storage API the engine writes with.
func keepAnswered(t *testing.T, store *storage.DB, contacts []campaigns.Contact, at time.Time, n, abandoned int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		ct := contacts[i%len(contacts)]
		a, err := store.StartAttempt(ctx, ct.ID, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		answer := at.Add(-time.Duration(n-i) * 10 * time.Second)
		end := answer.Add(5 * time.Second)
		a.State, a.Outcome, a.AnswerAt, a.EndAt = "ended", string(campaigns.OutcomeConnected), &answer, &end
		if i < abandoned {
			a.Outcome = string(campaigns.OutcomeAbandoned)
		}
		if err := store.UpdateAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := store.MoveContact(ctx, ct.ID, pendingAgain); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestartResumesAbandonGuard is the kill -9 drill: a predictive campaign spent its
// hour's abandonment allowance, the process dies without a word (the first database
// handle is never closed), and an engine opened on the same SQLite file starts the
// campaign's run again. Its pacer, taught the same ten minutes of answers afterwards,
// must keep dialling progressively, where a pacer that forgot the hour dials ahead.
func TestRestartResumesAbandonGuard(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	crash := time.Date(2025, 3, 3, 10, 20, 0, 0, time.UTC)
	before, err := storage.Open(ctx, path, storage.Options{Now: func() time.Time { return crash.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { before.Close() })
	c := campaigns.Campaign{Name: "edge", CallerID: "+551130000000", Ladder: sipOnlyLadder(1)}
	c.ApplyDefaults()
	c.Pacing.Mode, c.State = campaigns.PacingPredictive, campaigns.StateRunning
	c.Window = campaigns.Window{Start: 0, End: 24*60 - 1}
	if err := before.CreateCampaign(ctx, tester, &c); err != nil {
		t.Fatal(err)
	}
	b, err := before.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := b.Add(ctx, campaigns.Contact{Phone: fmt.Sprintf("+55119876500%02d", i), Timezone: "UTC", Line: i + 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	contacts, _, err := before.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 100 people answered since 10:00 and 12 abandoned: 1.5 × 3 % of the answers the
	// hour will have after the lesson below (300) is 13.5, less the spare: spent.
	keepAnswered(t, before, contacts, crash, 100, 12)

	tests := []struct {
		name            string
		resume          bool
		wantProgressive bool
	}{
		{"resumed from the file: the hour stays spent", true, true},
		{"forgetting the hour: dials ahead", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			after, err := storage.Open(ctx, path, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { after.Close() })
			e := New(after, nil, NewAgents(), Config{Now: func() time.Time { return crash }}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			stored, err := after.GetCampaign(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			r := newRun(e, stored)
			if tc.resume {
				if err := r.resumePacing(ctx); err != nil {
					t.Fatal(err)
				}
			}
			teachFrom(t, r, crash)
			now := crash.Add(10 * time.Minute)
			ready := []pacing.Agent{{State: pacing.AgentReady, Since: now, Channel: "sip"}}
			// Seven more are near the end of their 30 s wrap-ups: a predictive pacer dials for them.
			for j := range 7 {
				ready = append(ready, pacing.Agent{State: pacing.AgentWrapUp, Since: now.Add(-time.Duration(22+j) * time.Second), Channel: "sip"})
			}
			snap := pacing.Snapshot{Agents: ready, Channel: "sip"}
			n := r.pacer.Decide(now, snap)
			r.publishPacerViews()
			v := (*r.pacerViews.Load())[0]
			t.Logf("dials %d, view %+v", n, v)
			if v.Progressive != tc.wantProgressive {
				t.Errorf("progressive %v (threshold %g), want %v", v.Progressive, v.Threshold, tc.wantProgressive)
			}
			if prog := pacing.ProgressiveDials(snap); tc.wantProgressive && n > prog {
				t.Errorf("%d dials at the cap, want at most %d (progressive)", n, prog)
			}
			if !tc.wantProgressive && n <= pacing.ProgressiveDials(snap) {
				t.Errorf("%d dials: the pacer that forgot should dial ahead, or the drill proves nothing", n)
			}
		})
	}
}

// teachFrom feeds a run's pacer ten minutes from start, a dial ending every second: a
// person answers one dial in three after 4 to 8 s of ringing, talks for 90 s and wraps
// up for 30 s, and nobody is abandoned; the other dials ring out at 40 s.
func teachFrom(t *testing.T, r *run, start time.Time) {
	t.Helper()
	agents := make([]pacing.Agent, 8)
	for i := range 600 {
		now := start.Add(time.Duration(i) * time.Second)
		o := pacing.Observation{At: now, Kind: pacing.NoAnswer, Channel: "sip", Duration: 40 * time.Second}
		if i%3 == 0 {
			o.Kind, o.Duration = pacing.Human, time.Duration(4+i%5)*time.Second
			r.pacer.Observe(pacing.Observation{At: now, Kind: pacing.TalkEnded, Channel: "sip", Duration: 90 * time.Second})
			r.pacer.Observe(pacing.Observation{At: now, Kind: pacing.WrapEnded, Channel: "sip", Duration: 30 * time.Second})
		}
		r.pacer.Observe(o)
		for j := range agents {
			agents[j] = pacing.Agent{State: pacing.AgentTalking, Since: now.Add(-time.Duration(j*11) * time.Second), Channel: "sip"}
		}
		r.pacer.Decide(now, pacing.Snapshot{Agents: agents, Channel: "sip"})
	}
}

// pendingAgain puts a contact back in the list after a stored attempt, so the next
// one can claim it, as a retry would.
func pendingAgain(_ campaigns.Contact, p campaigns.Position) (campaigns.Position, error) {
	p.Status = campaigns.ContactPending
	return p, nil
}
