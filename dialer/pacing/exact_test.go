package pacing

import (
	"math"
	"testing"
)

// TestExactRiskMatchesEnumeration checks the exact forecast against every outcome of a
// small campaign enumerated by hand: two busy agents, two dials in flight, one certain
// answer, up to four new dials.
func TestExactRiskMatchesEnumeration(t *testing.T) {
	var free, ans [2]row
	var g row
	for k := range horizons {
		x := float64(k+1) / horizons
		free[0][k], free[1][k] = 0.3*x, 0.6*x
		ans[0][k], ans[1][k] = 0.4*x, 0.1
		g[k] = 0.25 * x
	}
	for _, ready := range []int{0, 1, 2, 3, 5} {
		var e exact
		e.build([]*row{&free[0], &free[1]}, []*row{&ans[0], &ans[1]}, 1, 1, ready, 0)
		for n := 1; n <= 4; n++ {
			want := 0.0
			for k := range horizons {
				ps := []float64{ans[0][k], ans[1][k]}
				for range n - 1 {
					ps = append(ps, g[k])
				}
				// Enumerate answers (dials in flight and other new dials) and free agents.
				for mask := range 1 << (len(ps) + 2) {
					p, a, f := 1.0, 1, 0 // the certain answer
					for i, q := range ps {
						if mask>>i&1 == 1 {
							p, a = p*q, a+1
						} else {
							p *= 1 - q
						}
					}
					for i, q := range []float64{free[0][k], free[1][k]} {
						if mask>>(len(ps)+i)&1 == 1 {
							p, f = p*q, f+1
						} else {
							p *= 1 - q
						}
					}
					if a+1 > ready+f { // they and the new dial's person outnumber the agents
						want += p
					}
				}
			}
			want /= horizons
			// Both mixture scales are 1 when the answer probability is known exactly.
			if got := e.risk(n, &g); math.Abs(got-want) > 1e-12 {
				t.Errorf("ready %d, dial %d: risk %.6f, want %.6f", ready, n, got, want)
			}
		}
	}
}

func TestTailBinomial(t *testing.T) {
	tail := []float64{0.1, 0.4, 0.7}
	for _, m := range []int{0, 1, 2, 5, 400} {
		for _, q := range []float64{0, 0.05, 0.5, 0.999, 1} {
			want, pmf := 0.0, 0.0
			for b := 0; b <= m; b++ {
				pmf = math.Exp(lgammaInt(m+1)-lgammaInt(b+1)-lgammaInt(m-b+1)) * math.Pow(q, float64(b)) * math.Pow(1-q, float64(m-b))
				v := 1.0
				if b < len(tail) {
					v = tail[b]
				}
				want += pmf * v
			}
			if got := tailBinomial(tail, m, q); math.Abs(got-want) > 1e-9 {
				t.Errorf("m %d q %.3f: %.9f, want %.9f", m, q, got, want)
			}
		}
	}
}

func lgammaInt(n int) float64 {
	v, _ := math.Lgamma(float64(n))
	return v
}
