package dialer

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

func TestRingTimeoutCombinesCampaignPacerAndEngine(t *testing.T) {
	const ceiling = 25 * time.Second
	tests := []struct {
		name          string
		fixed, chosen time.Duration
		want          time.Duration
	}{
		{name: "automatic, the pacer chooses none: the engine's", want: ceiling},
		{name: "automatic, the pacer chooses less: the pacer's", chosen: 17 * time.Second, want: 17 * time.Second},
		{name: "automatic, the pacer chooses more: capped at the engine's", chosen: 40 * time.Second, want: ceiling},
		{name: "automatic, the pacer chooses the engine's", chosen: ceiling, want: ceiling},
		{name: "fixed shorter than the engine's", fixed: 5 * time.Second, chosen: 5 * time.Second, want: 5 * time.Second},
		{name: "fixed longer than the engine's: the campaign's", fixed: 60 * time.Second, want: 60 * time.Second},
		{name: "fixed wins over the pacer's choice", fixed: 20 * time.Second, chosen: 16 * time.Second, want: 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ringTimeout(tt.fixed, tt.chosen, ceiling); got != tt.want {
				t.Errorf("ringTimeout(%v, %v, %v) = %v, want %v", tt.fixed, tt.chosen, ceiling, got, tt.want)
			}
		})
	}
}

func TestCampaignDefaultMinRingTimeoutIsThePacers(t *testing.T) {
	if got, want := campaigns.DefaultMinRingTimeout.Std(), pacing.DefaultMinRingTimeout; got != want {
		t.Errorf("campaigns.DefaultMinRingTimeout = %v, pacing.DefaultMinRingTimeout = %v: the documented defaults differ", got, want)
	}
}

func TestRunPassesTheCampaignsRingSettingsToThePacer(t *testing.T) {
	c := campaigns.Campaign{Name: "ring", CallerID: "+551130000000", State: campaigns.StateRunning}
	c.ApplyDefaults()
	c.Pacing.RingTimeout, c.Pacing.MinRingTimeout = campaigns.Duration(20*time.Second), campaigns.Duration(18*time.Second)
	r := &run{e: &Engine{cfg: Config{}.withDefaults()}}
	s := r.pacingSettings(c)
	if s.RingTimeout != 20*time.Second || s.MinRingTimeout != 18*time.Second {
		t.Errorf("pacing settings ring %v, minimum %v; want 20s, 18s", s.RingTimeout, s.MinRingTimeout)
	}
}

// A campaign's fixed ring timeout gives up a call that rings and is never answered long
// before the engine's own ring timeout would.
func TestEngineGivesUpARingAtTheCampaignsRingTimeout(t *testing.T) {
	const fixed = 5 * time.Second // the shortest a campaign may set
	carrier := sipptest.Start(t, "noanswer.xml", sipptest.Options{Calls: 1})
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}},
		Config{RingTimeout: 60 * time.Second})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.Pacing.RingTimeout = campaigns.Duration(fixed)
		return c.Validate()
	}); err != nil {
		t.Fatal(err)
	}
	h.readyAgents(c.ID, 1)
	h.setState(c.ID, campaigns.StateRunning)

	list := h.waitContacts(c.ID, 25*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactExhausted })
	as := h.attempts(list[0].ID)
	if len(as) != 1 {
		t.Fatalf("%d attempts, want 1: %+v", len(as), as)
	}
	a := as[0]
	if a.Outcome != string(campaigns.OutcomeNoAnswer) || a.RingAt == nil || a.EndAt == nil {
		t.Fatalf("attempt %+v, want a no-answer that rang", a)
	}
	t.Logf("rang %v, sip status %d", a.EndAt.Sub(a.CreatedAt), a.SIPStatus)
	// Generous bounds: not cut short, and nowhere near the engine's 60 s.
	if rang := a.EndAt.Sub(a.CreatedAt); rang < fixed-time.Second || rang > 30*time.Second {
		t.Errorf("the call rang for %v, want about the campaign's %v (the engine's is 60s)", rang, fixed)
	}
	// sipp's scenario ends only after our CANCEL (and its 487's ACK).
	carrier.Wait(t, 10*time.Second)
}
