//go:build opus

package media

import (
	"math"
	"testing"
)

// TestOpusTranscoding needs libopus-dev: go test -tags opus,nolibopusfile ./media/
func TestOpusTranscoding(t *testing.T) {
	enc, err := NewEncoder(Opus)
	if err != nil {
		t.Fatal(err)
	}
	toPCMU, err := NewTranscoder(Opus, PCMU)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 160)
	payload := make([]byte, 1500)
	out := make([]byte, 1500)
	var energy float64
	for frame := range 20 {
		for i := range pcm {
			pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(frame*160+i)/8000))
		}
		n, err := enc.Encode(payload, pcm)
		if err != nil {
			t.Fatal(err)
		}
		m, err := toPCMU.Transcode(out, payload[:n])
		if err != nil {
			t.Fatal(err)
		}
		if m != 160 {
			t.Fatalf("frame %d: %d PCMU bytes, want 160", frame, m)
		}
		if frame >= 10 { // after the codec's start-up
			dec := make([]int16, 160)
			DecodeULaw(dec, out[:m])
			for _, s := range dec {
				energy += float64(s) * float64(s)
			}
		}
	}
	rms := math.Sqrt(energy / 1600)
	if rms < 3000 || rms > 8000 { // a 8000-amplitude sine has RMS 5657
		t.Errorf("RMS after Opus → PCMU %.0f, want ≈ 5657", rms)
	}
	if _, err := NewTranscoder(PCMU, Opus); err != nil {
		t.Fatal(err)
	}
}
