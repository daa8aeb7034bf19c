package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Dist is a distribution of durations in seconds, as a scenario file gives it.
type Dist struct {
	// Kind is "constant", "uniform", "exponential" or "lognormal".
	Kind  string  `json:"dist"`
	Value float64 `json:"value,omitempty"`
	Min   float64 `json:"min,omitempty"`
	Max   float64 `json:"max,omitempty"`
	// MeanS and SD are the mean and standard deviation of the variable itself (for
	// lognormal, not of its logarithm).
	MeanS float64 `json:"mean,omitempty"`
	SD    float64 `json:"sd,omitempty"`
}

// Validate reports whether d describes a distribution of non-negative durations.
func (d Dist) Validate() error {
	ok := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) && x >= 0 }
	switch d.Kind {
	case "constant":
		if !ok(d.Value) {
			return fmt.Errorf("constant needs value >= 0, got %v", d.Value)
		}
	case "uniform":
		if !ok(d.Min) || !ok(d.Max) || d.Max < d.Min {
			return fmt.Errorf("uniform needs 0 <= min <= max, got min %v max %v", d.Min, d.Max)
		}
	case "exponential":
		if !ok(d.MeanS) || d.MeanS == 0 {
			return fmt.Errorf("exponential needs mean > 0, got %v", d.MeanS)
		}
	case "lognormal":
		if !ok(d.MeanS) || d.MeanS == 0 || !ok(d.SD) {
			return fmt.Errorf("lognormal needs mean > 0 and sd >= 0, got mean %v sd %v", d.MeanS, d.SD)
		}
	case "":
		return errors.New("dist is missing")
	default:
		return fmt.Errorf("unknown dist %q (want constant, uniform, exponential or lognormal)", d.Kind)
	}
	return nil
}

// Mean returns the distribution's mean.
func (d Dist) Mean() float64 {
	switch d.Kind {
	case "constant":
		return d.Value
	case "uniform":
		return (d.Min + d.Max) / 2
	case "exponential", "lognormal":
		return d.MeanS
	}
	return math.NaN()
}

// sampler draws from a Dist; the lognormal parameters are worked out once.
type sampler struct {
	d         Dist
	mu, sigma float64
}

func newSampler(d Dist) sampler {
	s := sampler{d: d}
	if d.Kind == "lognormal" {
		s.sigma = math.Sqrt(math.Log1p(d.SD * d.SD / (d.MeanS * d.MeanS)))
		s.mu = math.Log(d.MeanS) - s.sigma*s.sigma/2
	}
	return s
}

func (s *sampler) draw(r *rand.Rand) float64 {
	switch s.d.Kind {
	case "constant":
		return s.d.Value
	case "uniform":
		return s.d.Min + (s.d.Max-s.d.Min)*r.Float64()
	case "exponential":
		return s.d.MeanS * r.ExpFloat64()
	case "lognormal":
		return math.Exp(s.mu + s.sigma*r.NormFloat64())
	}
	panic("sim: draw from unvalidated distribution " + s.d.Kind)
}
