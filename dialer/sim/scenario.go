package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// Scenario describes a campaign to simulate. Times are in seconds.
type Scenario struct {
	Name          string  `json:"name"`
	Seed          uint64  `json:"seed"`
	DurationS     float64 `json:"duration_s"`
	Agents        int     `json:"agents"`
	AnswerProb    float64 `json:"answer_prob"`
	MachineProb   float64 `json:"machine_prob"`
	FailProb      float64 `json:"fail_prob"`
	Ring          Dist    `json:"ring_s"`
	NoAnswerS     float64 `json:"no_answer_s"`
	Fail          Dist    `json:"fail_s"`
	Talk          Dist    `json:"talk_s"`
	Wrap          Dist    `json:"wrap_s"`
	Machine       Dist    `json:"machine_s"`
	PatienceS     float64 `json:"patience_s"`
	TargetAbandon float64 `json:"target_abandon"`
	Events        []Event `json:"events"`
}

// Event changes the scenario at AtS; nil fields are left as they are. Agents who log off
// finish their current call and wrap-up first.
type Event struct {
	AtS         float64  `json:"at_s"`
	AnswerProb  *float64 `json:"answer_prob,omitempty"`
	MachineProb *float64 `json:"machine_prob,omitempty"`
	FailProb    *float64 `json:"fail_prob,omitempty"`
	Agents      *int     `json:"agents,omitempty"`
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	defer f.Close()
	sc, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// Parse reads and validates a scenario. Unknown fields are errors, so a misspelt field does
// not silently fall back to zero.
func Parse(r io.Reader) (*Scenario, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("sim: reading scenario: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("sim: decoding scenario: %w", err)
	}
	if dec.More() {
		return nil, errors.New("sim: decoding scenario: data after the JSON object")
	}
	if sc.TargetAbandon == 0 {
		sc.TargetAbandon = 0.03
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Validate reports the first thing wrong with the scenario.
func (sc *Scenario) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("sim: scenario %q: "+format, append([]any{sc.Name}, a...)...)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case sc.Name == "":
		return bad("name is missing")
	case !finite(sc.DurationS) || sc.DurationS <= 0:
		return bad("duration_s must be positive, got %v", sc.DurationS)
	case sc.Agents < 0:
		return bad("agents must not be negative, got %d", sc.Agents)
	case !finite(sc.NoAnswerS) || sc.NoAnswerS <= 0:
		return bad("no_answer_s must be positive, got %v", sc.NoAnswerS)
	case !finite(sc.PatienceS) || sc.PatienceS < 0:
		return bad("patience_s must not be negative, got %v", sc.PatienceS)
	case !finite(sc.TargetAbandon) || sc.TargetAbandon <= 0 || sc.TargetAbandon >= 1:
		return bad("target_abandon must be in (0, 1), got %v", sc.TargetAbandon)
	}
	if err := checkProbs(sc.AnswerProb, sc.MachineProb, sc.FailProb); err != nil {
		return bad("%w", err)
	}
	for _, d := range []struct {
		name string
		d    Dist
	}{{"ring_s", sc.Ring}, {"fail_s", sc.Fail}, {"talk_s", sc.Talk}, {"wrap_s", sc.Wrap}, {"machine_s", sc.Machine}} {
		if err := d.d.Validate(); err != nil {
			return bad("%s: %w", d.name, err)
		}
	}
	if sc.Talk.Mean() <= 0 {
		return bad("talk_s must have a positive mean")
	}
	if !slices.IsSortedFunc(sc.Events, func(a, b Event) int { return cmpFloat(a.AtS, b.AtS) }) {
		return bad("events must be in order of at_s")
	}
	a, m, f := sc.AnswerProb, sc.MachineProb, sc.FailProb
	for i, e := range sc.Events {
		if !finite(e.AtS) || e.AtS < 0 || e.AtS > sc.DurationS {
			return bad("event %d: at_s must be within [0, duration_s], got %v", i, e.AtS)
		}
		if e.AnswerProb == nil && e.MachineProb == nil && e.FailProb == nil && e.Agents == nil {
			return bad("event %d changes nothing", i)
		}
		if e.Agents != nil && *e.Agents < 0 {
			return bad("event %d: agents must not be negative, got %d", i, *e.Agents)
		}
		if e.AnswerProb != nil {
			a = *e.AnswerProb
		}
		if e.MachineProb != nil {
			m = *e.MachineProb
		}
		if e.FailProb != nil {
			f = *e.FailProb
		}
		if err := checkProbs(a, m, f); err != nil {
			return bad("event %d: %w", i, err)
		}
	}
	return nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checkProbs(a, m, f float64) error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"answer_prob", a}, {"machine_prob", m}, {"fail_prob", f}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("%s must be in [0, 1], got %v", p.name, p.v)
		}
	}
	if s := a + m + f; s > 1+1e-9 {
		return fmt.Errorf("answer_prob + machine_prob + fail_prob = %v exceeds 1", s)
	}
	return nil
}
