package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/dialer/pacing"
)

// DefaultPacers returns the pacers compared when none is named.
func DefaultPacers() []string {
	return []string{"predictive", "progressive", "vicidial", "ratio:2"}
}

// NewPacer returns a new pacer for scenario sc by name: "predictive", "progressive" and
// "preview" are the modes of pacing.Controller; "ratio:X" keeps X lines per ready agent;
// "vicidial" is the adaptive baseline (see Vicidial).
func NewPacer(name string, sc *Scenario) (pacing.Pacer, error) {
	set := settingsFor(sc)
	switch name {
	case "predictive", "progressive", "preview":
		m, err := pacing.ParseMode(name)
		if err != nil {
			return nil, err
		}
		set.Mode = m
		return pacing.NewController(set), nil
	case "vicidial":
		return NewVicidial(set, time.Duration(sc.DurationS*float64(time.Second))), nil
	}
	if x, ok := strings.CutPrefix(name, "ratio:"); ok {
		r, err := strconv.ParseFloat(x, 64)
		if err != nil || r <= 0 || math.IsInf(r, 0) {
			return nil, fmt.Errorf("sim: pacer %q: ratio must be a positive number", name)
		}
		return &Ratio{Lines: r, Settings: set}, nil
	}
	return nil, fmt.Errorf("sim: unknown pacer %q (want predictive, progressive, preview, vicidial or ratio:X)", name)
}

func settingsFor(sc *Scenario) pacing.Settings {
	p := time.Duration(sc.PatienceS * float64(time.Second))
	if p <= 0 {
		p = time.Nanosecond // a zero would mean the default
	}
	return pacing.Settings{TargetAbandon: sc.TargetAbandon, Patience: p}
}

// Ratio keeps Lines dials (ringing or answered and waiting) per ready agent.
type Ratio struct {
	Lines    float64
	Settings pacing.Settings
}

// Decide implements pacing.Pacer.
func (r *Ratio) Decide(_ time.Time, s pacing.Snapshot) int {
	n := int(r.Lines*float64(pacing.ReadyAgents(s))) - len(s.Dials) - s.Waiting
	return r.Settings.Limit(s, n)
}

// Observe implements pacing.Pacer; a fixed ratio learns nothing.
func (r *Ratio) Observe(pacing.Observation) {}

// Vicidial is a baseline modelled on VICIdial's ADAPT_TAPERED dial method. A dial level
// (lines per agent taking calls) is adjusted every 15 s: lowered when the drop rate of the
// day so far is over the allowed rate, raised in proportion to the time agents spent waiting
// otherwise. The allowed rate tapers: twice the target at the start of the shift, down to the
// target at half time and after. Lines are the dial level times the agents ready or talking,
// minus the calls already ringing, waiting, held or talking.
type Vicidial struct {
	settings pacing.Settings
	shift    float64

	start   time.Time
	started bool
	level   float64
	adjust  float64 // next adjustment, seconds into the shift

	answered, dropped int

	// Agent time waiting and taking calls since the last adjustment, and the state seen at
	// the last decision that the time since then is charged to.
	last       float64
	idleArea   float64
	agentArea  float64
	lastIdle   float64
	lastAgents float64
}

// Constants of the VICIdial baseline.
const (
	vicidialPeriod   = 15   // seconds between adjustments
	vicidialMaxLevel = 3.0  // VICIdial's default adaptive maximum level
	vicidialStep     = 0.05 // smallest change of level
	vicidialGain     = 1.0  // level change per unit of idle fraction (adapt intensity 0)
)

// NewVicidial returns the VICIdial baseline for a shift of the given length.
func NewVicidial(s pacing.Settings, shift time.Duration) *Vicidial {
	if s.TargetAbandon <= 0 {
		s.TargetAbandon = pacing.DefaultTargetAbandon
	}
	return &Vicidial{settings: s, shift: shift.Seconds(), level: 1, adjust: vicidialPeriod}
}

// Observe implements pacing.Pacer.
func (v *Vicidial) Observe(o pacing.Observation) {
	switch o.Kind {
	case pacing.Human:
		v.answered++
	case pacing.Abandoned:
		v.dropped++
	}
}

// Decide implements pacing.Pacer.
func (v *Vicidial) Decide(now time.Time, s pacing.Snapshot) int {
	if !v.started {
		v.started, v.start = true, now
	}
	t := now.Sub(v.start).Seconds()
	dt := t - v.last
	v.idleArea += v.lastIdle * dt
	v.agentArea += v.lastAgents * dt
	v.last = t

	ready, talking := 0, 0
	for i := range s.Agents {
		switch s.Agents[i].State {
		case pacing.AgentReady:
			ready++
		case pacing.AgentTalking:
			talking++
		}
	}
	v.lastIdle = float64(ready - s.Waiting)
	v.lastAgents = float64(ready + talking)

	if t >= v.adjust {
		v.adjust += vicidialPeriod
		v.tune(t)
	}
	lines := int(math.Round(v.level*float64(ready+talking))) - len(s.Dials) - s.Waiting - s.Holding - talking
	return v.settings.Limit(s, lines)
}

func (v *Vicidial) tune(t float64) {
	idle := 0.0
	if v.agentArea > 0 {
		idle = v.idleArea / v.agentArea
	}
	v.idleArea, v.agentArea = 0, 0
	allowed := v.settings.TargetAbandon
	if v.shift > 0 {
		allowed *= 1 + max(0, 1-2*t/v.shift)
	}
	drop := 0.0
	if v.answered > 0 {
		drop = float64(v.dropped) / float64(v.answered)
	}
	switch {
	case drop > allowed:
		v.level -= max(vicidialStep, v.level*min((drop-allowed)/allowed, 1)/4)
	case idle > 0:
		v.level += max(vicidialStep, vicidialGain*idle)
	case idle < 0:
		v.level -= vicidialStep
	}
	v.level = min(max(v.level, 1), vicidialMaxLevel)
}
