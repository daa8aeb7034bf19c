package pacing

import (
	"math"
	"testing"
)

// TestWrapUpMemoryless checks the forecast for agents in a wrap-up whose length is
// exponential, as the warmed campaign's is (mean 15 s): the chance that such an agent is
// free within a time does not depend on how long they have been wrapping up, so the
// forecast must dial on that constant hazard. One that waited for the expected end of
// wrap-up would hold back for an agent who has just started it and count on one who is
// past the mean.
func TestWrapUpMemoryless(t *testing.T) {
	c := warmed(t)
	const now = 3600.0
	c.Decide(at(now), snapshot(now, 0, 1, 0)) // fits the models
	m := c.models["sip"]
	pat := c.settings.Patience.Seconds()
	// Up to the mean, where an hour of calls leaves two hundred wrap-ups or more to learn
	// from. Beyond, the hazard rests on a few: by twice the mean, groups of three ends
	// (minGroupEnds) put it 15 % off.
	for _, e := range []float64{0.5, 5, 10, 15} {
		r := m.wrapRow(e, &c.nodes, pat)
		for k, h := range c.nodes {
			want := 1 - math.Exp(-(h+pat)/15)
			if math.Abs(r[k]-want) > 0.05 {
				t.Errorf("in wrap-up %v s: free within %.1f s + patience with probability %.3f, want %.3f", e, h, r[k], want)
			}
		}
	}
}
