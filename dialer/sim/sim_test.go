package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/pacing"
)

func load(t *testing.T, path string) *Scenario {
	t.Helper()
	sc, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func run(t *testing.T, sc *Scenario, pacer string) Result {
	t.Helper()
	r, err := Run(context.Background(), sc, pacer)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseErrors(t *testing.T) {
	good := `"name":"x","duration_s":60,"agents":1,"answer_prob":0.5,"machine_prob":0.1,"fail_prob":0.1,
		"ring_s":{"dist":"constant","value":5},"no_answer_s":25,"fail_s":{"dist":"constant","value":1},
		"talk_s":{"dist":"constant","value":10},"wrap_s":{"dist":"constant","value":1},
		"machine_s":{"dist":"constant","value":3},"patience_s":2`
	if _, err := Parse(strings.NewReader("{" + good + "}")); err != nil {
		t.Fatalf("valid scenario: %v", err)
	}
	tests := []struct {
		name, json, want string
	}{
		{"unknown field", `{` + good + `,"agent":3}`, "unknown field"},
		{"bad dist", `{` + strings.Replace(good, `"dist":"constant","value":10`, `"dist":"gamma","mean":10`, 1) + `}`, `talk_s: unknown dist "gamma"`},
		{"probabilities", `{` + strings.Replace(good, `"answer_prob":0.5`, `"answer_prob":0.9`, 1) + `}`, "exceeds 1"},
		{"no name", `{` + strings.Replace(good, `"name":"x"`, `"name":""`, 1) + `}`, "name is missing"},
		{"event order", `{` + good + `,"events":[{"at_s":30,"agents":2},{"at_s":10,"agents":1}]}`, "in order"},
		{"event probabilities", `{` + good + `,"events":[{"at_s":30,"fail_prob":0.5}]}`, "event 0"},
		{"empty event", `{` + good + `,"events":[{"at_s":30}]}`, "changes nothing"},
		{"lognormal", `{` + strings.Replace(good, `"dist":"constant","value":5`, `"dist":"lognormal","mean":-1,"sd":1`, 1) + `}`, "ring_s: lognormal"},
		{"not json", `{"name":`, "decoding"},
		{"trailing", `{` + good + `} {}`, "after the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewPacerErrors(t *testing.T) {
	sc := shift200()
	for _, name := range []string{"ratio:", "ratio:x", "ratio:-1", "ratio:Inf", "adaptive", ""} {
		if _, err := NewPacer(name, sc); err == nil {
			t.Errorf("NewPacer(%q) succeeded", name)
		}
	}
	for _, name := range []string{"predictive", "progressive", "preview", "vicidial", "ratio:2.5"} {
		if _, err := NewPacer(name, sc); err != nil {
			t.Errorf("NewPacer(%q): %v", name, err)
		}
	}
}

// TestAccounting runs a scenario whose every number can be worked out by hand: one agent,
// every dial answered after 5 s, talk 100 s, wrap-up 10 s, progressive pacing. Each cycle
// is 115 s, of which the agent waits 5.
func TestAccounting(t *testing.T) {
	sc := &Scenario{
		Name: "hand", DurationS: 1150, Agents: 1, AnswerProb: 1,
		Ring: Dist{Kind: "constant", Value: 5}, NoAnswerS: 25,
		Fail: Dist{Kind: "constant", Value: 1}, Machine: Dist{Kind: "constant", Value: 1},
		Talk: Dist{Kind: "constant", Value: 100}, Wrap: Dist{Kind: "constant", Value: 10},
		PatienceS: 2, TargetAbandon: 0.03,
	}
	r := run(t, sc, "progressive")
	want := Result{
		Scenario: "hand", Pacer: "progressive", Dials: 10, Answered: 10, Connected: 10,
		Occupancy: 1000.0 / 1150, OccupancyLimit: 100.0 / 110, MeanAgentWaitS: 5,
		Idle: Idle{LoggedIn: 1150, Answer: 50},
	}
	want.Efficiency = want.Occupancy / want.OccupancyLimit
	r.SimWallS, r.Hours = 0, nil
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	// Two lines for one agent: the second person always abandons.
	r = run(t, sc, "ratio:2")
	if r.Abandoned != r.Answered-r.Connected || r.Abandoned < r.Connected-1 {
		t.Errorf("ratio:2 with one agent: %d answered, %d connected, %d abandoned", r.Answered, r.Connected, r.Abandoned)
	}
}

// TestRingTimeout checks that dials ring no longer than the pacer's ring timeout: one
// agent, every dial answered after a constant 10 s ring, talk 100 s, wrap-up 10 s.
func TestRingTimeout(t *testing.T) {
	sc := &Scenario{
		Name: "hand", DurationS: 1200, Agents: 1, AnswerProb: 0.5, MachineProb: 0.5,
		Ring: Dist{Kind: "constant", Value: 10}, NoAnswerS: 25,
		Fail: Dist{Kind: "constant", Value: 1}, Machine: Dist{Kind: "constant", Value: 3},
		Talk: Dist{Kind: "constant", Value: 100}, Wrap: Dist{Kind: "constant", Value: 10},
		PatienceS: 2, TargetAbandon: 0.03,
	}
	tests := []struct {
		name    string
		timeout time.Duration
		// Whether people answer: a timeout under the ring gives every dial up.
		answers bool
	}{
		{"under the ring", 5 * time.Second, false},
		{"over the ring", 15 * time.Second, true},
		{"the caller's default", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pacing.NewController(pacing.Settings{Mode: pacing.Progressive, RingTimeout: tt.timeout})
			r, err := RunPacer(context.Background(), sc, "progressive", p)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.answers {
				// One line at a time, each given up at 5 s: the shift holds 240 of them.
				if r.Answered != 0 || r.Dials != 240 || r.GivenUp < r.Dials/3 {
					t.Errorf("%d dials, %d answered, %d given up; want 240, 0 and about half", r.Dials, r.Answered, r.GivenUp)
				}
				return
			}
			if r.Answered == 0 || r.GivenUp != 0 {
				t.Errorf("%d answered, %d given up; want some and none", r.Answered, r.GivenUp)
			}
		})
	}
}

// TestIdle checks the breakdown of ready time on runs worked out by hand: one agent, every
// dial answered after a constant ring, talk 100 s, wrap-up 10 s.
func TestIdle(t *testing.T) {
	tests := []struct {
		name  string
		pacer string
		ring  float64 // seconds
		calls int     // cycles of ring + 110 s in the shift
		want  Idle
	}{
		// Each call waits 5 s on its dial, which is never stale.
		{"fresh", "progressive", 5, 10, Idle{LoggedIn: 1150, Answer: 50}},
		// Each call waits 20 s on its dial, the last 5 of them past StaleRing.
		{"stale", "progressive", 20, 10, Idle{LoggedIn: 1300, Answer: 200, Stale: 50}},
		// Preview never dials: the agent waits the whole shift on no dial.
		{"no dial", "preview", 5, 10, Idle{LoggedIn: 1150, NoDial: 1150}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := &Scenario{
				Name: "hand", DurationS: float64(tt.calls) * (tt.ring + 110), Agents: 1, AnswerProb: 1,
				Ring: Dist{Kind: "constant", Value: tt.ring}, NoAnswerS: 25,
				Fail: Dist{Kind: "constant", Value: 1}, Machine: Dist{Kind: "constant", Value: 1},
				Talk: Dist{Kind: "constant", Value: 100}, Wrap: Dist{Kind: "constant", Value: 10},
				PatienceS: 2, TargetAbandon: 0.03,
			}
			r := run(t, sc, tt.pacer)
			got := r.Idle
			const eps = 1e-6
			if math.Abs(got.LoggedIn-tt.want.LoggedIn) > eps || math.Abs(got.Answer-tt.want.Answer) > eps ||
				math.Abs(got.Stale-tt.want.Stale) > eps || math.Abs(got.NoDial-tt.want.NoDial) > eps {
				t.Errorf("Idle = %+v, want %+v", got, tt.want)
			}
			// Ready time is what occupancy lacks of the whole: talk + wrap-up + ready.
			busy := float64(r.Connected) * 110
			if ready := got.Answer + got.NoDial; math.Abs(busy+ready-got.LoggedIn) > eps {
				t.Errorf("busy %v + ready %v != logged in %v", busy, ready, got.LoggedIn)
			}
		})
	}
}

func TestLogOff(t *testing.T) {
	sc := shift200()
	sc.DurationS = 3600
	sc.Agents = 20
	k, z := 5, 0
	sc.Events = []Event{{AtS: 1200, Agents: &k}, {AtS: 2400, Agents: &z}}
	r := run(t, sc, "progressive")
	if r.Connected == 0 {
		t.Fatal("no calls connected")
	}
	// From 2400 s nobody is logged in, so logged-in time is at most 20×1200 + 5×1200 plus
	// the calls the leavers finish; occupancy must reflect it.
	if r.Occupancy <= 0 || r.Occupancy > 1 {
		t.Errorf("occupancy = %v", r.Occupancy)
	}
	sc.Events = nil
	full := run(t, sc, "progressive")
	if r.Connected >= full.Connected {
		t.Errorf("connected with agents leaving = %d, without = %d", r.Connected, full.Connected)
	}
}

func TestDeterministic(t *testing.T) {
	sc := load(t, filepath.Join("testdata", "small-team-5-fast.json"))
	for _, p := range []string{"predictive", "vicidial"} {
		a, b := run(t, sc, p), run(t, sc, p)
		a.SimWallS, b.SimWallS = 0, 0
		if a.Dials != b.Dials || a.Abandoned != b.Abandoned || a.Occupancy != b.Occupancy || a.MeanAgentWaitS != b.MeanAgentWaitS {
			t.Errorf("%s: two runs differ:\n%+v\n%+v", p, a, b)
		}
		sc2 := *sc
		sc2.Seed++
		if c := run(t, &sc2, p); c.Dials == a.Dials && c.Occupancy == a.Occupancy {
			t.Errorf("%s: another seed gives the same result", p)
		}
	}
}

// scenarios returns the example scenarios of the design documents, if this checkout has
// them beside it, and the unseen ones of testdata.
func scenarios(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "pacing", "*.json"))
	return append(files, ex...)
}

// noise is how far above target a rate measured over n answered calls may land by chance
// alone: three standard deviations of a binomial proportion.
func noise(target float64, n int) float64 {
	return 3 * math.Sqrt(target*(1-target)/float64(max(n, 1)))
}

func TestPredictiveHoldsCap(t *testing.T) {
	for _, f := range scenarios(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			sc := load(t, f)
			r := run(t, sc, "predictive")
			if r.AbandonRate > sc.TargetAbandon+noise(sc.TargetAbandon, r.Answered) {
				t.Errorf("abandon rate %.4f over target %.2f", r.AbandonRate, sc.TargetAbandon)
			}
			if r.MaxHourAbandonRate > 1.5*sc.TargetAbandon {
				t.Errorf("worst hour %.4f over %.3f (hours %v)", r.MaxHourAbandonRate, 1.5*sc.TargetAbandon, r.Hours)
			}
			prog := run(t, sc, "progressive")
			if r.Efficiency < prog.Efficiency {
				t.Errorf("efficiency %.4f below progressive's %.4f", r.Efficiency, prog.Efficiency)
			}
		})
	}
}

// randomScenario draws a campaign: team size, answer rates, call lengths and events.
func randomScenario(r *rand.Rand, i int) *Scenario {
	talk := Dist{Kind: "lognormal", MeanS: 60 + 300*r.Float64()}
	talk.SD = talk.MeanS * (0.3 + 2*r.Float64())
	if r.IntN(3) == 0 {
		talk = Dist{Kind: "exponential", MeanS: talk.MeanS}
	}
	a := 0.08 + 0.5*r.Float64()
	sc := &Scenario{
		Name: "random", Seed: uint64(i), DurationS: 7200, Agents: 4 + r.IntN(40),
		AnswerProb: a, MachineProb: 0.1 * r.Float64(), FailProb: 0.1 * r.Float64(),
		Ring:      Dist{Kind: "lognormal", MeanS: 5 + 10*r.Float64(), SD: 2 + 5*r.Float64()},
		NoAnswerS: 20 + 10*r.Float64(),
		Fail:      Dist{Kind: "uniform", Min: 1, Max: 4},
		Machine:   Dist{Kind: "uniform", Min: 3, Max: 6},
		Talk:      talk,
		Wrap:      Dist{Kind: "exponential", MeanS: 5 + 30*r.Float64()},
		PatienceS: 2, TargetAbandon: 0.03,
	}
	if r.IntN(2) == 0 {
		p := a * (0.3 + 0.5*r.Float64())
		sc.Events = append(sc.Events, Event{AtS: 3600, AnswerProb: &p})
	}
	if r.IntN(2) == 0 {
		// Part of the team leaves in the middle of the second hour.
		k := sc.Agents * (2 + r.IntN(6)) / 10
		sc.Events = append(sc.Events, Event{AtS: 4500 + 1800*r.Float64(), Agents: &k})
	}
	return sc
}

// TestRandomScenariosHoldCap is the property test: on campaigns drawn at random, some of
// whose agents log off in the middle of an hour, the predictive pacer keeps the run's
// abandonment within target plus sampling noise, and every whole hour within 1.5 × target.
func TestRandomScenariosHoldCap(t *testing.T) {
	n := 12
	if testing.Short() {
		n = 4
	}
	r := rand.New(rand.NewPCG(2024, 7))
	for i := range n {
		sc := randomScenario(r, i)
		if err := sc.Validate(); err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			res := run(t, sc, "predictive")
			if res.AbandonRate > sc.TargetAbandon+noise(sc.TargetAbandon, res.Answered) {
				t.Errorf("%d agents, answer %.2f, talk %+v: abandon rate %.4f (%d of %d)",
					sc.Agents, sc.AnswerProb, sc.Talk, res.AbandonRate, res.Abandoned, res.Answered)
			}
			if res.MaxHourAbandonRate > 1.5*sc.TargetAbandon {
				t.Errorf("%d agents, answer %.2f, talk %+v, events %d: worst hour %.4f (hours %v)",
					sc.Agents, sc.AnswerProb, sc.Talk, len(sc.Events), res.MaxHourAbandonRate, res.Hours)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, shift200(), "predictive"); err == nil {
		t.Error("Run with a cancelled context succeeded")
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}
