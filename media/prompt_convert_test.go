package media

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"
)

// wavOf builds a WAV file of a tone at freq Hz (0: silence) lasting length.
func wavOf(t *testing.T, format WAVFormat, rate uint32, channels, bits uint16, freq float64, length time.Duration) []byte {
	t.Helper()
	frames := int(float64(rate) * length.Seconds())
	var data []byte
	for i := range frames {
		v := 0.0
		if freq > 0 {
			v = 12000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
		}
		for range channels {
			switch {
			case format == WAVFormatULaw:
				b := make([]byte, 1)
				EncodeULaw(b, []int16{int16(v)})
				data = append(data, b...)
			case bits == 8:
				data = append(data, byte(int(v/256)+128))
			default:
				data = binary.LittleEndian.AppendUint16(data, uint16(int16(v)))
			}
		}
	}
	h := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	h = binary.LittleEndian.AppendUint32(h, 16)
	h = binary.LittleEndian.AppendUint16(h, uint16(format))
	h = binary.LittleEndian.AppendUint16(h, channels)
	h = binary.LittleEndian.AppendUint32(h, rate)
	h = binary.LittleEndian.AppendUint32(h, rate*uint32(channels)*uint32(bits)/8)
	h = binary.LittleEndian.AppendUint16(h, channels*bits/8)
	h = binary.LittleEndian.AppendUint16(h, bits)
	h = append(h, "data"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(data)))
	out := append(h, data...)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

// power is the mean power of pcm at freq Hz (8 kHz), by correlation.
func power(pcm []int16, freq float64) float64 {
	var re, im float64
	for i, s := range pcm {
		a := 2 * math.Pi * freq * float64(i) / PCMRate
		re += float64(s) * math.Cos(a)
		im += float64(s) * math.Sin(a)
	}
	n := float64(len(pcm))
	return (re*re + im*im) / (n * n)
}

// TestConvertPrompt converts files of the common kinds and checks the result is what a
// Player plays, as long as the source, with a speech tone kept and a tone above what a
// call carries filtered out rather than folded down to an audible one.
func TestConvertPrompt(t *testing.T) {
	tests := []struct {
		name     string
		format   WAVFormat
		rate     uint32
		channels uint16
		bits     uint16
	}{
		{"8 kHz mono 16-bit", WAVFormatPCM, 8000, 1, 16},
		{"16 kHz mono 8-bit", WAVFormatPCM, 16000, 1, 8},
		{"22.05 kHz stereo 16-bit", WAVFormatPCM, 22050, 2, 16},
		{"44.1 kHz stereo 16-bit", WAVFormatPCM, 44100, 2, 16},
		{"48 kHz mono 16-bit", WAVFormatPCM, 48000, 1, 16},
		{"8 kHz µ-law", WAVFormatULaw, 8000, 1, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, length, err := ConvertPrompt(wavOf(t, tc.format, tc.rate, tc.channels, tc.bits, 440, 1500*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if d := length - 1500*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("length %v, want 1.5 s", length)
			}
			w, err := ParseWAV(out)
			if err != nil || w.SampleRate != PCMRate || w.Channels != 1 || w.BitsPerSample != 16 {
				t.Fatalf("converted %+v %v, want 8 kHz mono 16-bit", w, err)
			}
			p, err := NewPlayer(out)
			if err != nil {
				t.Fatalf("a Player refuses the converted file: %v", err)
			}
			if p.Duration() != length {
				t.Errorf("player %v, convert %v", p.Duration(), length)
			}
			pcm := w.PCM()
			// A sine of amplitude A has power A²/4 at its frequency by this measure.
			want := 12000.0 * 12000 / 4
			if got := power(pcm, 440); got < 0.7*want || got > 1.3*want {
				t.Errorf("440 Hz power %.0f, want about %.0f", got, want)
			}
		})
	}
	// 6 kHz at 44.1 kHz is above the 4 kHz a call carries: a converter that only picked
	// samples would fold it onto 2 kHz at full strength.
	out, _, err := ConvertPrompt(wavOf(t, WAVFormatPCM, 44100, 1, 16, 6000, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := ParseWAV(out)
	if got, full := power(w.PCM(), 2000), 12000.0*12000/4; got > full/100 {
		t.Errorf("6 kHz folded onto 2 kHz with power %.0f (%.1f%% of the tone's)", got, 100*got/full)
	}
}

// TestConvertPromptRefuses checks each bad file is refused with its problem named.
func TestConvertPromptRefuses(t *testing.T) {
	long := wavOf(t, WAVFormatPCM, 8000, 1, 16, 440, MaxPromptLength+time.Second)
	tests := []struct {
		name string
		file []byte
		code string
	}{
		{"empty", nil, "empty"},
		{"not audio", []byte("%PDF-1.7 this is a document, not a recording"), "not_wav"},
		{"an MP3", append([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"), make([]byte, 64)...), "not_wav"},
		{"no samples", wavOf(t, WAVFormatPCM, 8000, 1, 16, 440, 0), "empty"},
		{"silence", wavOf(t, WAVFormatPCM, 8000, 1, 16, 0, time.Second), "empty"},
		{"too long", long, "too_long"},
		{"too low a rate", wavOf(t, WAVFormatPCM, 4000, 1, 16, 440, time.Second), "unsupported_rate"},
		{"surround", wavOf(t, WAVFormatPCM, 8000, 6, 16, 440, time.Second), "unsupported_format"},
		{"24-bit", wavOf(t, WAVFormatPCM, 8000, 1, 24, 0, 0), "unsupported_format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ConvertPrompt(tc.file)
			var p *PromptProblem
			if !errors.As(err, &p) || p.Code != tc.code || p.Message == "" {
				t.Fatalf("error %v, want problem %s", err, tc.code)
			}
			t.Log(p.Message)
		})
	}
}
