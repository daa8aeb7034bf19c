package dialer

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// toneMessage is a campaign's safe-harbour message as an upload would store it: a
// 44.1 kHz stereo recording, loud from its first sample, converted.
func toneMessage(t *testing.T) ([]byte, time.Duration) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "message.wav"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.NewWAVWriter(f, 44100, 2)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 2*44100*3/2)
	for i := range pcm {
		pcm[i] = int16(12000 * math.Sin(2*math.Pi*1000*float64(i/2)/44100))
	}
	if err := w.WriteSamples(pcm); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	wav, length, err := media.ConvertPrompt(raw)
	if err != nil {
		t.Fatal(err)
	}
	return wav, length
}

// TestSafeHarbourWithinTwoSeconds: a person answers, no agent is free, and the message
// must reach their phone within 2 s of their greeting, as the US TSR and Ofcom require.
// The carrier times the greeting's first packet and every packet the dialer sends back;
// the campaign's own message (a 1 kHz tone) is told apart from anything else by its
// sound, the built-in prompt by being the first audio at all. The attempt records which
// message played.
func TestSafeHarbourWithinTwoSeconds(t *testing.T) {
	tests := []struct {
		name  string
		own   bool
		which string
	}{
		{"the campaign's message", true, storage.SafeHarbourCampaign},
		{"the built-in prompt", false, storage.SafeHarbourBuiltin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu       sync.Mutex
				greeting time.Time // the person's first packet left
				heard    time.Time // the first packet of the message arrived
			)
			car, err := carrier.Start(context.Background(), carrier.Config{Seed: 3, Odds: carrier.Odds{Answer: 1},
				RingMin: time.Second, RingMax: time.Second, TalkMin: 20 * time.Second, TalkMax: 20 * time.Second,
				Audio: carrier.AudioSilence,
				FirstRTP: func(_ string, at time.Time) {
					mu.Lock()
					greeting = at
					mu.Unlock()
				},
				CallerRTP: func(_ string, at time.Time, payload []byte) {
					pcm := make([]int16, len(payload))
					media.DecodeULaw(pcm, payload)
					loud := false
					for _, s := range pcm {
						loud = loud || s > 4000 || s < -4000
					}
					mu.Lock()
					defer mu.Unlock()
					if heard.IsZero() && (loud || !tc.own) {
						heard = at
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { car.Close() })
			h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: car.Addr()}}}, Config{})
			c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
			if tc.own {
				wav, length := toneMessage(t)
				if err := h.store.SetSafeHarbour(context.Background(), tester, c.ID, wav, length); err != nil {
					t.Fatal(err)
				}
			}
			ids := h.agents(c.ID, 1, time.Hour)
			h.setState(c.ID, campaigns.StateRunning)
			contacts, _, _ := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{})
			deadline := time.Now().Add(10 * time.Second)
			for len(h.attempts(contacts[0].ID)) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("nothing was dialled")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// The only agent steps away while the call rings.
			if _, err := h.engine.Agents().Pause(ids[0], "coffee", time.Now()); err != nil {
				t.Fatal(err)
			}
			var a storage.Attempt
			for a = h.attempts(contacts[0].ID)[0]; a.State != "ended" || a.SafeHarbour == ""; a = h.attempts(contacts[0].ID)[0] {
				if time.Now().After(deadline.Add(15 * time.Second)) {
					t.Fatalf("attempt never ended with its message recorded: %+v", a)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if a.Outcome != string(campaigns.OutcomeAbandoned) || a.SafeHarbour != tc.which {
				t.Fatalf("attempt %+v, want abandoned with the %s message recorded", a, tc.which)
			}
			mu.Lock()
			g, m := greeting, heard
			mu.Unlock()
			if g.IsZero() || m.IsZero() {
				t.Fatalf("greeting at %v, message heard at %v: the carrier missed one", g, m)
			}
			afterGreeting, afterAnswer := m.Sub(g), m.Sub(*a.AnswerAt)
			t.Logf("message heard %v after the greeting began, %v after the answer", afterGreeting, afterAnswer)
			if afterGreeting > 2*time.Second || afterAnswer > 2*time.Second {
				t.Errorf("message heard %v after the greeting, %v after the answer; want within 2 s", afterGreeting, afterAnswer)
			}
			// The history the agent's screen-pop and the API show says it too.
			hist, err := h.store.ListAttempts(context.Background(), contacts[0].ID)
			if err != nil || len(hist) != 1 || hist[0].SafeHarbour != tc.which {
				t.Errorf("history %+v %v, want the %s message", hist, err, tc.which)
			}
		})
	}
}
