package media

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
)

// PromptProblem is why an uploaded prompt was refused; its message names the problem.
type PromptProblem struct {
	// Code is stable: not_wav, unsupported_format, unsupported_rate, empty, too_long.
	Code    string
	Message string
}

func (p *PromptProblem) Error() string { return p.Message }

// MaxPromptLength is the longest prompt ConvertPrompt takes: a safe-harbour message
// names the seller and a number to call back, in a few seconds.
const MaxPromptLength = 30 * time.Second

// Sample rates ConvertPrompt accepts: those of telephony, speech and music files.
const (
	minPromptRate = 8000
	maxPromptRate = 192000
)

// ConvertPrompt turns an uploaded WAV (PCM 8 or 16 bit, µ-law or A-law, any rate from
// 8 to 192 kHz, mono or stereo) into what a Player plays: 8 kHz mono 16-bit PCM WAV. It
// returns the converted file and its length; a file it cannot take is refused with a
// *PromptProblem whose message names what is wrong.
func ConvertPrompt(b []byte) ([]byte, time.Duration, error) {
	if len(b) == 0 {
		return nil, 0, &PromptProblem{"empty", "the file is empty"}
	}
	w, err := ParseWAV(b)
	if err != nil {
		if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
			return nil, 0, &PromptProblem{"not_wav", "not a WAV file: it has no RIFF/WAVE header"}
		}
		return nil, 0, &PromptProblem{"unsupported_format", "the WAV file cannot be read: " + strings.TrimPrefix(err.Error(), ErrBadWAV.Error()+": ")}
	}
	if w.SampleRate < minPromptRate || w.SampleRate > maxPromptRate {
		return nil, 0, &PromptProblem{"unsupported_rate", fmt.Sprintf("sample rate %d Hz: it must be between %d and %d Hz", w.SampleRate, minPromptRate, maxPromptRate)}
	}
	if w.Channels > 2 {
		return nil, 0, &PromptProblem{"unsupported_format", fmt.Sprintf("%d channels: it must be mono or stereo", w.Channels)}
	}
	pcm := w.PCM()
	frames := len(pcm) / int(w.Channels)
	if frames == 0 {
		return nil, 0, &PromptProblem{"empty", "the WAV file holds no audio"}
	}
	length := time.Duration(frames) * time.Second / time.Duration(w.SampleRate)
	if length > MaxPromptLength {
		return nil, 0, &PromptProblem{"too_long", fmt.Sprintf("%.1f s long: at most %s", length.Seconds(), MaxPromptLength)}
	}
	mono := make([]float64, frames)
	for i := range mono {
		sum := 0.0
		for c := range int(w.Channels) {
			sum += float64(pcm[i*int(w.Channels)+c])
		}
		mono[i] = sum / float64(w.Channels)
	}
	out := resample(mono, int(w.SampleRate), PCMRate)
	silent := true
	for _, s := range out {
		if s != 0 {
			silent = false
			break
		}
	}
	if silent {
		return nil, 0, &PromptProblem{"empty", "the WAV file is silent"}
	}
	var buf seekBuffer
	ww, err := NewWAVWriter(&buf, PCMRate, 1)
	if err != nil {
		return nil, 0, fmt.Errorf("convert prompt: %w", err)
	}
	if err := ww.WriteSamples(out); err != nil {
		return nil, 0, fmt.Errorf("convert prompt: %w", err)
	}
	if err := ww.Close(); err != nil {
		return nil, 0, fmt.Errorf("convert prompt: %w", err)
	}
	return buf.Bytes(), time.Duration(len(out)) * time.Second / PCMRate, nil
}

// resampleHalfTaps is the half-width, in input samples at the output's rate, of the
// resampler's windowed-sinc kernel: enough for speech to keep its edges without
// ringing that a telephone would let through.
const resampleHalfTaps = 16

// resample converts samples from rate in to rate out with a Hann-windowed sinc
// low-pass at the lower of the two Nyquist frequencies, so that music or speech
// recorded at 44.1 kHz does not fold its highs into the 4 kHz a call carries.
func resample(x []float64, in, out int) []int16 {
	if in == out {
		y := make([]int16, len(x))
		for i, v := range x {
			y[i] = clip16(v)
		}
		return y
	}
	ratio := float64(in) / float64(out)
	cut := min(1, 1/ratio) // cutoff, as a fraction of the input's Nyquist
	half := int(math.Ceil(resampleHalfTaps * max(ratio, 1)))
	n := int(float64(len(x)) / ratio)
	y := make([]int16, n)
	for i := range y {
		pos := float64(i) * ratio
		centre := int(math.Floor(pos))
		sum, norm := 0.0, 0.0
		for k := centre - half + 1; k <= centre+half; k++ {
			if k < 0 || k >= len(x) {
				continue
			}
			d := pos - float64(k)
			wv := 0.5 + 0.5*math.Cos(math.Pi*d/float64(half))
			h := cut * sinc(cut*d) * wv
			sum += x[k] * h
			norm += h
		}
		if norm != 0 {
			sum /= norm // unit gain at DC whatever the kernel's truncation
		}
		y[i] = clip16(sum)
	}
	return y
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

func clip16(v float64) int16 {
	return int16(max(min(math.Round(v), math.MaxInt16), math.MinInt16))
}

// seekBuffer is an in-memory io.WriteSeeker for WAVWriter.
type seekBuffer struct {
	b   []byte
	off int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if need := s.off + len(p); need > len(s.b) {
		s.b = append(s.b, make([]byte, need-len(s.b))...)
	}
	copy(s.b[s.off:], p)
	s.off += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(offset int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case 0:
	case 1:
		base = int64(s.off)
	case 2:
		base = int64(len(s.b))
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if base+offset < 0 {
		return 0, fmt.Errorf("seek: negative position")
	}
	s.off = int(base + offset)
	return int64(s.off), nil
}

// Bytes returns what was written.
func (s *seekBuffer) Bytes() []byte { return bytes.Clone(s.b) }
