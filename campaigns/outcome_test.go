package campaigns

import (
	"slices"
	"testing"
)

// TestTrunkOutcomeGroups: the reports and the gate group outcomes by these lists. A
// call a trunk failed or its trunk's death caught was placed (a dial), reached and
// answered no one, and counts against the number's limits only if the phone rang.
func TestTrunkOutcomeGroups(t *testing.T) {
	for _, o := range []Outcome{OutcomeTrunkFault, OutcomeTrunkDown} {
		t.Run(string(o), func(t *testing.T) {
			if o.Reached() || o.Answered() {
				t.Errorf("%s: reached %v, answered %v; want neither", o, o.Reached(), o.Answered())
			}
			if slices.Contains(UnplacedOutcomes(), o) || slices.Contains(UnrungOutcomes(), o) {
				t.Errorf("%s: listed as never placed or never rung; it was placed and may have rung", o)
			}
			if !slices.Contains(RingCountedOutcomes(), o) {
				t.Errorf("%s: not counted by its ring time", o)
			}
			if !slices.Contains(Outcomes(), o) {
				t.Errorf("%s: not among the outcomes", o)
			}
		})
	}
}
