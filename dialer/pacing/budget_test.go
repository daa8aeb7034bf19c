package pacing

import (
	"math"
	"math/rand/v2"
	"testing"
)

// script feeds a budget n answers and then k abandons, spread evenly over [from, to).
func script(t *testing.T, b *budget, from, to float64, n, k int) {
	t.Helper()
	for i := range n {
		b.observe(from+(to-from)*float64(i)/float64(n), Human)
	}
	for i := range k {
		b.observe(from+(to-from)*float64(i)/float64(max(k, 1)), Abandoned)
	}
}

// TestHourGuard checks the hourly guard on scripted hours: the threshold is zero whenever the
// hour would end over 1.5 × target should the pacer keep dialling, here because the answers
// still to come cannot pay for the abandons spent.
func TestHourGuard(t *testing.T) {
	const target = 0.03
	tests := []struct {
		name     string
		answered int // in the first half hour, with all agents busy
		abandons int
		active   int // agents taking calls at the half hour
		waiting  int
		zero     bool
	}{
		// 0.045 × 200 = 9 abandons are paid for already; 20 agents bring ~70 more answers
		// before the hour ends even at progressive speed.
		{"allowance left", 200, 5, 20, 0, false},
		// The same hour, but the team has shrunk to two: 9.6 allowed against 9 spent.
		{"team shrank", 200, 9, 2, 0, true},
		// Nobody left to answer for the rest of the hour: only the answers in hand count.
		{"no agents", 200, 8, 0, 0, true},
		// Two agents left: 9.24 allowed against 7 spent, and the spare.
		{"small team", 200, 7, 2, 0, false},
		// People waiting for an agent may all be lost.
		{"people waiting", 200, 7, 2, 2, true},
		// In a quiet hour the answers to come carry it.
		{"quiet hour", 30, 1, 20, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudget(target)
			b.answered = 1000 // earlier in the run, so that the run guard leaves room
			busy := 20
			for s := 0.0; s < 1800; s += 0.25 {
				b.expose(s, busy)
			}
			script(t, &b, 0, 1800, tc.answered, tc.abandons)
			// Dials ring 20 s on average and a person answers one in five.
			th := b.theta(1800, busy, tc.active, 20/0.2, tc.waiting)
			if (th == 0) != tc.zero {
				t.Errorf("threshold %v, allowance %.2f; want zero: %v", th,
					b.allowance(1800, b.progressiveRate(tc.active, 100)), tc.zero)
			}
		})
	}
}

// TestHourGuardProperty drives a budget with random answers and abandons and checks that
// whenever no more answers are to come (no agent active) and the guard lets the pacer dial,
// the answers in hand pay for the hour's abandons, the people waiting and the spare, at
// 1.5 × target.
func TestHourGuardProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for run := range 50 {
		target := 0.01 + 0.05*r.Float64()
		b := newBudget(target)
		var ans, ab [3]int // per hour of the run
		tt := 0.0
		for tt < 3*3600-1 {
			tt += r.ExpFloat64() * 20
			if tt >= 3*3600 {
				break
			}
			h := int(tt / 3600)
			switch {
			case r.Float64() < 0.05:
				b.observe(tt, Abandoned)
				ab[h]++
			default:
				b.observe(tt, Human)
				ans[h]++
			}
			waiting := r.IntN(3)
			th := b.theta(tt, 10, 0, 100, waiting)
			if th > 0 && float64(ab[h]+waiting)+hourSpare >= hourLimit*target*float64(ans[h]) {
				t.Fatalf("run %d at %.0f s: threshold %v with %d abandons, %d waiting, %d answered at target %.3f",
					run, tt, th, ab[h], waiting, ans[h], target)
			}
		}
	}
}

// TestHourGuardNoWindup checks that the integrator stands still while the guard holds the
// threshold down, so that it does not let go with a burst, and that a new hour restores the
// allowance.
func TestHourGuardNoWindup(t *testing.T) {
	b := newBudget(0.03)
	script(t, &b, 0, 600, 100, 10)
	if th := b.theta(600, 0, 0, 100, 0); th != 0 {
		t.Fatalf("threshold %v after 10 abandons of 100", th)
	}
	before := b.logTheta
	script(t, &b, 600, 3600, 300, 0)
	if b.logTheta != before {
		t.Errorf("integrator moved from %v to %v while held down", before, b.logTheta)
	}
	if th := b.theta(3600, 10, 50, 100, 0); th <= 0 || math.Abs(th-math.Exp(before)) > 1e-12 {
		t.Errorf("threshold %v in a new hour, want %v", th, math.Exp(before))
	}
}

// TestRunGuard checks that the threshold is zero whenever the run's abandons so far, the
// people waiting and the spare would take the run over target, however much the hour allows.
func TestRunGuard(t *testing.T) {
	tests := []struct {
		name               string
		answered, abandons int
		waiting            int
		zero               bool
	}{
		{"no answer yet", 0, 0, 0, true},
		{"first answers", 10, 0, 0, true},
		{"enough answers for the spare", 60, 0, 0, false},
		{"one abandon paid for", 100, 1, 0, false},
		{"at target", 100, 3, 0, true},
		{"people waiting", 100, 1, 2, true},
		{"long run", 2000, 58, 0, false},
		{"long run at target", 2000, 60, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudget(0.03)
			// Ten agents busy for most of an hour, and answers to come for the rest of it:
			// the hour leaves room wherever the run does.
			for s := 0.0; s < 3000; s += 0.25 {
				b.expose(s, 10)
			}
			script(t, &b, 0, 3000, tc.answered, tc.abandons)
			th := b.theta(3000, 10, 10, 20, tc.waiting)
			if (th == 0) != tc.zero {
				t.Errorf("threshold %v; want zero: %v", th, tc.zero)
			}
		})
	}
}

// TestRunGuardProperty drives a budget with random answers and abandons and checks that
// whenever the guard lets the pacer dial, the answers so far pay for the abandons so far,
// the people waiting and the spare, at target.
func TestRunGuardProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for run := range 50 {
		target := 0.01 + 0.05*r.Float64()
		b := newBudget(target)
		ans, ab := 0, 0
		for tt := 0.0; tt < 4*3600; tt += r.ExpFloat64() * 10 {
			if r.Float64() < 1.5*target {
				b.observe(tt, Abandoned)
				ab++
			} else {
				b.observe(tt, Human)
				ans++
			}
			waiting := r.IntN(2)
			if th := b.theta(tt, 10, 10, 20, waiting); th > 0 && float64(ab+waiting)+runSpare >= target*float64(ans) {
				t.Fatalf("run %d at %.0f s: threshold %v with %d abandons and %d waiting of %d answered at target %.3f",
					run, tt, th, ab, waiting, ans, target)
			}
		}
	}
}
