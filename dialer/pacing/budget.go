package pacing

import "math"

// budget steers the predictive pacer's risk threshold from the abandonment measured so far.
//
// The threshold is the probability, accepted for the last dial placed, that the person who
// answers it finds no agent. Its logarithm is an integrator: every person answered raises it
// by gain × aim, every abandon lowers it by gain, so over the run abandoned/answered settles
// at aim. The aim sits under the target by one standard deviation of the abandon count
// expected so far (small campaigns answer few calls, and their rate is noisy, so they aim
// lower).
//
// An hourly guard scales the threshold down to zero, which turns predictive into
// progressive, as the allowance of the hour of the run is spent. Hours are counted from the
// controller's first call, as the run's hours are. The abandons and answers since the
// hour began are in hand; the answers still to come before it ends are taken at a lower
// bound: what progressive dialling gets from the agents active now (the pacer never dials
// fewer lines), less two standard deviations. Each agent's cycle under progressive dialling
// is the time agents were busy per call connected over the last quarter of an hour, which
// holds talk and wrap-up whatever their distribution, plus the expected wait for a person
// to answer a line dialled for one agent at a time. Abandons spent are thus weighed against
// answers that will be there even if the guard itself slows dialling to progressive, or the
// answer rate or the team has shrunk; only agents leaving later can make an hour fall short.
//
// A run guard does the same for the whole run, whose end the pacer does not know: the
// abandons so far, plus the people waiting and a spare, must stay under target × the
// answers so far. The campaign's abandon rate as a supervisor (or a regulator) reads it at
// any moment is then under target but for the dials in flight. Without it the integrator
// alone let small teams end runs over target: abandons come in counts of a few an hour,
// and the threshold moves them too weakly to undo a bad hour's luck.
type budget struct {
	target   float64
	logTheta float64
	answered float64 // people answered since the controller started
	abandons float64 // and abandoned
	slot     int64   // the newest slot; slots and hours count from time 0, the first event
	slots    [hourSlots]slot
	// busyAt is when the agents' busy time was last added up.
	busyAt float64
	// limited is whether the guard held the threshold down at the last decision; the
	// integrator then stands still, so that it has not wound up when the guard lets go.
	limited bool
	// seedHour is the hour that seedAnswered and seedAbandoned, counted before a restart
	// (resume), belong to.
	seedHour                    int64
	seedAnswered, seedAbandoned int
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
	// hourSpare is how many abandons the hourly guard keeps in hand for the dials in flight:
	// abandons come in bursts when a wave of answers meets busy agents.
	hourSpare = 1.0
	// hourRamp is how many spare abandons the hourly guard wants before it lets the
	// threshold act in full.
	hourRamp = 1.0
	// runSpare and runRamp are the run guard's spare and ramp, in abandons.
	runSpare = 0.5
	runRamp  = 1.0
	// hourZ is how many standard deviations the guard takes off the answers it expects
	// before the end of an hour.
	hourZ = 2.0
	// slotLen is the resolution, in seconds, of the guard's counts; hourSlots of them make
	// an hour.
	slotLen   = 10.0
	hourSlots = 360
	// rateSlots is how many of the newest slots measure the time an agent takes per answer.
	rateSlots = 90
)

// slot holds the counts of slotLen seconds.
type slot struct {
	answered, abandoned int
	busy                float64 // agent-seconds busy with calls
}

func newBudget(target float64) budget {
	return budget{target: target, logTheta: math.Log(target)}
}

func (b *budget) advance(t float64) {
	m := int64(math.Floor(t / slotLen))
	if m <= b.slot {
		return
	}
	for i := b.slot + 1; i <= m && i <= b.slot+hourSlots; i++ {
		b.slots[i%hourSlots] = slot{}
	}
	b.slot = m
}

func (b *budget) aim() float64 {
	a := b.target - aimZ*math.Sqrt(b.target/max(b.answered, 50))
	return max(a, b.target/3)
}

// allowance returns how many more abandons the hour of the run containing t can take, if
// answers keep coming at least at rate per second, in expectation, until the hour ends.
func (b *budget) allowance(t, rate float64) float64 {
	b.advance(t)
	ans, ab := 0, 0
	first := b.slot - b.slot%hourSlots // the hour's first slot
	for j := first; j <= b.slot; j++ {
		s := b.slots[j%hourSlots]
		ans += s.answered
		ab += s.abandoned
	}
	if b.seedHour == b.slot/hourSlots {
		ans += b.seedAnswered
		ab += b.seedAbandoned
	}
	end := float64(first+hourSlots) * slotLen
	mu := rate * max(end-t, 0)
	more := max(mu-hourZ*math.Sqrt(mu), 0)
	return hourLimit*b.target*(float64(ans)+more) - float64(ab)
}

func (b *budget) observe(t float64, k ObservationKind) {
	switch k {
	case Human:
		b.advance(t)
		b.slots[b.slot%hourSlots].answered++
		if !b.limited {
			b.logTheta += budgetGain * b.aim()
		}
		b.answered++
	case Abandoned:
		b.advance(t)
		b.slots[b.slot%hourSlots].abandoned++
		b.logTheta -= budgetGain
		b.abandons++
	default:
		return
	}
	b.logTheta = min(max(b.logTheta, math.Log(thetaMin)), math.Log(thetaMax))
}

// expose adds up the time agents were busy with calls (talking, wrapping up, or finishing a
// call before they log off) since the last call, counting busy of them throughout: calls
// come at least every 250 ms, and a longer gap (predictive switched on again) only makes
// agents look busier, hence the rate of answers lower.
func (b *budget) expose(t float64, busy int) {
	b.advance(t)
	if t > b.busyAt {
		b.slots[b.slot%hourSlots].busy += float64(busy) * (t - b.busyAt)
	}
	b.busyAt = max(b.busyAt, t)
}

// progressiveRate returns how many answers per second progressive dialling gets, in
// expectation, from active agents, when a person answers after wait seconds of dialling on
// average: each agent in turn talks, wraps up, and waits for a person to answer the one dial
// placed for them. The time an agent is busy per call connected is measured over the newest
// rateSlots, which holds talk and wrap-up times whatever their distribution.
func (b *budget) progressiveRate(active int, wait float64) float64 {
	conn, busy := 0, 0.0
	for j := b.slot; j > max(b.slot-rateSlots, -1); j-- {
		s := b.slots[j%hourSlots]
		conn += s.answered - s.abandoned
		busy += s.busy
	}
	if conn <= 0 || !(wait >= 0) || math.IsInf(wait, 1) {
		return 0
	}
	return float64(active) / (busy/float64(conn) + wait)
}

// theta returns the threshold at time t. busy agents are busy with calls, active agents take
// calls, a person answers after wait seconds of dialling on average, and waiting people have
// answered and wait for an agent: each of them may yet be abandoned.
func (b *budget) theta(t float64, busy, active int, wait float64, waiting int) float64 {
	b.expose(t, busy)
	allow := b.allowance(t, b.progressiveRate(active, wait)) - float64(waiting) - hourSpare
	f := min(max(allow/hourRamp, 0), 1)
	run := b.target*b.answered - b.abandons - float64(waiting) - runSpare
	f = min(f, max(run/runRamp, 0))
	b.limited = f < 1
	return math.Exp(b.logTheta) * f
}

// resume adds abandons and answers counted before the budget existed (a restart):
// hourAnswered and hourAbandoned to the hour containing t, answered and abandoned to the
// run guard's totals. The hour's figures are kept apart from the slots, which also
// measure the agents' busy time per answer: answers with no busy time against them would
// make progressive dialling look faster than it is, and the guard looser. The threshold's
// integrator is left where it starts: the guards alone carry the restart's caution.
func (b *budget) resume(t float64, hourAnswered, hourAbandoned, answered, abandoned int) {
	b.advance(t)
	hour := b.slot / hourSlots
	if hour != b.seedHour {
		b.seedHour, b.seedAnswered, b.seedAbandoned = hour, 0, 0
	}
	b.seedAnswered += max(hourAnswered, 0)
	b.seedAbandoned += max(hourAbandoned, 0)
	b.answered += float64(max(answered, 0))
	b.abandons += float64(max(abandoned, 0))
}
