package pacing

import "math"

// survival estimates the distribution of a duration that ends by one of a few competing
// causes (a dial rings until a person answers, or until a machine answers, it fails or it
// rings out) as hazards that are constant within fixed bins: the maximum-likelihood
// piecewise-exponential model. It needs no assumption about the shape of the distribution,
// conditions on elapsed time exactly (the remaining talk of a call already three minutes
// long comes from the hazards after three minutes, not from the mean), and takes durations
// still running as censored observations, so the first minutes of a shift, when only short
// calls have ended, do not make it believe calls are short.
//
// Older observations fade: the memory is the longer of window seconds and minObs
// observations, so a busy campaign notices a change within minutes while a small one does
// not chase noise.
type survival struct {
	edges  []float64 // lower edge of each bin; edges[0] == 0 and the last bin is open-ended
	causes int
	window float64
	minObs float64

	exposure []float64 // weighted seconds at risk in each bin
	ends     []float64 // weighted ends, cause-major: ends[c*len(edges)+b]
	weight   float64   // weight of the next observation; it grows so that older ones fade
	last     float64   // time of the last observation
	seen     bool
	total    float64 // weighted ends over all causes
	count    int     // observations ever, unweighted

	// The fit, valid after fit.
	rate  []float64 // hazard of ending by any cause in each bin
	share []float64 // cause-major: the part of a bin's hazard due to each cause
	surv  []float64 // probability of still running at each edge
	cum   []float64 // cause-major, len(edges) per cause: probability of having ended by the cause before each edge
	expo  []float64 // exposure including censored observations
	group []int     // first bin of each pooled group
}

// minGroupEnds is how many (weighted) ends a run of bins pools before it gets its own
// hazard. Sparse bins, in the tail above all, would otherwise get a hazard from one or two
// calls, or none at all beyond the longest call seen.
const minGroupEnds = 3

func newSurvival(edges []float64, causes int, window, minObs float64) *survival {
	nb := len(edges)
	return &survival{
		edges:    edges,
		causes:   causes,
		window:   window,
		minObs:   minObs,
		exposure: make([]float64, nb),
		ends:     make([]float64, causes*nb),
		weight:   1,
		rate:     make([]float64, nb),
		share:    make([]float64, causes*nb),
		surv:     make([]float64, nb),
		cum:      make([]float64, causes*nb),
		expo:     make([]float64, nb),
	}
}

// linearEdges returns bins of width step from 0 up to limit.
func linearEdges(step, limit float64) []float64 {
	n := int(math.Ceil(limit / step))
	e := make([]float64, n)
	for i := range e {
		e[i] = float64(i) * step
	}
	return e
}

// durationEdges returns bins of one second up to 30 s, then 4 % wider each up to 12 hours:
// fine where short calls are common, coarse in the tail where data is thin.
func durationEdges() []float64 {
	var e []float64
	for x := 0.0; x < 30; x++ {
		e = append(e, x)
	}
	for x := 30.0; x < 12*3600; x *= 1.04 {
		e = append(e, x)
	}
	return e
}

// bin returns the bin that holds x.
func (s *survival) bin(x float64) int {
	lo, hi := 0, len(s.edges)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if s.edges[mid] <= x {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func (s *survival) upper(b int) float64 {
	if b+1 < len(s.edges) {
		return s.edges[b+1]
	}
	return math.Inf(1)
}

// fade advances the clock to t, making all earlier observations lighter.
func (s *survival) fade(t float64) {
	if !s.seen {
		s.seen, s.last = true, t
		return
	}
	dt := t - s.last
	if dt <= 0 {
		return
	}
	s.last = t
	f := max(math.Exp(-dt/s.window), 1-1/s.minObs)
	s.weight /= f
	if s.weight > 1e100 {
		// Rescale before the weights overflow; only ratios matter.
		k := 1 / s.weight
		for i := range s.exposure {
			s.exposure[i] *= k
		}
		for i := range s.ends {
			s.ends[i] *= k
		}
		s.total *= k
		s.weight = 1
	}
}

// observe records a duration d that ended at time t by cause c.
func (s *survival) observe(t, d float64, c int) {
	s.fade(t)
	d = max(d, 0)
	addExposure(s.exposure, s.edges, d, s.weight)
	s.ends[c*len(s.edges)+s.bin(d)] += s.weight
	s.total += s.weight
	s.count++
}

func addExposure(exposure, edges []float64, d, w float64) {
	for b, lo := range edges {
		if d <= lo {
			return
		}
		hi := d
		if b+1 < len(edges) && edges[b+1] < d {
			hi = edges[b+1]
		}
		exposure[b] += w * (hi - lo)
	}
}

// effective returns the number of observations the estimate rests on after fading.
func (s *survival) effective() float64 {
	return s.total / s.weight
}

// fit computes the hazards from the observations so far plus the durations still running,
// given by their elapsed times.
func (s *survival) fit(running []float64) {
	nb := len(s.edges)
	copy(s.expo, s.exposure)
	for _, e := range running {
		addExposure(s.expo, s.edges, e, s.weight)
	}
	// Pool bins from the bottom until each group has enough ends, or enough time at risk
	// that the average hazard would have given enough ends: then its few ends are evidence
	// of a low hazard (no call ends in its first minute when every call lasts two), not
	// noise. A short last group joins the one before it, so the tail beyond the longest
	// duration seen keeps the hazard of the last durations seen.
	need := minGroupEnds * s.weight
	allEnds, allExpo := s.total, 0.0
	for b := 0; b < nb; b++ {
		allExpo += s.expo[b]
	}
	s.group = s.group[:0]
	acc, x := 0.0, 0.0
	start := 0
	for b := 0; b < nb; b++ {
		for c := 0; c < s.causes; c++ {
			acc += s.ends[c*nb+b]
		}
		x += s.expo[b]
		enough := acc >= need || (allExpo > 0 && x*allEnds/allExpo >= need)
		if enough || b == nb-1 {
			if !enough && len(s.group) > 0 {
				start = s.group[len(s.group)-1]
				s.group = s.group[:len(s.group)-1]
			}
			s.group = append(s.group, start)
			start, acc, x = b+1, 0, 0
		}
	}
	for g, lo := range s.group {
		hi := nb
		if g+1 < len(s.group) {
			hi = s.group[g+1]
		}
		var x, all float64
		for b := lo; b < hi; b++ {
			x += s.expo[b]
		}
		for c := 0; c < s.causes; c++ {
			sum := 0.0
			for b := lo; b < hi; b++ {
				sum += s.ends[c*nb+b]
			}
			for b := lo; b < hi; b++ {
				s.share[c*nb+b] = sum
			}
			all += sum
		}
		// Ends with no time at risk are durations exactly on the group's lower edge: a
		// hazard high enough to end everything there.
		r := all / max(x, 1e-9*s.weight)
		for b := lo; b < hi; b++ {
			s.rate[b] = r
			for c := 0; c < s.causes; c++ {
				if all > 0 {
					s.share[c*nb+b] /= all
				} else {
					s.share[c*nb+b] = 0
				}
			}
		}
	}
	sv := 1.0
	for b := 0; b < nb; b++ {
		s.surv[b] = sv
		var drop float64
		if b+1 < nb {
			next := sv * math.Exp(-s.rate[b]*(s.edges[b+1]-s.edges[b]))
			drop = sv - next
			sv = next
		}
		for c := 0; c < s.causes; c++ {
			i := c*nb + b
			if b == 0 {
				s.cum[i] = 0
			}
			if b+1 < nb {
				s.cum[i+1] = s.cum[i] + s.share[i]*drop
			}
		}
	}
}

// S returns the probability that a duration exceeds x.
func (s *survival) S(x float64) float64 {
	if x <= 0 {
		return 1
	}
	b := s.bin(x)
	return s.surv[b] * math.Exp(-s.rate[b]*(x-s.edges[b]))
}

// F returns the probability that a duration ends by cause c no later than x.
func (s *survival) F(c int, x float64) float64 {
	if x <= 0 {
		return 0
	}
	b := s.bin(x)
	i := c*len(s.edges) + b
	r := s.rate[b]
	if r == 0 {
		return s.cum[i]
	}
	return s.cum[i] + s.share[i]*s.surv[b]*(1-math.Exp(-r*(x-s.edges[b])))
}

// P returns the probability that a duration ends by cause c at all.
func (s *survival) P(c int) float64 {
	return s.F(c, math.Inf(1))
}

// mean returns the expected duration, integrating the survival function.
func (s *survival) mean() float64 {
	m := 0.0
	for b := range s.edges {
		r := s.rate[b]
		w := s.upper(b) - s.edges[b]
		switch {
		case r > 0:
			m += s.surv[b] * (1 - math.Exp(-r*w)) / r
		case math.IsInf(w, 1):
			if s.surv[b] > 0 {
				return math.Inf(1)
			}
		default:
			m += s.surv[b] * w
		}
	}
	return m
}
