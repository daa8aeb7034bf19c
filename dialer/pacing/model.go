package pacing

import "math"

// horizons is the number of points at which the forecast is evaluated. They are the
// quantiles (k+½)/horizons of the time a person takes to answer a new dial, so averaging the
// forecast over them integrates over when that person answers.
const horizons = 8

type row = [horizons]float64

// Ring-time causes.
const (
	causeHuman = iota
	causeOther
)

const (
	ringStep  = 0.25  // seconds: resolution of dial rows
	ringLimit = 120.0 // seconds: no dial is expected to ring longer
	convStep  = 0.5   // seconds: grid of the talk-then-wrap convolution
	// Agent rows: one per second of elapsed time up to agentLinear, then 2 % wider each up
	// to 12 hours.
	agentLinear = 600
	agentGrowth = 1.02
	agentRows   = agentLinear + 217
	dialRows    = int(ringLimit / ringStep)
	// warmDials and warmHumans are how many dials on a channel must have ended, and been
	// answered by a person, before the ring-time and answer estimates are trusted; until
	// then predictive is progressive. Thirty dials can put the answer rate at half its
	// true value, and the forecast would then fill every line at once.
	warmDials  = 50
	warmHumans = 20
	// surgeWindow is the memory, in seconds, of the detector of a sudden rise in the answer
	// rate: the forecast must not wait for the slower estimate to catch up, since people
	// answering more than expected are people abandoned.
	surgeWindow = 60
)

// channelModel is what is learned about one channel.
type channelModel struct {
	ring *survival // causes: a person answers, anything else ends the dial
	talk *survival
	wrap *survival

	ringDirty bool
	ringFitAt float64
	humans    int

	// Recent dials and people answering them, fading over surgeWindow.
	recentAt               float64
	recentDials, recentHum float64

	// Derived from the fits.
	pHuman float64 // probability that a dial is answered by a person
	// wait is the expected time, in seconds, of dialling one line at a time until a
	// person answers: the mean time a dial takes over the probability it finds a person.
	wait float64
	cv2  float64 // squared coefficient of variation of the pHuman estimate
	gNew row     // probability that a new dial has been answered by a person by each horizon
	// cutoff is the ring, in seconds, after which new dials are given up; 0 for none.
	cutoff float64
	// On a grid of convStep: the wrap-up distribution function, and the talk survival
	// function over the linear agent rows plus a span, so most rows need no exp.
	wrapCDF  []float64
	talkSurv []float64

	talkRows, wrapRows, dials rowCache
	perLine                   []float64 // scratch: people per second of line, by cutoff
}

func newChannelModel() *channelModel {
	return &channelModel{
		// A collapse of the answer rate must show within minutes: five minutes of memory,
		// or the last 100 dials where dialling is slow.
		ring: newSurvival(linearEdges(0.5, ringLimit), 2, 300, 100),
		// Talk and wrap-up times drift slowly; a long memory keeps their tails.
		talk:     newSurvival(durationEdges(), 1, 3600, 400),
		wrap:     newSurvival(durationEdges(), 1, 3600, 400),
		talkRows: newRowCache(agentRows),
		wrapRows: newRowCache(agentRows),
		dials:    newRowCache(dialRows + 1),
	}
}

func (m *channelModel) warm() bool {
	return m.ring.count >= warmDials && m.humans >= warmHumans
}

// endDial records a dial that ended at t, answered by a person or not.
func (m *channelModel) endDial(t, ring float64, human bool) {
	c := causeOther
	if human {
		c = causeHuman
		m.humans++
	}
	m.ring.observe(t, ring, c)
	m.ringDirty = true
	f := math.Exp(-max(t-m.recentAt, 0) / surgeWindow)
	m.recentAt = t
	m.recentDials = m.recentDials*f + 1
	m.recentHum *= f
	if human {
		m.recentHum++
	}
}

// surge returns the factor by which the answer rate of the last minute exceeds the
// estimate, when it does beyond two standard errors; otherwise 1.
func (m *channelModel) surge() float64 {
	n := m.recentDials
	if n < 10 || m.pHuman <= 0 {
		return 1
	}
	p := m.recentHum / n
	low := p - 2*math.Sqrt(p*(1-p)/n)
	if low <= m.pHuman {
		return 1
	}
	return min(low, 1) / m.pHuman
}

// rowCache holds forecast rows computed on demand; a row is valid while its generation
// matches the cache's.
type rowCache struct {
	rows []row
	gen  []uint32
	cur  uint32
}

func newRowCache(n int) rowCache {
	return rowCache{rows: make([]row, n), gen: make([]uint32, n), cur: 1}
}

func (c *rowCache) invalidate() { c.cur++ }

// agentBucket returns the row for an agent busy for e seconds.
func agentBucket(e float64) int {
	if e < agentLinear {
		return max(int(e), 0)
	}
	return min(agentLinear+int(math.Log(e/agentLinear)/math.Log(agentGrowth)), agentRows-1)
}

// bucketElapsed returns the elapsed time a row is computed for: the middle of its bucket.
func bucketElapsed(i int) float64 {
	if i < agentLinear {
		return float64(i) + 0.5
	}
	return agentLinear * math.Pow(agentGrowth, float64(i-agentLinear)+0.5)
}

// refitRing refits the ring-time model and what derives from it; floor is the shortest
// cutoff allowed, in seconds.
func (m *channelModel) refitRing(running []float64, nodes *row, floor float64) {
	m.ring.fit(running)
	m.chooseCutoff(floor)
	m.ringDirty = false
	m.pHuman = m.ring.P(causeHuman)
	m.wait = m.ring.mean() / max(m.pHuman, 1e-3)
	if n := m.ring.effective(); m.pHuman > 0 && n > 0 {
		m.cv2 = (1 - m.pHuman) / (m.pHuman * n)
	} else {
		m.cv2 = 0
	}
	for k, h := range nodes {
		m.gNew[k] = m.ring.F(causeHuman, h)
	}
	m.dials.invalidate()
}

// cutoffTolerance is how much of the best rate of people per second of line a cutoff may
// give up to let dials ring longer: of two cutoffs nearly as good, the longer reaches more
// people at this attempt.
const cutoffTolerance = 0.01

// chooseCutoff sets the ring after which new dials are given up. A line rung until cutoff
// c yields people at F(c) / ∫₀ᶜ S per second of line (F: answered by a person by c; S:
// still ringing), and giving a dial up pays once a person is less likely to answer it in
// the next second than that rate. The cutoff is the longest, at least floor seconds, whose
// rate is within cutoffTolerance of the best.
//
// Rings are known only up to the cutoff in force: dials given up there end all at once, in
// whichever bin their durations fall, and say nothing of when they would have been
// answered. Cutoffs are therefore weighed only up to a bin short of it; when the best is
// there, the cutoff stays, and grows by cutoffGrowth while people still answer in its last
// second faster than its rate, to learn what lies beyond. 0 means no cutoff: the best rate
// is past every ring seen, or no one answers under the cutoff.
func (m *channelModel) chooseCutoff(floor float64) {
	s := m.ring
	limit := m.cutoff
	if limit <= 0 {
		limit = ringLimit
	}
	limit = max(limit, floor)
	nb := len(s.edges)
	if cap(m.perLine) < nb {
		m.perLine = make([]float64, nb)
	}
	y := m.perLine[:nb]
	line, best, top := 0.0, 0.0, 0
	for b := 1; b < nb && s.edges[b] <= limit-cutoffGuard; b++ {
		w := s.edges[b] - s.edges[b-1]
		if r := s.rate[b-1]; r > 0 {
			line += s.surv[b-1] * -math.Expm1(-r*w) / r
		} else {
			line += s.surv[b-1] * w
		}
		y[b] = s.cum[causeHuman*nb+b] / max(line, 1e-9)
		top = b
		if s.edges[b] >= floor-cutoffGuard {
			best = max(best, y[b])
		}
	}
	if best <= 0 {
		m.cutoff = 0 // no one answers under the cutoff: let dials ring out and learn anew
		return
	}
	if limit < ringLimit && y[top] >= best && m.lateHazard(top) > (1+cutoffTolerance)*y[top] {
		// The best rate is the cutoff's own and people answer its last second faster than
		// that: it is too short.
		m.cutoff = min(limit*cutoffGrowth, ringLimit)
		return
	}
	pick := top
	for pick > 0 && s.edges[pick] > floor && y[pick] < (1-cutoffTolerance)*best {
		pick--
	}
	switch {
	case s.surv[pick] < 1e-6:
		m.cutoff = 0 // every dial has ended by then: ring out as the caller would
	case pick < top:
		m.cutoff = max(s.edges[pick], floor)
	default:
		m.cutoff = limit
	}
}

// lateSpan is how many seconds before the cutoff lateHazard looks at: bins of half a
// second hold too few answers to tell a rising rate from noise.
const lateSpan = 1.0

// cutoffGrowth is the factor by which a cutoff found too short grows at each refit.
const cutoffGrowth = 1.1

// lateHazard returns the rate at which people answer dials still ringing over the lateSpan
// seconds that end with bin top.
func (m *channelModel) lateHazard(top int) float64 {
	s := m.ring
	nb := len(s.edges)
	people, expo := 0.0, 0.0
	for b := top; b >= 0 && s.edges[b] > s.edges[top]-lateSpan; b-- {
		people += s.rate[b] * s.share[causeHuman*nb+b] * s.expo[b]
		expo += s.expo[b]
	}
	return people / max(expo, 1e-9)
}

// cutoffGuard is how far under the cutoff in force its rates are weighed: the width of a
// ring bin, where the dials given up end.
const cutoffGuard = 0.5

// refitAgents refits talk and wrap-up and clears the agent rows.
func (m *channelModel) refitAgents(talking, wrapping []float64, span float64) {
	m.talk.fit(talking)
	m.wrap.fit(wrapping)
	n := int(span/convStep) + 2
	if cap(m.wrapCDF) < n {
		m.wrapCDF = make([]float64, n)
	}
	m.wrapCDF = m.wrapCDF[:n]
	for j := range m.wrapCDF {
		m.wrapCDF[j] = 1 - m.wrap.S(float64(j)*convStep)
	}
	n = int((agentLinear+span)/convStep) + 2
	if cap(m.talkSurv) < n {
		m.talkSurv = make([]float64, n)
	}
	m.talkSurv = m.talkSurv[:n]
	for j := range m.talkSurv {
		m.talkSurv[j] = m.talk.S(float64(j) * convStep)
	}
	m.talkRows.invalidate()
	m.wrapRows.invalidate()
}

// dialRow returns, for a dial that has rung for r seconds without an answer, the
// probability that a person has answered it by each horizon.
func (m *channelModel) dialRow(r float64, nodes *row) *row {
	i := min(max(int(r/ringStep), 0), dialRows)
	c := &m.dials
	out := &c.rows[i]
	if c.gen[i] == c.cur {
		return out
	}
	c.gen[i] = c.cur
	x := (float64(i) + 0.5) * ringStep
	s := m.ring.S(x)
	if s < 1e-9 {
		// Past every ring time seen: the dial is about to ring out.
		*out = row{}
		return out
	}
	f0 := m.ring.F(causeHuman, x)
	for k, h := range nodes {
		out[k] = min(max((m.ring.F(causeHuman, x+h)-f0)/s, 0), 1)
	}
	return out
}

// talkRow returns, for an agent who has talked e seconds, the probability of having ended
// the call and its wrap-up by each horizon plus the patience.
func (m *channelModel) talkRow(e float64, nodes *row, patience float64) *row {
	i := agentBucket(e)
	c := &m.talkRows
	out := &c.rows[i]
	if c.gen[i] == c.cur {
		return out
	}
	c.gen[i] = c.cur
	*out = row{}
	x := bucketElapsed(i)
	surv := func(j int) float64 { return m.talk.S(x + float64(j)*convStep) }
	if i < agentLinear {
		base := int(x / convStep) // x is on the grid
		surv = func(j int) float64 { return m.talkSurv[base+j] }
	}
	s0 := surv(0)
	if s0 < 1e-12 {
		return out
	}
	span := nodes[horizons-1] + patience
	prev := 1.0
	for j := 0; ; j++ {
		u := float64(j) * convStep
		if u >= span {
			break
		}
		next := surv(j+1) / s0
		mass := prev - next
		prev = next
		mid := u + convStep/2
		for k := range nodes {
			h := nodes[k] + patience - mid
			if h < 0 {
				continue
			}
			out[k] += mass * m.wrapCDF[min(int(h/convStep), len(m.wrapCDF)-1)]
		}
	}
	return out
}

// wrapRow returns, for an agent who has been in wrap-up w seconds, the probability of being
// free by each horizon plus the patience.
func (m *channelModel) wrapRow(w float64, nodes *row, patience float64) *row {
	i := agentBucket(w)
	x := bucketElapsed(i)
	c := &m.wrapRows
	out := &c.rows[i]
	if c.gen[i] == c.cur {
		return out
	}
	c.gen[i] = c.cur
	*out = row{}
	s0 := m.wrap.S(x)
	if s0 < 1e-12 {
		return out
	}
	for k, h := range nodes {
		out[k] = 1 - m.wrap.S(x+h+patience)/s0
	}
	return out
}

// answerNodes returns the horizons for a channel: quantiles of the time a person takes to
// answer, given that a person answers.
func answerNodes(ring *survival) row {
	var nodes row
	p := ring.P(causeHuman)
	for k := range nodes {
		q := (float64(k) + 0.5) / horizons
		if p <= 0 {
			// Nothing learned yet; any spread of horizons will do until the channel is warm.
			nodes[k] = q * 20
			continue
		}
		lo, hi := 0.0, ringLimit
		for range 40 {
			mid := (lo + hi) / 2
			if ring.F(causeHuman, mid) < q*p {
				lo = mid
			} else {
				hi = mid
			}
		}
		nodes[k] = hi
	}
	return nodes
}
