package pacing

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

type drawFunc func(r *rand.Rand) float64

func lognormal(mean, sd float64) drawFunc {
	s2 := math.Log1p(sd * sd / (mean * mean))
	mu, sigma := math.Log(mean)-s2/2, math.Sqrt(s2)
	return func(r *rand.Rand) float64 { return math.Exp(mu + sigma*r.NormFloat64()) }
}

// empirical returns the fraction of xs that are > a and <= b among those > a.
func conditional(xs []float64, a, b float64) float64 {
	var n, k int
	for _, x := range xs {
		if x > a {
			n++
			if x <= b {
				k++
			}
		}
	}
	return float64(k) / float64(n)
}

func TestSurvivalConverges(t *testing.T) {
	tests := []struct {
		name string
		draw drawFunc
		mean float64
		atom bool // all the mass at one point: quantiles say nothing
	}{
		{"exponential", func(r *rand.Rand) float64 { return 60 * r.ExpFloat64() }, 60, false},
		{"lognormal", lognormal(180, 150), 180, false},
		{"heavy lognormal", lognormal(200, 600), 200, false},
		{"uniform", func(r *rand.Rand) float64 { return 2 + 10*r.Float64() }, 7, false},
		{"constant", func(*rand.Rand) float64 { return 120 }, 120, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			s := newSurvival(durationEdges(), 1, 1e9, 1e9)
			xs := make([]float64, 20000)
			for i := range xs {
				xs[i] = tt.draw(r)
				s.observe(float64(i), xs[i], 0)
			}
			s.fit(nil)
			sort.Float64s(xs)
			for _, q := range []float64{0.1, 0.5, 0.9} {
				if tt.atom {
					break
				}
				x := xs[int(q*float64(len(xs)))]
				if got := 1 - s.S(x); math.Abs(got-q) > 0.02 {
					t.Errorf("F(%.1f) = %.3f, want %.2f", x, got, q)
				}
			}
			// The mean leans on the tail, where bins are wide: allow 5 %.
			if got := s.mean(); math.Abs(got-tt.mean) > 0.05*tt.mean {
				t.Errorf("mean = %.1f, want %.1f", got, tt.mean)
			}
			// Conditional residuals: a duration already at the median ends within the next
			// tenth of the mean as often as the sample says, not as the mean says.
			a := xs[len(xs)/2]
			b := a + tt.mean/10
			if tt.atom {
				a, b = tt.mean*0.9, tt.mean*1.1
			}
			want := conditional(xs, a, b)
			if got := 1 - s.S(b)/s.S(a); math.Abs(got-want) > 0.03 {
				t.Errorf("P(end by %.1f | running at %.1f) = %.3f, want %.3f", b, a, got, want)
			}
		})
	}
}

func TestSurvivalCensoring(t *testing.T) {
	// Two hundred calls start together; after 150 s those that ended are observed and the
	// rest are still running. Ignoring the running ones would halve the mean.
	r := rand.New(rand.NewPCG(3, 4))
	s := newSurvival(durationEdges(), 1, 1e9, 1e9)
	var running []float64
	for range 2000 {
		d := 180 * r.ExpFloat64()
		if d <= 150 {
			s.observe(150, d, 0)
		} else {
			running = append(running, 150)
		}
	}
	s.fit(nil)
	naive := 1 - s.S(60)
	s.fit(running)
	got := 1 - s.S(60)
	want := 1 - math.Exp(-60.0/180)
	if math.Abs(got-want) > 0.02 {
		t.Errorf("with running calls F(60) = %.3f, want %.3f", got, want)
	}
	if naive < want+0.1 {
		t.Errorf("without running calls F(60) = %.3f; the test should show a bias", naive)
	}
}

func TestSurvivalCompetingCauses(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	s := newSurvival(linearEdges(0.5, ringLimit), 2, 1e9, 1e9)
	ring := lognormal(9, 5)
	for i := range 20000 {
		u := r.Float64()
		switch {
		case u < 0.22:
			s.observe(float64(i), min(ring(r), 25), causeHuman)
		case u < 0.30:
			s.observe(float64(i), min(ring(r), 25), causeOther)
		case u < 0.40:
			s.observe(float64(i), 1+3*r.Float64(), causeOther)
		default:
			s.observe(float64(i), 25, causeOther)
		}
	}
	s.fit(nil)
	if got := s.P(causeHuman); math.Abs(got-0.22) > 0.01 {
		t.Errorf("P(person) = %.3f, want 0.22", got)
	}
	// A dial that has rung 20 s without an answer is mostly one that will ring out.
	got := (s.P(causeHuman) - s.F(causeHuman, 20)) / s.S(20)
	if got > 0.1 {
		t.Errorf("P(person | rang 20 s) = %.3f, want small", got)
	}
}

func TestSurvivalNoticesCollapse(t *testing.T) {
	// One dial a second; at 2 hours the answer rate falls from 0.3 to 0.1. Ten minutes
	// later the estimate must be much nearer the new rate than the old.
	r := rand.New(rand.NewPCG(7, 8))
	m := newChannelModel()
	var nodes row
	p := 0.3
	for i := range 7800 {
		if i == 7200 {
			p = 0.1
		}
		m.endDial(float64(i), 10, r.Float64() < p)
	}
	m.refitRing(nil, &nodes, 15)
	if got := m.pHuman; got > 0.15 {
		t.Errorf("answer rate 10 minutes after the collapse = %.3f, want near 0.1", got)
	}
}

func TestSurge(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	m := newChannelModel()
	var nodes row
	for i := range 3600 {
		m.endDial(float64(i), 10, r.Float64() < 0.1)
	}
	m.refitRing(nil, &nodes, 15)
	if got := m.surge(); got != 1 {
		t.Errorf("surge with a steady rate = %.2f, want 1", got)
	}
	for i := 3600; i < 3660; i++ {
		m.endDial(3600+float64(i-3600)/2, 10, r.Float64() < 0.5)
	}
	if got := m.surge(); got < 1.5 {
		t.Errorf("surge after the rate jumps fivefold = %.2f, want >= 1.5", got)
	}
}
