package amd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/media"
)

func frames(pcm []int16) [][]int16 {
	var out [][]int16
	for i := 0; i < len(pcm); i += 160 {
		out = append(out, pcm[i:min(i+160, len(pcm))])
	}
	return out
}

// run feeds pcm to a detector in 20 ms frames until it decides.
func run(t testing.TB, p Params, pcm []int16) Result {
	t.Helper()
	d, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames(pcm) {
		if r, done := d.Feed(f); done {
			return r
		}
	}
	return d.Result()
}

// synth builds audio from segments: positive = voice (a loud tone) for that many
// ms, negative = silence.
func synth(segs ...int) []int16 {
	var pcm []int16
	for _, ms := range segs {
		n := abs(ms) * SampleRate / 1000
		for i := range n {
			var s int16
			if ms > 0 {
				s = int16(8000 * (1 - 2*float64((i/8)%2))) // 500 Hz square wave
			}
			pcm = append(pcm, s)
		}
	}
	return pcm
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestRules(t *testing.T) {
	p := DefaultParams()
	tests := []struct {
		name  string
		audio []int16
		want  Decision
		cause Cause
		atMax time.Duration
	}{
		{"short greeting then silence", synth(-400, 500, -2000), Human, CauseHuman, 1800 * time.Millisecond},
		{"long greeting", synth(-200, 3000), Machine, CauseLongGreeting, 2 * time.Second},
		{"many words", synth(-300, 200, -100, 200, -100, 200, -100, 200, -2000), Machine, CauseMaxWords, 2 * time.Second},
		{"silence", synth(-4000), Machine, CauseInitialSilence, 2600 * time.Millisecond},
		{"speech at once, short", synth(400, -2000), Human, CauseHuman, 1300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, p, tt.audio)
			if r.Decision != tt.want || r.Cause != tt.cause || r.At > tt.atMax {
				t.Errorf("got %v/%s at %v, want %v/%s by %v", r.Decision, r.Cause, r.At, tt.want, tt.cause, tt.atMax)
			}
		})
	}
}

func TestTooLong(t *testing.T) {
	p := DefaultParams()
	p.MaximumNumberOfWords = 100
	p.Greeting = 10 * time.Second
	// Alternating voice and pauses shorter than AfterGreetingSilence (600 ms).
	var segs []int
	for range 10 {
		segs = append(segs, 150, -500)
	}
	r := run(t, p, synth(segs...))
	if r.Decision != NotSure || r.At > p.TotalAnalysisTime {
		t.Errorf("got %+v, want NotSure by %v", r, p.TotalAnalysisTime)
	}
}

func TestValidate(t *testing.T) {
	p := DefaultParams()
	p.MaximumNumberOfWords = 0
	p.Greeting = 0
	if _, err := New(p); err == nil {
		t.Fatal("New accepted invalid params")
	}
}

// clip is one labelled recording of the accuracy set.
type clip struct {
	name    string
	machine bool
	voice   string
	speed   int
	pitch   int
	text    string
	lead    float64 // seconds of silence before
	trail   float64 // seconds of silence after
	noise   bool
	effect  []string // extra sox effects
}

func accuracySet() []clip {
	humans := []string{"Alô?", "Alô, quem fala?", "Oi", "Pronto", "Sim?", "Alô?"}
	enHumans := []string{"Hello?", "Hello, who is this?"}
	voices := []string{"pt-br", "pt-br+f3", "pt-br+m3", "pt-br+f5", "pt"}
	var set []clip
	for i := range 20 {
		c := clip{
			name: fmt.Sprintf("human%02d", i), voice: voices[i%len(voices)],
			speed: 140 + (i*17)%70, pitch: 30 + (i*13)%45,
			text: humans[i%len(humans)], lead: 0.2 + float64(i%4)*0.2, trail: 3,
			noise: i%2 == 0,
		}
		if i%7 == 3 {
			c.voice, c.text = "en-us", enHumans[i%2]
		}
		if i%4 == 1 {
			c.effect = []string{"pitch", "200"}
		}
		set = append(set, c)
	}
	machines := []string{
		"Olá, você ligou para Maria. No momento não posso atender, deixe sua mensagem após o sinal.",
		"Oi, aqui é o João. Não estou disponível agora, deixe seu recado que eu retorno assim que possível. Obrigado.",
		"Você ligou para a Padaria Pão Quente. Nosso horário de atendimento é de segunda a sexta, das oito às dezoito horas. Deixe seu nome e telefone.",
		"A pessoa para quem você ligou não está disponível. Por favor, deixe sua mensagem após o sinal.",
		"Olá! Você ligou para Ana e Pedro. Não podemos atender agora. Deixe sua mensagem depois do bipe.",
		"Caixa postal. Grave seu recado após o sinal. Para finalizar, desligue.",
		"Alô! Aqui é a Carla. Estou ocupada agora, mas deixe seu recado que eu ligo de volta.",
	}
	enMachine := "Hi, you have reached Mark. I can't take your call right now, please leave a message after the tone."
	for i := range 20 {
		c := clip{
			name: fmt.Sprintf("machine%02d", i), machine: true, voice: voices[i%len(voices)],
			speed: 130 + (i*23)%80, pitch: 30 + (i*11)%45,
			text: machines[i%len(machines)], lead: 0.1 + float64(i%4)*0.25, trail: 1,
			noise: i%2 == 1,
		}
		if i%6 == 5 {
			c.voice, c.text = "en-us", enMachine
		}
		if i%3 == 2 {
			c.effect = []string{"speed", "1.1"}
		}
		set = append(set, c)
	}
	return set
}

// render turns a clip into 8 kHz mono µ-law, as a phone line delivers it, and
// returns it decoded to PCM16 by the media package's WAV parser.
func render(ctx context.Context, dir string, c clip) ([]int16, error) {
	raw := filepath.Join(dir, c.name+"-raw.wav")
	voice := filepath.Join(dir, c.name+"-voice.wav")
	out := filepath.Join(dir, c.name+".wav")
	cmds := [][]string{
		{"espeak-ng", "-v", c.voice, "-s", fmt.Sprint(c.speed), "-p", fmt.Sprint(c.pitch), "-w", raw, c.text},
		append(append([]string{"sox", raw, "-r", "8000", "-c", "1", "-b", "16", voice}, c.effect...),
			// Trim espeak's own leading and trailing silence so lead and trail are exact.
			"silence", "1", "0.02", "1%", "reverse", "silence", "1", "0.02", "1%", "reverse",
			"norm", "-6", "pad", fmt.Sprint(c.lead), fmt.Sprint(c.trail)),
	}
	final := voice
	if c.noise {
		noise := filepath.Join(dir, c.name+"-noise.wav")
		mixed := filepath.Join(dir, c.name+"-mixed.wav")
		cmds = append(cmds,
			[]string{"sh", "-c", fmt.Sprintf("sox -n -r 8000 -c 1 -b 16 %s synth $(soxi -D %s) whitenoise vol 0.02", noise, voice)},
			[]string{"sox", "-m", "-v", "1", voice, "-v", "1", noise, mixed})
		final = mixed
	}
	cmds = append(cmds, []string{"sox", final, "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", out})
	for _, args := range cmds {
		if b, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%v: %w: %s", args, err, b)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	w, err := media.ParseWAV(b)
	if err != nil {
		return nil, err
	}
	return w.PCM(), nil
}

// TestAccuracy generates a labelled set of human and answering-machine greetings
// with espeak-ng and sox and requires ≥ 90 % precision and recall for machines,
// counting NotSure as wrong.
func TestAccuracy(t *testing.T) {
	testenv.RequireTool(t, "espeak-ng", "espeak-ng")
	testenv.RequireTool(t, "sox", "sox")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	set := accuracySet()
	pcms := make([][]int16, len(set))
	errs := make([]error, len(set))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, c := range set {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pcms[i], errs[i] = render(ctx, dir, c)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("render %s: %v", set[i].name, err)
		}
	}

	p := DefaultParams()
	var tp, fp, fn, humansOK, humans int
	var humanTimes, shortTimes []time.Duration
	for i, c := range set {
		r := run(t, p, pcms[i])
		got := r.Decision == Machine
		t.Logf("%-9s %-8s s=%3d p=%2d %-7v %-14s at %v words %d %q", c.name, c.voice, c.speed, c.pitch, r.Decision, r.Cause, r.At, r.Words, c.text[:min(len(c.text), 24)])
		switch {
		case c.machine && got:
			tp++
		case c.machine:
			fn++
			t.Logf("  MISSED machine %s", c.name)
		case got:
			fp++
			t.Logf("  FALSE machine %s", c.name)
		}
		if !c.machine {
			humans++
			// Decided AfterGreetingSilence after the greeting ends, give or take a frame
			// and the greeting's own fade-out.
			end := time.Duration(len(pcms[i]))*time.Second/SampleRate - time.Duration(c.trail*float64(time.Second))
			if r.Decision == Human && r.At-end > p.AfterGreetingSilence+150*time.Millisecond {
				t.Errorf("%s: decided %v after the greeting ended, want ≤ %v", c.name, r.At-end, p.AfterGreetingSilence+150*time.Millisecond)
			}
			if r.Decision == Human {
				humansOK++
				humanTimes = append(humanTimes, r.At)
				if !strings.ContainsAny(c.text, " ,") {
					shortTimes = append(shortTimes, r.At)
				}
			}
		}
	}
	precision := float64(tp) / float64(max(tp+fp, 1))
	recall := float64(tp) / float64(max(tp+fn, 1))
	q := func(ds []time.Duration, f float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		ds = slices.Sorted(slices.Values(ds))
		return ds[min(len(ds)-1, int(f*float64(len(ds))))]
	}
	t.Logf("machine precision %.2f recall %.2f (tp %d fp %d fn %d); humans right %d/%d; human decision p50 %v p99 %v; one-word greetings p50 %v p99 %v",
		precision, recall, tp, fp, fn, humansOK, humans, q(humanTimes, 0.5), q(humanTimes, 0.99), q(shortTimes, 0.5), q(shortTimes, 0.99))
	if precision < 0.9 || recall < 0.9 {
		t.Errorf("machine precision %.2f recall %.2f, want ≥ 0.90", precision, recall)
	}
	if float64(humansOK) < 0.9*float64(humans) {
		t.Errorf("humans decided Human: %d of %d, want ≥ 90 %%", humansOK, humans)
	}
	// The 2-second connect rule: a one-word "Alô?" must leave time to connect.
	if p99 := q(shortTimes, 0.99); p99 >= 2*time.Second {
		t.Errorf("one-word human greeting decision p99 %v, want < 2 s", p99)
	}
}
