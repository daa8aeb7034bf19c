// Package amd detects answering machines from the first seconds of a call's audio
// with the energy and word-length method of Asterisk's app_amd: it measures
// stretches of voice ("words") and of silence and decides as soon as one rule
// fires — a short greeting followed by silence is a human; a long greeting, too
// many words, an over-long word or a long initial silence is a machine.
//
// Differences from app_amd: the silence threshold adapts to the line's noise
// floor (a fixed threshold turns line noise into one endless word), durations are
// counted in samples so any frame size works, and the defaults are tuned on
// synthetic Brazilian Portuguese and English greetings (see amd_test.go) to decide
// a human within the 2-second connect rule.
//
// Worst cases with DefaultParams: a human who says a short greeting is decided
// AfterGreetingSilence (600 ms) after the greeting ends (≈ 1.0–1.8 s from answer for "Alô?" after 0.2–0.8 s of silence);
// a silent line is called a machine at InitialSilence (2.5 s); anything else is
// decided, at the latest, at TotalAnalysisTime (3.5 s) as NotSure.
package amd

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// SampleRate is the rate of the PCM16 audio a Detector takes: 8 kHz mono.
const SampleRate = 8000

// Params are the detector's thresholds, named as in Asterisk's amd.conf.
type Params struct {
	// InitialSilence: silence before any voice longer than this is a machine
	// (a voicemail that waits for the beep, or a dead line).
	InitialSilence time.Duration
	// Greeting: voice totalling more than this before a pause is a machine.
	Greeting time.Duration
	// AfterGreetingSilence: silence this long after voice is a human, who said a
	// short greeting and waits for an answer.
	AfterGreetingSilence time.Duration
	// TotalAnalysisTime: undecided after this much audio is NotSure.
	TotalAnalysisTime time.Duration
	// MinimumWordLength: voice shorter than this is noise, not a word.
	MinimumWordLength time.Duration
	// BetweenWordsSilence: silence at least this long separates two words.
	BetweenWordsSilence time.Duration
	// MaximumNumberOfWords: this many words (or more) is a machine.
	MaximumNumberOfWords int
	// MaximumWordLength: one word longer than this is a machine.
	MaximumWordLength time.Duration
	// SilenceThreshold: a frame whose mean absolute amplitude is below this is
	// silence (Asterisk's default 256 of 32768).
	SilenceThreshold int
	// NoiseFactor makes the threshold adaptive: a frame is also silence when its
	// amplitude is below NoiseFactor × the line's noise floor, the floor being
	// capped at MaxNoiseFloor so a greeting starting at once is not taken for
	// noise. NoiseFactor 0 disables adaptation.
	NoiseFactor   float64
	MaxNoiseFloor int
}

// DefaultParams returns Asterisk-like defaults tuned for the 2-second connect rule
// and 3.5 s of analysis.
func DefaultParams() Params {
	return Params{
		InitialSilence:       2500 * time.Millisecond,
		Greeting:             1500 * time.Millisecond,
		AfterGreetingSilence: 600 * time.Millisecond,
		TotalAnalysisTime:    3500 * time.Millisecond,
		MinimumWordLength:    100 * time.Millisecond,
		BetweenWordsSilence:  50 * time.Millisecond,
		MaximumNumberOfWords: 4,
		MaximumWordLength:    5000 * time.Millisecond,
		SilenceThreshold:     256,
		NoiseFactor:          2.0,
		MaxNoiseFloor:        1000,
	}
}

// Validate reports parameters that cannot work.
func (p Params) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"InitialSilence", p.InitialSilence}, {"Greeting", p.Greeting},
		{"AfterGreetingSilence", p.AfterGreetingSilence}, {"TotalAnalysisTime", p.TotalAnalysisTime},
		{"MinimumWordLength", p.MinimumWordLength}, {"BetweenWordsSilence", p.BetweenWordsSilence},
		{"MaximumWordLength", p.MaximumWordLength},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		}
	}
	if p.MaximumNumberOfWords < 1 {
		errs = append(errs, fmt.Errorf("MaximumNumberOfWords must be ≥ 1, got %d", p.MaximumNumberOfWords))
	}
	if p.SilenceThreshold < 0 || p.NoiseFactor < 0 || p.MaxNoiseFloor < 0 {
		errs = append(errs, errors.New("thresholds must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("amd params: %w", err)
	}
	return nil
}

// Decision is the detector's verdict.
type Decision int

// The verdicts. Undecided means: feed more audio.
const (
	Undecided Decision = iota
	Human
	Machine
	NotSure
)

func (d Decision) String() string {
	switch d {
	case Human:
		return "HUMAN"
	case Machine:
		return "MACHINE"
	case NotSure:
		return "NOTSURE"
	}
	return "UNDECIDED"
}

// Cause names the rule that decided, as Asterisk's AMDCAUSE does.
type Cause string

// The causes.
const (
	CauseHuman          Cause = "HUMAN"
	CauseInitialSilence Cause = "INITIALSILENCE"
	CauseLongGreeting   Cause = "LONGGREETING"
	CauseMaxWords       Cause = "MAXWORDS"
	CauseMaxWordLength  Cause = "MAXWORDLENGTH"
	CauseTooLong        Cause = "TOOLONG"
)

// Result is a decision and how it was reached.
type Result struct {
	Decision Decision
	Cause    Cause
	// At is the audio time consumed when the decision was made.
	At time.Duration
	// Words is the number of words counted.
	Words int
}

// Detector classifies one call. It is not safe for concurrent use and not
// reusable: create one per answered call.
type Detector struct {
	p Params
	// Durations in samples.
	initialSilence, greeting, afterGreeting, total, minWord, betweenWords, maxWord int

	elapsed    int
	silenceRun int // consecutive silence
	voiceRun   int // consecutive voice
	voiceTotal int
	words      int
	inSilence  bool // app_amd STATE_IN_SILENCE
	inInitial  bool
	inGreeting bool
	noiseFloor float64
	haveFloor  bool
	result     Result
}

func samples(d time.Duration) int { return int(d * SampleRate / time.Second) }

// New returns a detector with parameters p.
func New(p Params) (*Detector, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Detector{
		p:              p,
		initialSilence: samples(p.InitialSilence),
		greeting:       samples(p.Greeting),
		afterGreeting:  samples(p.AfterGreetingSilence),
		total:          samples(p.TotalAnalysisTime),
		minWord:        samples(p.MinimumWordLength),
		betweenWords:   samples(p.BetweenWordsSilence),
		maxWord:        samples(p.MaximumWordLength),
		inInitial:      true,
		// app_amd starts "in a word", so voice right at answer is not counted as
		// a word until a pause has been seen.
		inSilence: false,
	}, nil
}

// Result returns the decision so far (Undecided until one is made).
func (d *Detector) Result() Result { return d.result }

// Feed analyses one frame of 8 kHz mono PCM16 (20 ms, 160 samples, is typical;
// any length works) and returns the result and whether it is final. After a
// final result, Feed returns it again without analysing.
func (d *Detector) Feed(frame []int16) (Result, bool) {
	if d.result.Decision != Undecided {
		return d.result, true
	}
	n := len(frame)
	if n == 0 {
		return d.result, false
	}
	d.elapsed += n
	if d.elapsed >= d.total {
		return d.decide(NotSure, CauseTooLong), true
	}
	var sum int64
	for _, s := range frame {
		if s < 0 {
			sum -= int64(s)
		} else {
			sum += int64(s)
		}
	}
	level := float64(sum) / float64(n)
	silent := level < d.threshold(level, n)

	if silent {
		d.silenceRun += n
		if d.silenceRun >= d.betweenWords {
			d.inSilence = true
			d.voiceRun = 0
		}
		if d.inInitial && d.silenceRun >= d.initialSilence {
			return d.decide(Machine, CauseInitialSilence), true
		}
		if d.inGreeting && d.silenceRun >= d.afterGreeting {
			return d.decide(Human, CauseHuman), true
		}
		return d.result, false
	}
	d.silenceRun = 0
	d.voiceRun += n
	d.voiceTotal += n
	if d.voiceRun >= d.minWord && d.inSilence {
		d.words++
		d.inSilence = false
	}
	switch {
	case d.voiceRun >= d.maxWord:
		return d.decide(Machine, CauseMaxWordLength), true
	case d.words >= d.p.MaximumNumberOfWords:
		return d.decide(Machine, CauseMaxWords), true
	case d.inGreeting && d.voiceTotal >= d.greeting:
		return d.decide(Machine, CauseLongGreeting), true
	}
	if d.voiceTotal >= d.minWord {
		d.inInitial = false
		d.inGreeting = true
	}
	return d.result, false
}

// threshold returns the silence threshold for a frame of the given level and
// updates the noise floor: it follows quieter frames at once and louder ones
// slowly, so speech barely moves it but a noisy line raises it within a second.
func (d *Detector) threshold(level float64, n int) float64 {
	th := float64(d.p.SilenceThreshold)
	if d.p.NoiseFactor == 0 {
		return th
	}
	switch {
	case !d.haveFloor:
		d.noiseFloor, d.haveFloor = level, true
	case level < d.noiseFloor:
		d.noiseFloor = level
	default:
		// +2 % per 20 ms: ≈ +50 % per 400 ms.
		d.noiseFloor *= math.Pow(1.02, float64(n)/(SampleRate/50))
	}
	floor := min(d.noiseFloor, float64(d.p.MaxNoiseFloor))
	return max(th, d.p.NoiseFactor*floor)
}

func (d *Detector) decide(dec Decision, c Cause) Result {
	d.result = Result{
		Decision: dec, Cause: c, Words: d.words,
		At: time.Duration(d.elapsed) * time.Second / SampleRate,
	}
	return d.result
}
