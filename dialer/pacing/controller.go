package pacing

import (
	"math"
	"time"
)

// Controller paces one campaign. It learns from every Outcome whatever the mode, so a
// supervisor may switch modes without losing what was learned.
type Controller struct {
	settings Settings
	epoch    time.Time
	started  bool
	latest   float64 // the latest time seen, in seconds since epoch
	models   map[Channel]*channelModel
	budget   budget

	// What the last predictive decision accepted: the threshold with the guards applied,
	// and whether it dialled as progressive would (learning, or the allowance spent).
	lastTheta       float64
	lastProgressive bool

	nodes      row
	nodesFrom  Channel
	agentFitAt float64
	agentFits  int

	// Scratch space reused across decisions.
	running  []float64
	running2 []float64
	freeRows []*row
	ansRows  []*row
	exact    exact
}

// progressiveBelow is the threshold under which predictive is progressive. Dials the
// forecast puts under it are few and the forecast cannot vouch for so far a tail: on
// small-team-5-fast, dials placed at a risk of 1e-3 in spent hours lost four people in
// 800 s, and the campaign went over target on 2 of 20 seeds.
const progressiveBelow = 1e-3

// Refit intervals, in seconds of the caller's clock.
const (
	ringRefit  = 5
	agentRefit = 60
	// agentRefitEarly applies while few calls have ended, when each one changes much.
	agentRefitEarly = 10
)

// NewController returns a Controller with the given settings.
func NewController(s Settings) *Controller {
	s = s.withDefaults()
	return &Controller{
		settings: s,
		models:   make(map[Channel]*channelModel),
		budget:   newBudget(s.TargetAbandon),
	}
}

// Settings returns the settings in force, with defaults filled in.
func (c *Controller) Settings() Settings { return c.settings }

// SetSettings changes the settings; what was learned is kept.
func (c *Controller) SetSettings(s Settings) {
	s = s.withDefaults()
	if s.Patience != c.settings.Patience {
		c.agentFits = 0 // rows depend on the patience: refit at the next decision
	}
	c.budget.target = s.TargetAbandon
	c.settings = s
}

// secs converts a time to seconds of the controller's clock. The clock never runs
// backwards: a time earlier than one already seen (an event stamped by another
// clock, at a coarser resolution) counts as that latest time.
func (c *Controller) secs(t time.Time) float64 {
	if !c.started {
		c.started, c.epoch = true, t
	}
	s := t.Sub(c.epoch).Seconds()
	if s < c.latest {
		return c.latest
	}
	c.latest = s
	return s
}

func (c *Controller) model(ch Channel) *channelModel {
	m := c.models[ch]
	if m == nil {
		m = newChannelModel()
		c.models[ch] = m
	}
	return m
}

// Observe learns from one outcome.
func (c *Controller) Observe(o Observation) {
	t := c.secs(o.At)
	d := max(o.Duration.Seconds(), 0)
	m := c.model(o.Channel)
	switch o.Kind {
	case Human:
		m.endDial(t, d, true)
	case Machine, NoAnswer, Failed:
		m.endDial(t, d, false)
	case TalkEnded:
		m.talk.observe(t, d, 0)
	case WrapEnded:
		m.wrap.observe(t, d, 0)
	}
	c.budget.observe(t, o.Kind)
}

// Decide returns how many new dials to place now.
func (c *Controller) Decide(now time.Time, s Snapshot) int {
	t := c.secs(now)
	var n int
	switch c.settings.Mode {
	case Progressive:
		n = ProgressiveDials(s)
	case Predictive:
		c.refresh(t, now, s)
		n = c.predict(t, now, s)
	}
	return c.settings.Limit(s, n)
}

// refresh refits what is due: ring times often, since the answer rate may collapse, talk and
// wrap-up times rarely, since they cost more and drift slowly.
func (c *Controller) refresh(t float64, now time.Time, s Snapshot) {
	early, unfit := false, false
	for _, m := range c.models {
		early = early || m.talk.count < 100
		unfit = unfit || m.talkSurv == nil
	}
	due := unfit || c.agentFits == 0 || t-c.agentFitAt >= agentRefit || (early && t-c.agentFitAt >= agentRefitEarly)
	if due || c.nodesFrom != s.Channel {
		c.agentFitAt = t
		c.agentFits++
		c.nodesFrom = s.Channel
		if m := c.models[s.Channel]; m != nil {
			c.fitRing(m, s.Channel, now, s)
			c.nodes = answerNodes(m.ring)
		}
		span := c.nodes[horizons-1] + c.settings.Patience.Seconds()
		for ch, m := range c.models {
			c.running, c.running2 = c.running[:0], c.running2[:0]
			for i := range s.Agents {
				a := &s.Agents[i]
				if a.Channel != ch {
					continue
				}
				switch a.State {
				case AgentTalking:
					c.running = append(c.running, now.Sub(a.Since).Seconds())
				case AgentWrapUp:
					c.running2 = append(c.running2, now.Sub(a.Since).Seconds())
				}
			}
			m.refitAgents(c.running, c.running2, span)
			c.fitRing(m, ch, now, s)
		}
		return
	}
	for ch, m := range c.models {
		if m.ringDirty && t-m.ringFitAt >= ringRefit {
			m.ringFitAt = t
			c.fitRing(m, ch, now, s)
		}
	}
}

func (c *Controller) fitRing(m *channelModel, ch Channel, now time.Time, s Snapshot) {
	c.running = c.running[:0]
	for i := range s.Dials {
		if s.Dials[i].Channel == ch {
			c.running = append(c.running, now.Sub(s.Dials[i].Start).Seconds())
		}
	}
	m.refitRing(c.running, &c.nodes, c.settings.MinRingTimeout.Seconds())
}

// forecast is the state of a campaign projected to each horizon.
type forecast struct {
	ready   float64 // agents free now
	waiting float64 // people waiting for an agent now
	ringing int     // dials in flight
	freeMu  row     // expected busy agents free by the horizon plus the patience
	freeVar row
	ansMu   row // expected people answering dials in flight by the horizon
	ansVar  row
	g       row     // probability that a new dial is answered by a person by the horizon
	cv2     float64 // relative variance of the answer probability estimate
	exact   *exact  // the counts taken exactly, when the campaign is small; else nil
}

func (c *Controller) predict(t float64, now time.Time, s Snapshot) int {
	prog := ProgressiveDials(s)
	m := c.models[s.Channel]
	if m == nil || !m.warm() {
		c.lastTheta, c.lastProgressive = 0, true
		return prog
	}
	f := forecast{waiting: float64(s.Waiting), ringing: len(s.Dials), g: m.gNew, cv2: m.cv2}
	surge := m.surge()
	for k := range f.g {
		f.g[k] = min(f.g[k]*surge, 1)
	}
	pat := c.settings.Patience.Seconds()
	// Elapsed times from Unix nanoseconds: much cheaper than time.Time.Sub per agent.
	nowNs := now.UnixNano()
	lastCh, cur := s.Channel, m
	active, busy := 0, 0
	c.freeRows, c.ansRows = c.freeRows[:0], c.ansRows[:0]
	certain := 0
	for i := range s.Agents {
		a := &s.Agents[i]
		var r *row
		switch a.State {
		case AgentReady:
			f.ready++
			active++
			continue
		case AgentTalking, AgentWrapUp:
			active++
			busy++
		case AgentLoggingOff:
			busy++
			continue
		default:
			continue
		}
		if a.Channel != lastCh || cur == nil {
			lastCh, cur = a.Channel, c.models[a.Channel]
		}
		if cur == nil {
			continue // nothing known about this channel's calls: count on no one
		}
		e := float64(nowNs-a.Since.UnixNano()) * 1e-9
		if a.State == AgentTalking {
			r = cur.talkRow(e, &c.nodes, pat)
		} else {
			r = cur.wrapRow(e, &c.nodes, pat)
		}
		c.freeRows = append(c.freeRows, r)
		for k, p := range r {
			f.freeMu[k] += p
			f.freeVar[k] += p * (1 - p)
		}
	}
	lastCh, cur = "", nil
	for i := range s.Dials {
		d := &s.Dials[i]
		if d.Channel != lastCh || cur == nil {
			lastCh, cur = d.Channel, c.models[d.Channel]
		}
		if cur == nil || !cur.warm() {
			// Nothing known yet: assume a person answers at once.
			for k := range f.ansMu {
				f.ansMu[k]++
			}
			certain++
			continue
		}
		r := cur.dialRow(float64(nowNs-d.Start.UnixNano())*1e-9, &c.nodes)
		c.ansRows = append(c.ansRows, r)
		for k, p := range r {
			p = min(p*surge, 1)
			f.ansMu[k] += p
			f.ansVar[k] += p * (1 - p)
		}
	}
	theta := c.budget.theta(t, busy, active, m.wait, s.Waiting)
	c.lastTheta, c.lastProgressive = theta, theta < progressiveBelow
	// A sanity bound for when the answer probability is learned near zero: the forecast
	// would then see no risk in any number of dials.
	most := int(math.Ceil(2*float64(active+1)/max(m.pHuman, 0.02))) - len(s.Dials) - s.Waiting
	if theta < progressiveBelow {
		// The allowance is spent or nearly: progressive, whose every dial has an agent.
		return prog
	}
	if len(c.freeRows)+len(c.ansRows) <= exactTerms {
		c.exact.build(c.freeRows, c.ansRows, surge, certain, int(f.ready)-s.Waiting, f.cv2)
		f.exact = &c.exact
	}
	return f.dials(prog, max(most, prog), theta)
}

// risk returns the probability that the n-th new dial (n ≥ 1), if a person answers it, finds
// no agent within the patience: the number of people answered ahead of it, plus itself,
// exceeds the agents free by then. Counts are taken as normal with a continuity correction,
// and the uncertainty of the answer probability adds variance that grows with the number of
// dials, since an error in it moves all of them together.
func (f *forecast) risk(n int) float64 {
	if float64(f.ringing+n)+f.waiting <= f.ready {
		return 0 // even if every dial is answered at once there is an agent for each
	}
	if f.exact != nil {
		return f.exact.risk(n, &f.g)
	}
	other := float64(n - 1)
	sum := 0.0
	for k := range horizons {
		g := f.g[k]
		ans := f.ansMu[k] + other*g
		mu := f.waiting + ans + 1 - f.ready - f.freeMu[k]
		v := f.ansVar[k] + other*g*(1-g) + f.freeVar[k] + f.cv2*ans*ans
		if v <= 0 {
			if mu >= 0.5 {
				sum++
			}
			continue
		}
		sum += 0.5 * math.Erfc((0.5-mu)/math.Sqrt(2*v))
	}
	return sum / horizons
}

// dials returns the largest n in [prog, most] whose n-th dial risks no more than theta.
// The risk grows with n, so a galloping search finds it in a few evaluations.
func (f *forecast) dials(prog, most int, theta float64) int {
	lo := prog // known acceptable
	if lo >= most || f.risk(lo+1) > theta {
		return lo
	}
	lo++
	step := 1
	hi := min(lo+step, most+1)
	for hi <= most && f.risk(hi) <= theta {
		lo = hi
		step *= 2
		hi = min(lo+step, most+1)
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if f.risk(mid) <= theta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Estimates are what a Controller has learned about a channel, for display and tests.
type Estimates struct {
	// Dials is how many dials on the channel have ended.
	Dials int
	// AnswerProb is the probability that a dial is answered by a person.
	AnswerProb float64
	MeanTalk   time.Duration
	MeanWrap   time.Duration
	// Threshold is the risk the predictive pacer accepted for its last dial at its last
	// decision, the hourly and run guards applied; 0 before its first.
	Threshold float64
	// Progressive reports that the last predictive decision dialled as progressive does,
	// one line per free agent: the pacer had learned too little to forecast, or had spent
	// its abandonment allowance (Threshold under 0.001).
	Progressive bool
}

// Estimates returns what has been learned about ch as of the last decision.
func (c *Controller) Estimates(ch Channel) Estimates {
	m := c.models[ch]
	if m == nil {
		return Estimates{}
	}
	sec := func(x float64) time.Duration {
		if math.IsInf(x, 0) || x > 1e9 {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(x * float64(time.Second))
	}
	return Estimates{
		Dials:       m.ring.count,
		AnswerProb:  m.pHuman,
		MeanTalk:    sec(m.talk.mean()),
		MeanWrap:    sec(m.wrap.mean()),
		Threshold:   c.lastTheta,
		Progressive: c.lastProgressive,
	}
}

// History is what a campaign's pacer had counted before it was started again (a restart,
// a crash), as the engine reads it back from the attempts it keeps. Its figures count
// people answered (connected or abandoned) and, of them, those abandoned.
type History struct {
	// At is when the figures were read: the controller's clock starts there.
	At time.Time
	// HourElapsed is how far into the hour being guarded At lies: that hour ends
	// 1 h − HourElapsed after At. Values outside [0, 1 h) are clamped.
	HourElapsed time.Duration
	// HourAnswered and HourAbandoned were counted in that hour before At.
	HourAnswered, HourAbandoned int
	// Answered and Abandoned are what the run guard starts from.
	Answered, Abandoned int
}

// Resume starts the hourly and run guards from figures counted before the controller
// existed, so that a restart in the middle of an hour at the edge of its cap does not hand
// the pacer a fresh allowance. Called before the first Observe or Decide, it also sets the
// controller's clock so that its hours line up with the hour History describes; called
// later, the figures are added to the hour in progress. A zero History changes nothing.
func (c *Controller) Resume(h History) {
	if h == (History{}) {
		return
	}
	elapsed := min(max(h.HourElapsed, 0), time.Hour-time.Nanosecond)
	if !c.started {
		c.started, c.epoch = true, h.At.Add(-elapsed)
	}
	t := c.secs(h.At)
	c.budget.resume(t, h.HourAnswered, h.HourAbandoned, h.Answered, h.Abandoned)
}
