package media

import (
	"testing"

	"github.com/zaf/g711"
)

func TestG711KnownValues(t *testing.T) {
	tests := []struct {
		name string
		got  int16
		want int16
	}{
		{"µ-law 0xFF is +0", ulawToLinear[0xFF], 0},
		{"µ-law 0x7F is -0", ulawToLinear[0x7F], 0},
		{"µ-law 0x80 is max", ulawToLinear[0x80], 32124},
		{"µ-law 0x00 is min", ulawToLinear[0x00], -32124},
		{"A-law 0xD5 is +8", alawToLinear[0xD5], 8},
		{"A-law 0x55 is -8", alawToLinear[0x55], -8},
		{"A-law 0xAA is max", alawToLinear[0xAA], 32256},
		{"A-law 0x2A is min", alawToLinear[0x2A], -32256},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	encodes := []struct {
		name string
		got  byte
		want byte
	}{
		{"µ-law of 0", linearToULaw[0], 0xFF},
		{"µ-law of 32767", linearToULaw[32767], 0x80},
		{"µ-law of -32768", linearToULaw[uint16(0x8000)], 0x00},
		{"A-law of 0", linearToALaw[0], 0xD5},
		{"A-law of 32767", linearToALaw[32767], 0xAA},
		{"A-law of -32768", linearToALaw[uint16(0x8000)], 0x2A},
		{"µ-law silence to A-law", ulawToALaw[0xFF], 0xD5},
		{"A-law +8 to µ-law +8", alawToULaw[0xD5], 0xFE},
	}
	for _, tt := range encodes {
		if tt.got != tt.want {
			t.Errorf("%s: got %#02x, want %#02x", tt.name, tt.got, tt.want)
		}
	}
}

// TestG711MatchesReference checks the decode tables against an independent
// implementation (github.com/zaf/g711).
func TestG711MatchesReference(t *testing.T) {
	for i := range 256 {
		if got, want := ulawToLinear[i], g711.DecodeUlawFrame(uint8(i)); got != want {
			t.Errorf("µ-law %#02x: got %d, reference %d", i, got, want)
		}
		if got, want := alawToLinear[i], g711.DecodeAlawFrame(uint8(i)); got != want {
			t.Errorf("A-law %#02x: got %d, reference %d", i, got, want)
		}
	}
}

func TestG711RoundTrip(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if b != 0x7F { // -0 encodes back as +0
			if got := linearToULaw[uint16(ulawToLinear[b])]; got != b {
				t.Errorf("µ-law %#02x → %d → %#02x", b, ulawToLinear[b], got)
			}
		}
		if got := linearToALaw[uint16(alawToLinear[b])]; got != b {
			t.Errorf("A-law %#02x → %d → %#02x", b, alawToLinear[b], got)
		}
		// µ-law → A-law → µ-law loses at most one quantisation step.
		back := alawToULaw[ulawToALaw[b]]
		if d := int(ulawToLinear[back]) - int(ulawToLinear[b]); d < -512 || d > 512 {
			t.Errorf("µ-law %#02x through A-law came back %#02x (Δ %d)", b, back, d)
		}
	}
}

// TestG711Quantisation checks every 16-bit sample encodes to the nearest or next
// level: the error is within one segment step of the value.
func TestG711Quantisation(t *testing.T) {
	for v := -32768; v <= 32767; v++ {
		s := int16(v)
		for _, c := range []struct {
			name string
			dec  int16
		}{
			{"µ-law", ulawToLinear[linearToULaw[uint16(s)]]},
			{"A-law", alawToLinear[linearToALaw[uint16(s)]]},
		} {
			err := v - int(c.dec)
			if err < 0 {
				err = -err
			}
			// Steps double per segment: the largest is 1024 (µ-law) / 1024 (A-law);
			// relative to the value, the error stays under 1/16 above the first segment.
			if err > 64 && err*16 > abs(v)+64 {
				t.Fatalf("%s of %d decodes to %d (error %d)", c.name, v, c.dec, err)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestTranscoders(t *testing.T) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16((i*397)%20000 - 10000)
	}
	ulaw := make([]byte, 160)
	EncodeULaw(ulaw, pcm)
	alaw := make([]byte, 160)
	EncodeALaw(alaw, pcm)

	tx, err := NewTranscoder(PCMU, PCMA)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 160)
	n, _ := tx.Transcode(out, ulaw)
	for i := range n {
		if out[i] != ulawToALaw[ulaw[i]] {
			t.Fatalf("PCMU→PCMA byte %d: %#02x", i, out[i])
		}
		// Close to encoding the original directly.
		if d := int(alawToLinear[out[i]]) - int(pcm[i]); abs(d) > abs(int(pcm[i]))/8+64 {
			t.Fatalf("PCMU→PCMA sample %d: %d for %d", i, alawToLinear[out[i]], pcm[i])
		}
	}
	if _, err := NewTranscoder(PCMA, PCMU); err != nil {
		t.Fatal(err)
	}
	if tx, _ := NewTranscoder(PCMU, PCMU); tx == nil {
		t.Fatal("no identity transcoder")
	}
	if !OpusAvailable {
		if _, err := NewTranscoder(Opus, PCMU); err == nil {
			t.Fatal("Opus transcoder without libopus")
		}
	}
}

func BenchmarkEncodeULaw(b *testing.B) {
	pcm := make([]int16, 160)
	out := make([]byte, 160)
	b.SetBytes(160)
	for b.Loop() {
		EncodeULaw(out, pcm)
	}
}

func BenchmarkULawToALaw(b *testing.B) {
	in := make([]byte, 160)
	out := make([]byte, 160)
	b.SetBytes(160)
	for b.Loop() {
		ULawToALaw(out, in)
	}
}
