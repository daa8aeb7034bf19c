package pacing

import "math"

// budget steers the predictive pacer's risk threshold from the abandonment measured so far.
//
// The threshold is the probability, accepted for the last dial placed, that the person who
// answers it finds no agent. Its logarithm is an integrator: every person answered raises it
// by gain × aim, every abandon lowers it by gain, so over the run abandoned/answered settles
// at aim. The aim sits under the target by one standard deviation of the abandon count
// expected so far (small campaigns answer few calls, and their rate is noisy, so they aim
// lower). An hourly guard on a sliding hour scales the threshold down to zero as the hour's
// allowance of 1.5 × target is spent, which turns predictive into progressive.
type budget struct {
	target   float64
	logTheta float64
	answered float64
	start    float64
	started  bool

	minute int64 // newest slot of the sliding hour
	slots  [60]struct{ answered, abandoned int }
}

const (
	// budgetGain is how far, in log units, one abandon moves the threshold.
	budgetGain = 0.2
	// aimZ is how many standard deviations of the abandon count the aim keeps under target.
	aimZ = 1.0
	// The threshold's range: at the bottom predictive is progressive in all but name.
	thetaMin = 1e-4
	thetaMax = 0.5
	// hourLimit is the worst whole hour allowed, as a multiple of the target.
	hourLimit = 1.5
	// hourSpare is how many abandons the hourly guard keeps in hand: abandons come in bursts
	// when a wave of answers meets busy agents.
	hourSpare = 1.0
	// hourRamp is how many spare abandons the hourly guard wants before it lets the
	// threshold act in full.
	hourRamp = 2.0
)

func newBudget(target float64) budget {
	return budget{target: target, logTheta: math.Log(target)}
}

func (b *budget) advance(t float64) {
	if !b.started {
		b.started, b.start = true, t
		b.minute = int64(math.Floor(t / 60))
		return
	}
	m := int64(math.Floor(t / 60))
	if m <= b.minute {
		return
	}
	for i := b.minute + 1; i <= m && i <= b.minute+60; i++ {
		b.slots[i%60] = struct{ answered, abandoned int }{}
	}
	b.minute = m
}

func (b *budget) aim() float64 {
	a := b.target - aimZ*math.Sqrt(b.target/max(b.answered, 50))
	return max(a, b.target/3)
}

// hour returns the abandons of the sliding hour and its answers projected to a whole hour.
func (b *budget) hour(t float64) (answered, abandoned float64) {
	b.advance(t)
	var ans, ab int
	for _, s := range b.slots {
		ans += s.answered
		ab += s.abandoned
	}
	// Early in the run the window is short: project the hour from the rate so far.
	span := min(max(t-b.start, 600), 3600)
	return float64(ans) * 3600 / span, float64(ab)
}

func (b *budget) observe(t float64, k OutcomeKind) {
	gain := budgetGain
	switch k {
	case Human:
		b.advance(t)
		b.slots[b.minute%60].answered++
		b.logTheta += gain * b.aim()
		b.answered++
	case Abandoned:
		b.advance(t)
		b.slots[b.minute%60].abandoned++
		b.logTheta -= gain
	default:
		return
	}
	b.logTheta = min(max(b.logTheta, math.Log(thetaMin)), math.Log(thetaMax))
}

// theta returns the threshold at time t.
func (b *budget) theta(t float64) float64 {
	ans, ab := b.hour(t)
	allow := hourLimit*b.target*ans - ab - hourSpare
	f := min(max(allow/hourRamp, 0), 1)
	return math.Exp(b.logTheta) * f
}
