package media

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// recLeg keeps the headers of the packets written to it.
type recLeg struct {
	Leg
	mu   sync.Mutex
	seqs []uint16
	ssrc map[uint32]bool
}

func (l *recLeg) Codec() Codec { return PCMU }

func (l *recLeg) WriteRTP(pkt []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seqs = append(l.seqs, binary.BigEndian.Uint16(pkt[2:]))
	l.ssrc[binary.BigEndian.Uint32(pkt[8:])] = true
	return nil
}

// TestContinuousLegMakesOneStreamOfSuccessivePrompts: the hold tone played twice
// and then the apology, each numbered from its own random start, reach the leg as
// one stream: one SSRC, sequence numbers one after another.
func TestContinuousLegMakesOneStreamOfSuccessivePrompts(t *testing.T) {
	rec := &recLeg{ssrc: map[uint32]bool{}}
	leg := NewContinuousLeg(rec)
	if d := NewHoldPlayer().Duration(); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("hold tone lasts %s", d)
	}
	// Short prompts: the stream's numbering, not the sound, is under test.
	hold, sorry := &Player{pcm: holdPCM()[:PCMRate/5]}, &Player{pcm: make([]int16, PCMRate/10)}
	want := 0
	for _, p := range []*Player{hold, hold, sorry} {
		st, err := p.Play(context.Background(), leg)
		if err != nil {
			t.Fatal(err)
		}
		want += st.Packets
	}
	if len(rec.seqs) != want || len(rec.ssrc) != 1 {
		t.Fatalf("%d packets in %d streams, want %d in one", len(rec.seqs), len(rec.ssrc), want)
	}
	for i := 1; i < len(rec.seqs); i++ {
		if rec.seqs[i] != rec.seqs[i-1]+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, rec.seqs[i], rec.seqs[i-1])
		}
	}
}
