package sim

import (
	"context"
	"testing"
)

// shift200 is an 8-hour shift of 200 agents with the example scenarios' call profile.
func shift200() *Scenario {
	return &Scenario{
		Name: "shift-200", Seed: 11, DurationS: 8 * 3600, Agents: 200,
		AnswerProb: 0.22, MachineProb: 0.08, FailProb: 0.10,
		Ring:      Dist{Kind: "lognormal", MeanS: 9, SD: 5},
		NoAnswerS: 25,
		Fail:      Dist{Kind: "uniform", Min: 1, Max: 4},
		Talk:      Dist{Kind: "lognormal", MeanS: 180, SD: 150},
		Wrap:      Dist{Kind: "exponential", MeanS: 15},
		Machine:   Dist{Kind: "uniform", Min: 3, Max: 6},
		PatienceS: 2, TargetAbandon: 0.03,
	}
}

func BenchmarkShift8h200Agents(b *testing.B) {
	sc := shift200()
	for b.Loop() {
		if _, err := Run(context.Background(), sc, "predictive"); err != nil {
			b.Fatal(err)
		}
	}
}
