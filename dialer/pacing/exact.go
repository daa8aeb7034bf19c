package pacing

import "math"

// exactTerms is the most busy agents plus dials in flight for which the forecast takes the
// counts exactly instead of as normal. Small teams are where the normal approximation
// fails: the count of people answering one or two dials is a Bernoulli variable whose
// tail the normal puts at a tenth of its true size when the probability is a few percent,
// so the forecast would see little risk in a second line for a single free agent and spend
// the allowance there, where it buys least. Large teams have many terms, a count near
// normal, and the approximation is cheap.
const exactTerms = 32

// exact is the forecast of a campaign small enough to be counted exactly. For each horizon
// and each of two answer-probability scales (the estimate's error moves every dial the same
// way, so it is taken as a two-point mixture of matching variance), tail[s][k][j] is the
// probability that the people answering the dials in flight, plus j more, outnumber the
// agents free by the horizon less those already waiting: the probability that a new dial
// answered at the horizon finds no agent when j of the other new dials were answered before
// it. Beyond the end of a tail the probability is 1.
type exact struct {
	on    bool
	scale [2]float64
	tail  [2][horizons][]float64
	// Scratch space reused across decisions.
	pf, cf, pa []float64
}

// bernoulliConv convolves the distribution p[0..n-1] of a count with a Bernoulli(q) term in
// place; p must have room for n+1 entries. It returns n+1.
func bernoulliConv(p []float64, n int, q float64) int {
	p[n] = 0
	for i := n; i > 0; i-- {
		p[i] = p[i]*(1-q) + p[i-1]*q
	}
	p[0] *= 1 - q
	return n + 1
}

// build computes the tails from the agents' rows (probability of being free by each
// horizon plus the patience), the dials' rows (probability of a person answering by each
// horizon), the certain answers (dials nothing is known about) and c = ready − waiting.
func (e *exact) build(free, ans []*row, surge float64, certain, c int, cv2 float64) {
	e.on = true
	sd := math.Sqrt(max(cv2, 0))
	e.scale = [2]float64{max(1-sd, 0), 1 + sd}
	nF, nA := len(free), len(ans)
	e.pf = grow(e.pf, nF+1)
	e.cf = grow(e.cf, nF+1)
	e.pa = grow(e.pa, nA+1)
	c -= certain
	// The tail is 1 from j = c + nF on, whatever the counts.
	length := max(c+nF, 0)
	for k := range horizons {
		e.pf[0] = 1
		n := 1
		for _, r := range free {
			n = bernoulliConv(e.pf, n, min(max(r[k], 0), 1))
		}
		acc := 0.0
		for x := range nF + 1 {
			acc += e.pf[x]
			e.cf[x] = acc
		}
		for s, sc := range e.scale {
			e.pa[0] = 1
			n := 1
			for _, r := range ans {
				n = bernoulliConv(e.pa, n, min(r[k]*surge*sc, 1))
			}
			t := grow(e.tail[s][k], length)
			for j := range length {
				// P(A + j − F ≥ c) = Σ_a P(A = a) P(F ≤ a + j − c).
				sum := 0.0
				for a := range nA + 1 {
					x := a + j - c
					switch {
					case x < 0:
						continue
					case x >= nF:
						sum += e.pa[a]
					default:
						sum += e.pa[a] * e.cf[x]
					}
				}
				t[j] = min(sum, 1)
			}
			e.tail[s][k] = t
		}
	}
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// risk returns the probability that the n-th new dial, answered by a person, finds no
// agent: the other n−1 new dials are answered before it as a binomial count.
func (e *exact) risk(n int, g *row) float64 {
	sum := 0.0
	for s, sc := range e.scale {
		for k := range horizons {
			sum += tailBinomial(e.tail[s][k], n-1, min(g[k]*sc, 1))
		}
	}
	return sum / (2 * horizons)
}

// tailBinomial returns Σ_b P(B = b) t[b] for B binomial(m, q), with t[b] = 1 past its end.
func tailBinomial(t []float64, m int, q float64) float64 {
	switch {
	case m <= 0 || q <= 0:
		if len(t) == 0 {
			return 1
		}
		return t[0]
	case q >= 1:
		if m >= len(t) {
			return 1
		}
		return t[m]
	}
	// P(B = 0) in logs: (1−q)^m underflows for many dials.
	lp := float64(m) * math.Log1p(-q)
	odds := q / (1 - q)
	pmf := math.Exp(lp)
	sum, mass := 0.0, 0.0
	for b := 0; b < len(t) && b <= m; b++ {
		sum += pmf * t[b]
		mass += pmf
		pmf *= float64(m-b) / float64(b+1) * odds
	}
	return min(sum+max(1-mass, 0), 1)
}
