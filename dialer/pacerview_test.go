package dialer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/pacing"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// waitPacerViews waits until the engine's views of the campaign's pacer satisfy ok.
func (h *harness) waitPacerViews(campaignID int64, within time.Duration, ok func([]PacerView) bool) []PacerView {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var views []PacerView
		for _, v := range h.engine.PacerViews() {
			if v.CampaignID == campaignID {
				views = append(views, v)
			}
		}
		if ok(views) {
			return views
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("pacer views of campaign %d not as wanted within %s: %+v", campaignID, within, views)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// callAndMessageLadder has both call channels and a message rung, which has no pacing.
func callAndMessageLadder() []campaigns.Rung {
	return []campaigns.Rung{
		{Channel: campaigns.ChannelSIP, MaxAttempts: 1, RetryDelay: campaigns.Duration(time.Hour)},
		{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1, RetryDelay: campaigns.Duration(time.Hour)},
		{Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1, Template: "lembrete", Language: "pt_BR"},
	}
}

// A running campaign shows its pacer's view of each call channel of its ladder: its mode,
// and the ring timeout its calls get, the campaign's when fixed, else the engine's until
// the pacer has learned. A draft campaign has none, nor one that finished.
func TestEngineShowsThePacersViewOfARunningCampaign(t *testing.T) {
	t.Parallel()
	const engineRing = 7 * time.Second
	tests := []struct {
		name     string
		mode     campaigns.PacingMode
		ring     time.Duration // the campaign's pacing.ring_timeout
		wantRing time.Duration
		wantAuto bool
	}{
		{name: "predictive, automatic ring timeout: the engine's until learned", mode: campaigns.PacingPredictive,
			wantRing: engineRing, wantAuto: true},
		{name: "predictive, fixed ring timeout", mode: campaigns.PacingPredictive, ring: 20 * time.Second,
			wantRing: 20 * time.Second},
		{name: "progressive, automatic ring timeout", mode: campaigns.PacingProgressive, wantRing: engineRing, wantAuto: true},
		{name: "preview, fixed ring timeout", mode: campaigns.PacingPreview, ring: 45 * time.Second, wantRing: 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessWith(t, deadTrunk(t), Config{RingTimeout: engineRing})
			// No agent signs in: nothing dials (the trunk is dead anyway), and the pacer
			// learns nothing.
			c := h.draft(1, tt.mode, callAndMessageLadder())
			if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
				c.Pacing.RingTimeout = campaigns.Duration(tt.ring)
				return c.Validate()
			}); err != nil {
				t.Fatal(err)
			}
			h.engine.CampaignChanged()
			time.Sleep(3 * h.engine.cfg.Sync) // a draft is not run: it has no view
			if views := h.engine.PacerViews(); slices.ContainsFunc(views, func(v PacerView) bool { return v.CampaignID == c.ID }) {
				t.Fatalf("a draft campaign has pacer views: %+v", views)
			}

			h.setState(c.ID, campaigns.StateRunning)
			views := h.waitPacerViews(c.ID, 5*time.Second, func(v []PacerView) bool { return len(v) > 0 })
			var channels []campaigns.Channel
			for _, v := range views {
				channels = append(channels, v.Channel)
			}
			if want := []campaigns.Channel{campaigns.ChannelSIP, campaigns.ChannelWhatsAppCall}; !slices.Equal(channels, want) {
				t.Fatalf("views of channels %v, want %v (the call channels, in ladder order): %+v", channels, want, views)
			}
			// The SIP trunk takes calls (its circuit is closed: nothing dialled it yet);
			// this server has no WhatsApp channel, so new dials are forecast on SIP.
			if sv, wv := views[0], views[1]; sv.Down || !sv.Forecast || !wv.Down || wv.Forecast {
				t.Errorf("SIP down %v, forecast %v; WhatsApp call down %v, forecast %v: want SIP up and forecast, the unconfigured WhatsApp call down",
					sv.Down, sv.Forecast, wv.Down, wv.Forecast)
			}
			for _, v := range views {
				if v.Mode != tt.mode || v.RingTimeout != tt.wantRing || v.RingTimeoutAuto != tt.wantAuto || v.RingTimeoutLearned {
					t.Errorf("%s: mode %s, ring timeout %v (auto %v, learned %v); want %s, %v (auto %v, not learned)",
						v.Channel, v.Mode, v.RingTimeout, v.RingTimeoutAuto, v.RingTimeoutLearned, tt.mode, tt.wantRing, tt.wantAuto)
				}
				if v.DialsLearned != 0 || v.AnswerProb != 0 || v.MeanTalk != 0 || v.MeanWrap != 0 || v.Threshold != 0 || v.Progressive {
					t.Errorf("%s: nothing dialled, yet the pacer learned %+v", v.Channel, v)
				}
			}

			h.setState(c.ID, campaigns.StateFinished)
			h.waitPacerViews(c.ID, 5*time.Second, func(v []PacerView) bool { return len(v) == 0 })
		})
	}
}

// A supervisor's change of ring timeout shows in the view of the running campaign.
func TestEnginePacerViewFollowsTheCampaignsRingTimeout(t *testing.T) {
	h := newHarnessWith(t, deadTrunk(t), Config{RingTimeout: 7 * time.Second})
	c := h.campaign(1, campaigns.PacingPredictive, sipOnlyLadder(1))
	h.waitPacerViews(c.ID, 5*time.Second, func(v []PacerView) bool {
		return len(v) == 1 && v[0].RingTimeoutAuto && v[0].RingTimeout == 7*time.Second
	})
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.Pacing.RingTimeout = campaigns.Duration(30 * time.Second)
		return c.Validate()
	}); err != nil {
		t.Fatal(err)
	}
	h.engine.CampaignChanged()
	h.waitPacerViews(c.ID, 5*time.Second, func(v []PacerView) bool {
		return len(v) == 1 && !v[0].RingTimeoutAuto && v[0].RingTimeout == 30*time.Second
	})
}

// The pacer learns from the calls a predictive campaign places, and the view shows it;
// while too few dials have ended for it to forecast, it dials progressively, accepts no
// risk, and the ring timeout stays the engine's.
func TestEnginePacerViewShowsWhatThePacerLearned(t *testing.T) {
	t.Parallel()
	const contacts = 4
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: contacts})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	c := h.campaign(contacts, campaigns.PacingPredictive, sipOnlyLadder(1))
	h.agents(c.ID, 1, 200*time.Millisecond)
	h.waitContacts(c.ID, 20*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	// The pacer refits its estimates every few seconds as it decides.
	views := h.waitPacerViews(c.ID, 30*time.Second, func(v []PacerView) bool {
		return len(v) == 1 && v[0].DialsLearned == contacts && v[0].AnswerProb > 0 && v[0].MeanTalk > 0
	})
	v := views[0]
	t.Logf("view %+v", v)
	if v.Channel != campaigns.ChannelSIP || v.Mode != campaigns.PacingPredictive || v.AnswerProb > 1 || v.Threshold != 0 || !v.Progressive {
		t.Errorf("view %+v, want SIP, predictive, an answer probability, and progressive while learning", v)
	}
	if v.RingTimeout != h.engine.cfg.RingTimeout || !v.RingTimeoutAuto || v.RingTimeoutLearned {
		t.Errorf("ring timeout %v (auto %v, learned %v) after %d dials; want the engine's %v, automatic, not learned",
			v.RingTimeout, v.RingTimeoutAuto, v.RingTimeoutLearned, v.DialsLearned, h.engine.cfg.RingTimeout)
	}
	carrier.Wait(t, 10*time.Second)
}

// teach feeds a run's pacer ten minutes of a predictive campaign's life, a dial ending
// every second: a person answers one dial in three after 4 to 8 s of ringing, talks for
// 90 s and wraps up for 30 s; the other dials ring out at 40 s.
func teach(t *testing.T, r *run) {
	t.Helper()
	start := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)
	agents := make([]pacing.Agent, 8)
	for i := range 600 {
		now := start.Add(time.Duration(i) * time.Second)
		o := pacing.Observation{At: now, Kind: pacing.NoAnswer, Channel: "sip", Duration: 40 * time.Second}
		if i%3 == 0 {
			o.Kind, o.Duration = pacing.Human, time.Duration(4+i%5)*time.Second
			r.pacer.Observe(pacing.Observation{At: now, Kind: pacing.TalkEnded, Channel: "sip", Duration: 90 * time.Second})
			r.pacer.Observe(pacing.Observation{At: now, Kind: pacing.WrapEnded, Channel: "sip", Duration: 30 * time.Second})
		}
		r.pacer.Observe(o)
		for j := range agents {
			agents[j] = pacing.Agent{State: pacing.AgentTalking, Since: now.Add(-time.Duration(j*11) * time.Second), Channel: "sip"}
		}
		r.pacer.Decide(now, pacing.Snapshot{Agents: agents, Channel: "sip"})
	}
}

// Once the predictive pacer has learned the ring times, an automatic ring timeout is its
// choice, under the engine's ceiling; a fixed one stays the campaign's. The view shows
// the estimates the pacer learned, and that it dials progressively once abandons have
// spent its allowance.
func TestPacerViewOfALearnedPacer(t *testing.T) {
	const ceiling = 25 * time.Second
	tests := []struct {
		name            string
		fixed           time.Duration
		abandons        int // after the lesson
		wantAuto        bool
		wantLearned     bool
		wantProgressive bool
	}{
		{name: "automatic: the pacer's choice", wantAuto: true, wantLearned: true},
		{name: "fixed: the campaign's", fixed: 20 * time.Second},
		{name: "abandons spent the allowance: progressive", abandons: 40, wantAuto: true, wantLearned: true, wantProgressive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := campaigns.Campaign{ID: 9, Name: "learned", CallerID: "+551130000000", State: campaigns.StateRunning,
				Ladder: sipOnlyLadder(1)}
			c.ApplyDefaults()
			c.Pacing.Mode, c.Pacing.RingTimeout = campaigns.PacingPredictive, campaigns.Duration(tt.fixed)
			r := &run{e: &Engine{cfg: Config{RingTimeout: ceiling}.withDefaults()}, id: c.ID, campaign: c}
			r.pacer = pacing.NewController(r.pacingSettings(c))
			teach(t, r)
			after := time.Date(2025, 3, 3, 10, 10, 0, 0, time.UTC)
			for range tt.abandons {
				r.pacer.Observe(pacing.Observation{At: after, Kind: pacing.Abandoned, Channel: "sip"})
			}
			r.pacer.Decide(after, pacing.Snapshot{Agents: []pacing.Agent{{State: pacing.AgentReady, Since: after, Channel: "sip"}}, Channel: "sip"})
			r.publishPacerViews()
			views := *r.pacerViews.Load()
			if len(views) != 1 {
				t.Fatalf("views %+v, want one of SIP", views)
			}
			v := views[0]
			t.Logf("view %+v", v)
			if v.CampaignID != c.ID || v.Channel != campaigns.ChannelSIP || v.Mode != campaigns.PacingPredictive {
				t.Errorf("view of campaign %d, %s, %s; want %d, sip, predictive", v.CampaignID, v.Channel, v.Mode, c.ID)
			}
			if v.RingTimeoutAuto != tt.wantAuto || v.RingTimeoutLearned != tt.wantLearned {
				t.Errorf("ring timeout auto %v, learned %v; want %v, %v", v.RingTimeoutAuto, v.RingTimeoutLearned, tt.wantAuto, tt.wantLearned)
			}
			if want := r.ringTimeout(campaigns.ChannelSIP); v.RingTimeout != want {
				t.Errorf("ring timeout %v, but calls are placed with %v", v.RingTimeout, want)
			}
			switch {
			case tt.fixed > 0 && v.RingTimeout != tt.fixed:
				t.Errorf("ring timeout %v, want the campaign's %v", v.RingTimeout, tt.fixed)
			case tt.fixed == 0 && (v.RingTimeout < pacing.DefaultMinRingTimeout || v.RingTimeout >= ceiling):
				t.Errorf("ring timeout %v, want the pacer's choice, from %v and under the engine's %v", v.RingTimeout, pacing.DefaultMinRingTimeout, ceiling)
			}
			if v.DialsLearned < 100 || v.AnswerProb < 0.25 || v.AnswerProb > 0.4 || !tt.wantProgressive && v.Threshold <= 0 {
				t.Errorf("learned %d dials, answer probability %.3f, threshold %g; want about 1/3 and a threshold",
					v.DialsLearned, v.AnswerProb, v.Threshold)
			}
			if v.Progressive != tt.wantProgressive {
				t.Errorf("threshold %g, progressive %v; want progressive %v", v.Threshold, v.Progressive, tt.wantProgressive)
			}
			if v.MeanTalk < 80*time.Second || v.MeanTalk > 100*time.Second || v.MeanWrap < 25*time.Second || v.MeanWrap > 35*time.Second {
				t.Errorf("mean talk %v, wrap-up %v; want about 90s and 30s", v.MeanTalk, v.MeanWrap)
			}
		})
	}
}

// TestPacerViewCountsCallsRingingAndPersonsWaiting: each call channel's view counts its
// calls placed and not answered, and the persons who answered and wait for an agent,
// with when the one waiting longest answered.
func TestPacerViewCountsCallsRingingAndPersonsWaiting(t *testing.T) {
	c := campaigns.Campaign{ID: 4, Name: "counts", CallerID: "+551130000000", State: campaigns.StateRunning, Ladder: callAndMessageLadder()}
	c.ApplyDefaults()
	r := &run{e: &Engine{cfg: Config{}.withDefaults()}, id: c.ID, campaign: c, calls: map[int64]*call{}}
	r.pacer = pacing.NewController(r.pacingSettings(c))
	first := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)
	sip, wa := c.Ladder[0], c.Ladder[1]
	for i, cl := range []*call{
		{rung: sip, state: callDialing}, {rung: sip, state: callRinging}, {rung: wa, state: callRinging},
		{rung: sip, state: callWaiting, answered: first}, {rung: sip, state: callWaiting, answered: first.Add(3 * time.Second)},
		{rung: wa, state: callConnected, answered: first},
	} {
		r.calls[int64(i)] = cl
		if cl.state == callWaiting {
			r.waiting = append(r.waiting, cl)
		}
	}
	r.publishPacerViews()
	views := *r.pacerViews.Load()
	want := []struct {
		ringing, waiting int
		since            time.Time
	}{{2, 2, first}, {1, 0, time.Time{}}}
	if len(views) != len(want) {
		t.Fatalf("views %+v, want SIP and WhatsApp call", views)
	}
	for i, w := range want {
		if v := views[i]; v.Ringing != w.ringing || v.Waiting != w.waiting || !v.WaitingSince.Equal(w.since) {
			t.Errorf("%s: ringing %d, waiting %d since %v; want %d, %d since %v", v.Channel, v.Ringing, v.Waiting, v.WaitingSince, w.ringing, w.waiting, w.since)
		}
	}
}
