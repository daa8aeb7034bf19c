package media

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func writeWAV(t testing.TB, pcm []int16, channels uint16) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWAVWriter(f, 8000, channels)
	if err != nil {
		t.Fatal(err)
	}
	// Two writes, to exercise the running size.
	if err := w.WriteSamples(pcm[:len(pcm)/2]); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSamples(pcm[len(pcm)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWAVRoundTrip(t *testing.T) {
	pcm := make([]int16, 1000)
	for i := range pcm {
		pcm[i] = int16(i*65 - 32000)
	}
	for _, ch := range []uint16{1, 2} {
		w, err := ParseWAV(writeWAV(t, pcm, ch))
		if err != nil {
			t.Fatal(err)
		}
		if w.Format != WAVFormatPCM || w.Channels != ch || w.SampleRate != 8000 || w.BitsPerSample != 16 {
			t.Fatalf("header %+v", w)
		}
		if !slices.Equal(w.PCM(), pcm) {
			t.Fatal("samples differ after round trip")
		}
	}
}

func TestParseWAVEmbeddedPrompt(t *testing.T) {
	b := AbandonPromptWAV()
	if len(b) >= 60<<10 {
		t.Errorf("prompt is %d bytes, want < 60 KB", len(b))
	}
	w, err := ParseWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if w.Format != WAVFormatULaw || w.SampleRate != 8000 || w.Channels != 1 {
		t.Errorf("prompt format %+v", w)
	}
	p, err := NewAbandonPlayer()
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Duration(); d < 2*time.Second || d > 8*time.Second {
		t.Errorf("prompt lasts %v", d)
	}
}

func TestParseWAVErrors(t *testing.T) {
	good := writeWAV(t, make([]int16, 10), 1)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not RIFF", append([]byte("RIFX"), good[4:]...)},
		{"no data", good[:36]},
		{"fmt overruns", good[:20]},
		{"bad bits", func() []byte {
			b := slices.Clone(good)
			binary.LittleEndian.PutUint16(b[34:], 12)
			return b
		}()},
		{"zero channels", func() []byte {
			b := slices.Clone(good)
			binary.LittleEndian.PutUint16(b[22:], 0)
			return b
		}()},
	}
	for _, tt := range tests {
		if _, err := ParseWAV(tt.b); err == nil {
			t.Errorf("%s: parsed", tt.name)
		}
	}
	// A streamed file (data size unset) still parses.
	b := slices.Clone(good)
	binary.LittleEndian.PutUint32(b[40:], 0xFFFFFFFF)
	if w, err := ParseWAV(b); err != nil || len(w.Data) != 20 {
		t.Errorf("streamed WAV: %v", err)
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add(writeWAV(f, make([]int16, 4), 1))
	f.Add(AbandonPromptWAV()[:200])
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParseWAV(b)
		if err != nil {
			return
		}
		_ = w.PCM()
		_, _ = NewPlayer(b)
	})
}

func FuzzParseRTP(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF})
	f.Add([]byte{0xB1, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0xBE, 0xDE, 0, 1, 1, 2, 3, 4, 9, 9, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseRTP(b)
		if err != nil {
			return
		}
		_ = v.payload()
		if v.headerLen() < rtpFixedHeader || v.withoutPadding() > len(b) {
			t.Fatalf("bad view %+v of %d bytes", v, len(b))
		}
		// A valid packet survives the bridge's forward path.
		var s seqTracker
		s.update(v.ssrc(), v.seq())
		o := newOutStream(8000, 20*time.Millisecond)
		seq, ts, _ := o.next(v.ssrc(), v.seq(), v.timestamp(), 8000)
		rewriteRTPHeader(b, v.marker(), 0, seq, ts, 1)
	})
}

func TestPlayerPacing(t *testing.T) {
	pcm := make([]int16, 8000/2+37) // 0.5 s and a partial frame
	for i := range pcm {
		pcm[i] = int16(i)
	}
	p, err := NewPlayer(writeWAV(t, pcm, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, codec := range []Codec{PCMU, PCMA} {
		t.Run(codec.Name, func(t *testing.T) {
			ph := newPhone(t, codec)
			start := time.Now()
			st, err := p.Play(context.Background(), ph.leg)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			if want := 26; st.Packets != want {
				t.Fatalf("%d packets, want %d", st.Packets, want)
			}
			// 26 packets: the last is sent 25 frames after the first, so a player that
			// paces takes at least 500 ms. The upper bound only catches a stalled player:
			// a loaded machine (CI's two shared cores) may delay the last send, and the
			// pacing itself is what the lower bound tests.
			if elapsed < 490*time.Millisecond || elapsed > 3*time.Second {
				t.Errorf("played in %v, want ≈ 500 ms", elapsed)
			}
			for i := range st.Packets {
				got := ph.recv(t, recvTimeout)
				if got.SSRC != st.SSRC || got.SequenceNumber != st.FirstSeq+uint16(i) ||
					got.Timestamp != st.FirstTimestamp+uint32(i)*160 || got.Marker != (i == 0) ||
					got.PayloadType != codec.PayloadType || len(got.Payload) != 160 {
					t.Fatalf("packet %d: %v", i, got.Header)
				}
				dec, _ := NewDecoder(codec)
				out := make([]int16, 160)
				dec.Decode(out, got.Payload)
				if i == 25 && out[159] != 0 && out[159] != 8 { // A-law has no zero: ±8
					t.Errorf("last frame not padded with silence: %d", out[159])
				}
			}
		})
	}
	// Pacing measured at the receiver as it happens: no frame arrives before its
	// slot (a load may delay frames and let the absolute schedule catch up, but
	// a player that paces never sends one early).
	ph := newPhone(t, PCMU)
	start := time.Now()
	go func() { _, _ = p.Play(context.Background(), ph.leg) }()
	for i := range 26 {
		ph.recv(t, recvTimeout)
		if slot, at := time.Duration(i)*20*time.Millisecond, time.Since(start); at < slot-2*time.Millisecond {
			t.Fatalf("frame %d arrived %v after the start, before its slot at %v", i, at, slot)
		}
	}
}

func TestPlayerStopsOnCancel(t *testing.T) {
	p, err := NewAbandonPlayer()
	if err != nil {
		t.Fatal(err)
	}
	ph := newPhone(t, PCMU)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	st, err := p.Play(ctx, ph.leg)
	if err == nil || st.Packets > 7 {
		t.Errorf("Play after cancel: %d packets, %v", st.Packets, err)
	}
}

func TestRecorder(t *testing.T) {
	agent := newPhone(t, PCMU)
	cust := newPhone(t, PCMA)
	b := startBridge(t, agent.leg, BridgeConfig{})
	path := filepath.Join(t.TempDir(), "call.wav")
	rec, err := CreateRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Connect(cust.leg, WithRecorder(rec)); err != nil {
		t.Fatal(err)
	}
	custPCM := make([]int16, 160)
	agentPCM := make([]int16, 160)
	for i := range custPCM {
		custPCM[i] = 1000
		agentPCM[i] = -3000
	}
	ca := make([]byte, 160)
	EncodeALaw(ca, custPCM)
	au := make([]byte, 160)
	EncodeULaw(au, agentPCM)
	for range 10 {
		cust.send(t, 8, false, ca)
		agent.recv(t, recvTimeout)
		agent.send(t, 0, false, au)
		cust.recv(t, recvTimeout)
	}
	b.Disconnect()
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ParseWAV(raw)
	if err != nil {
		t.Fatal(err)
	}
	if w.Channels != 2 || w.SampleRate != 8000 || w.Format != WAVFormatPCM {
		t.Fatalf("recording format %+v", w)
	}
	s := w.PCM()
	if len(s) != 2*1600 {
		t.Fatalf("%d samples, want 2 × 1600", len(s))
	}
	l, r := alawToLinear[ca[0]], ulawToLinear[au[0]]
	for i := 0; i < len(s); i += 2 {
		if s[i] != l || s[i+1] != r {
			t.Fatalf("frame %d: %d/%d, want %d/%d", i/2, s[i], s[i+1], l, r)
		}
	}
}

func TestRecorderPadsSilentSide(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.wav")
	rec, err := CreateRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]int16, 160)
	for i := range one {
		one[i] = 7
	}
	for range 50 { // 1 s of customer, agent silent
		rec.WriteCustomer(one)
	}
	rec.WriteAgent(one)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	w, err := ParseWAV(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := w.PCM()
	if len(s) != 2*8000 {
		t.Fatalf("%d samples, want 2 × 8000", len(s))
	}
	// The agent's one frame lands after the padding, 200 ms before the end.
	if s[2*(8000-recorderMaxLag)+1] != 7 || s[2*(8000-recorderMaxLag)-1] != 0 {
		t.Error("agent frame not aligned after padding")
	}
}
