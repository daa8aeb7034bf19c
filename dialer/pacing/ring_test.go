package pacing

import (
	"math/rand/v2"
	"testing"
	"time"
)

// ringLaw is how dials on a simulated channel end: a person answers with probability
// human after a ring drawn from answer, a fifth as many machines answer alike, and the
// rest ring out at ringOut.
type ringLaw struct {
	human   float64
	answer  drawFunc
	ringOut float64
}

// dialFor returns how a dial ends when it is given up after cutoff seconds (0: never).
func (l ringLaw) dialFor(r *rand.Rand, cutoff float64) (ObservationKind, float64) {
	kind, d := NoAnswer, l.ringOut
	switch u := r.Float64(); {
	case u < l.human:
		kind, d = Human, min(l.answer(r), l.ringOut)
	case u < 1.2*l.human:
		kind, d = Machine, min(l.answer(r), l.ringOut)
	}
	if cutoff > 0 && d > cutoff {
		return NoAnswer, cutoff
	}
	return kind, d
}

// rate returns people answered per second of line when dials are given up at c seconds,
// by numerical integration of the law itself.
func (l ringLaw) rate(c float64) float64 {
	const n = 100000
	r := rand.New(rand.NewPCG(9, 9))
	people, line := 0.0, 0.0
	for range n {
		a := l.answer(r)
		if a <= c && a <= l.ringOut {
			people += l.human
		}
		// Of each draw: human people, 0.2·human machines, the rest ring out.
		line += 1.2*l.human*min(a, c, l.ringOut) + (1-1.2*l.human)*min(c, l.ringOut)
	}
	return people / line
}

// wantNearBest fails t unless dials given up at got seconds yield people within 2 % of
// the best rate over cutoffs of at least floor.
func wantNearBest(t *testing.T, l ringLaw, got, floor float64) {
	t.Helper()
	top, at := 0.0, 0.0
	for c := floor; c <= l.ringOut; c += 0.5 {
		if y := l.rate(c); y > top {
			top, at = y, c
		}
	}
	if got < floor {
		t.Fatalf("ring timeout %.2f s under the floor %.0f s", got, floor)
	}
	if y := l.rate(got); y < 0.98*top {
		t.Fatalf("ring timeout %.2f s yields %.4f people per second of line; %.2f s yields %.4f", got, y, at, top)
	}
}

// learn runs a predictive Controller over dials placed once a second for seconds seconds,
// from time from, each given up at the ring timeout the Controller gives at the time.
func learn(c *Controller, r *rand.Rand, l ringLaw, from, seconds float64) {
	s := snapshot(0, 2, 6, 0)
	for i := range int(seconds) {
		now := from + float64(i)
		kind, d := l.dialFor(r, c.RingTimeout("sip").Seconds())
		c.Observe(Observation{At: at(now), Kind: kind, Channel: "sip", Duration: secs(d)})
		for j := range s.Agents {
			s.Agents[j].Since = at(now - float64(j*41%300))
		}
		c.Decide(at(now), s)
	}
}

func TestRingTimeoutChosen(t *testing.T) {
	support := ringLaw{human: 0.45, answer: lognormal(9, 5), ringOut: 25}
	slow := ringLaw{human: 0.45, answer: func(r *rand.Rand) float64 { return 14 + 10*r.Float64() }, ringOut: 25}
	for _, tc := range []struct {
		name  string
		law   ringLaw
		floor time.Duration
	}{
		{"lognormal answers, floor 5 s", support, 5 * time.Second},
		{"lognormal answers, default floor", support, 0},
		{"answers between 14 s and 24 s", slow, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewController(Settings{Mode: Predictive, MinRingTimeout: tc.floor})
			learn(c, rand.New(rand.NewPCG(3, 4)), tc.law, 0, 1800)
			wantNearBest(t, tc.law, c.RingTimeout("sip").Seconds(), c.Settings().MinRingTimeout.Seconds())
		})
	}
}

// TestRingTimeoutFollowsLaterAnswers checks that the cutoff, learned while people answer
// early, grows when they start answering later: the rings it gives up are censored, so it
// must look past itself.
func TestRingTimeoutFollowsLaterAnswers(t *testing.T) {
	c := NewController(Settings{Mode: Predictive, MinRingTimeout: 5 * time.Second})
	r := rand.New(rand.NewPCG(5, 6))
	early := ringLaw{human: 0.45, answer: lognormal(6, 2), ringOut: 40}
	learn(c, r, early, 0, 1800)
	before := c.RingTimeout("sip").Seconds()
	wantNearBest(t, early, before, 5)
	late := ringLaw{human: 0.45, answer: lognormal(16, 4), ringOut: 40}
	learn(c, r, late, 1800, 1800)
	after := c.RingTimeout("sip").Seconds()
	if after <= before {
		t.Fatalf("ring timeout %.2f s with early answers, then %.2f s with later ones", before, after)
	}
	wantNearBest(t, late, after, 5)
}

func TestRingTimeoutSettings(t *testing.T) {
	law := ringLaw{human: 0.45, answer: lognormal(9, 5), ringOut: 25}
	for _, tc := range []struct {
		name string
		set  Settings
		want func(time.Duration) bool
	}{
		{"fixed wins in predictive", Settings{Mode: Predictive, RingTimeout: 40 * time.Second}, func(d time.Duration) bool { return d == 40*time.Second }},
		{"fixed applies to progressive", Settings{Mode: Progressive, RingTimeout: 20 * time.Second}, func(d time.Duration) bool { return d == 20*time.Second }},
		{"progressive leaves it to the caller", Settings{Mode: Progressive}, func(d time.Duration) bool { return d == 0 }},
		{"preview leaves it to the caller", Settings{Mode: Preview}, func(d time.Duration) bool { return d == 0 }},
		{"predictive chooses", Settings{Mode: Predictive}, func(d time.Duration) bool { return d >= DefaultMinRingTimeout && d < 25*time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewController(tc.set)
			if d := c.RingTimeout("sip"); d != tc.set.RingTimeout {
				t.Fatalf("before learning: %v, want the fixed setting or 0", d)
			}
			learn(c, rand.New(rand.NewPCG(1, 2)), law, 0, 600)
			if d := c.RingTimeout("sip"); !tc.want(d) {
				t.Fatalf("ring timeout %v", d)
			}
			if d := c.RingTimeout("whatsapp"); d != tc.set.RingTimeout {
				t.Fatalf("a channel never dialled: %v, want the fixed setting or 0", d)
			}
		})
	}
}
