package pacing

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestResumeMatchesUninterrupted cuts random runs at a random instant, as a crash would,
// and starts a new budget from the figures counted before the cut: from then on its
// guards must hold the pacer back exactly when the uninterrupted budget's do. A budget
// started afresh at the cut is checked to differ somewhere, or the test would prove
// nothing.
func TestResumeMatchesUninterrupted(t *testing.T) {
	const target = 0.03
	r := rand.New(rand.NewPCG(3, 5))
	freshDiffers := 0
	for run := range 200 {
		cont := newBudget(target)
		// The cut falls inside the second hour, so the first hour counts only for the run guard.
		cut := 3600 + r.Float64()*3600
		type event struct {
			t    float64
			kind ObservationKind
		}
		var events []event
		for s := 0.0; s < 7200; s += 5 + r.Float64()*20 {
			k := Human
			if r.Float64() < 0.06 {
				k = Abandoned
			}
			events = append(events, event{s, k})
		}
		var hourAns, hourAb, ans, ab int
		hourStart := float64(int(cut/3600)) * 3600
		var resumed, fresh *budget
		for _, e := range events {
			if e.t >= cut && resumed == nil {
				resumed, fresh = new(budget), new(budget)
				*resumed, *fresh = newBudget(target), newBudget(target)
				// The new budget's clock starts at the hour's start, as Resume sets it.
				resumed.resume(cut-hourStart, hourAns, hourAb, ans, ab)
			}
			cont.observe(e.t, e.kind)
			if resumed != nil {
				resumed.observe(e.t-hourStart, e.kind)
				fresh.observe(e.t-cut, e.kind)
				// No agent active: the hour's allowance rests on the answers in hand only,
				// which the restart must not forget.
				want := cont.theta(e.t, 0, 0, 20, 0) == 0
				if got := resumed.theta(e.t-hourStart, 0, 0, 20, 0) == 0; got != want {
					t.Fatalf("run %d at %.0f s (cut %.0f s): resumed guard holds back %v, uninterrupted %v", run, e.t, cut, got, want)
				}
				if (fresh.theta(e.t-cut, 0, 0, 20, 0) == 0) != want {
					freshDiffers++
				}
				continue
			}
			if e.kind == Human {
				ans++
			} else {
				ab++
			}
			if e.t >= hourStart {
				if e.kind == Human {
					hourAns++
				} else {
					hourAb++
				}
			}
		}
	}
	if freshDiffers == 0 {
		t.Fatal("a budget started afresh never differed from the uninterrupted one: the scripts test nothing")
	}
}

// TestControllerResume checks the History a restarted engine hands its pacer: the hour's
// figures count until the hour History describes ends, then only the run's remain, and a
// zero History leaves the controller as new.
func TestControllerResume(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 40, 0, 0, time.UTC)
	tests := []struct {
		name     string
		h        History
		probe    time.Duration // after At
		hourAb   int           // abandons the allowance counts at the probe
		answered float64
	}{
		{"zero history", History{}, 0, 0, 0},
		{"inside the hour", History{At: at, HourElapsed: 40 * time.Minute, HourAnswered: 100, HourAbandoned: 4, Answered: 900, Abandoned: 20}, 19 * time.Minute, 4, 900},
		{"next hour", History{At: at, HourElapsed: 40 * time.Minute, HourAnswered: 100, HourAbandoned: 4, Answered: 900, Abandoned: 20}, 21 * time.Minute, 0, 900},
		{"elapsed clamped", History{At: at, HourElapsed: 2 * time.Hour, HourAnswered: 10, HourAbandoned: 1}, 0, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewController(Settings{Mode: Predictive})
			c.Resume(tc.h)
			if tc.h == (History{}) {
				if c.started || c.budget.answered != 0 {
					t.Fatalf("a zero history changed the controller: started %v answered %v", c.started, c.budget.answered)
				}
				return
			}
			tt := c.secs(at.Add(tc.probe))
			// With no answer to come, the allowance is 1.5 × target × answers − abandons.
			allow := c.budget.allowance(tt, 0)
			wantAns := 0
			if tc.hourAb > 0 {
				wantAns = tc.h.HourAnswered
			}
			want := hourLimit*c.settings.TargetAbandon*float64(wantAns) - float64(tc.hourAb)
			if d := allow - want; d > 1e-9 || d < -1e-9 {
				t.Errorf("allowance %v, want %v", allow, want)
			}
			if c.budget.answered != tc.answered {
				t.Errorf("run guard's answers %v, want %v", c.budget.answered, tc.answered)
			}
		})
	}
}
