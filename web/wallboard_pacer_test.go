package web

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

// TestWallboardShowsThePacer: each running campaign on the wallboard carries its pacer's
// view of each call channel of its ladder, with the ring timeout its calls get, automatic
// (the engine's until the pacer learns) or fixed by a supervisor.
func TestWallboardShowsThePacer(t *testing.T) {
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	// Nobody signs in to take calls: nothing dials, and the pacer learns nothing.
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: &holdChannel{}}))
	ladder := []map[string]any{
		{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"},
		{"channel": "whatsapp_call", "max_attempts": 1, "retry_delay": "1h"},
	}
	c := runningCampaign(t, e, "Pacer", "predictive", ladder, "+5511987650201")
	supervisor := e.tokens[storage.RoleSupervisor]

	// waitPacer waits until the campaign's pacer views on the wallboard satisfy ok.
	waitPacer := func(what string, ok func([]WallboardPacer) bool) []WallboardPacer {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			snap := decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", supervisor), http.StatusOK)
			var pacer []WallboardPacer
			for _, wc := range snap.Campaigns {
				if idString(wc.ID) == c.ID {
					pacer = wc.Pacer
				}
			}
			if ok(pacer) {
				return pacer
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the wallboard's pacer is %+v", what, pacer)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pacer := waitPacer("a running campaign", func(p []WallboardPacer) bool { return len(p) > 0 })
	if len(pacer) != 2 || pacer[0].Channel != campaigns.ChannelSIP || pacer[1].Channel != campaigns.ChannelWhatsAppCall {
		t.Fatalf("pacer %+v, want SIP then WhatsApp call", pacer)
	}
	for _, p := range pacer {
		// runEngine's RingTimeout is 5 s.
		if p.Mode != campaigns.PacingPredictive || p.RingTimeout.Std() != 5*time.Second || !p.RingTimeoutAuto || p.RingTimeoutLearned ||
			p.DialsLearned != 0 || p.Progressive {
			t.Errorf("%s: %+v, want predictive with the engine's 5s automatic ring timeout, nothing learned", p.Channel, p)
		}
	}

	// SIP takes calls, so new dials are forecast on it; this server has no WhatsApp
	// channel, which is down.
	if !pacer[0].Forecast || pacer[0].Down || pacer[1].Forecast || !pacer[1].Down {
		t.Errorf("pacer %+v: want the forecast on SIP, up, and the unconfigured WhatsApp call down", pacer)
	}

	// The JSON as the page reads it: durations as Go duration text.
	raw := decode[struct {
		Campaigns []struct {
			ID    string           `json:"id"`
			Pacer []map[string]any `json:"pacer"`
		} `json:"campaigns"`
	}](t, e.get(t, "/api/v1/wallboard", supervisor), http.StatusOK)
	for _, wc := range raw.Campaigns {
		if wc.ID != c.ID {
			continue
		}
		sip := wc.Pacer[0]
		for key, want := range map[string]any{"channel": "sip", "mode": "predictive", "ring_timeout": "5s", "ring_timeout_auto": true,
			"ring_timeout_learned": false, "mean_talk": "0s", "mean_wrap": "0s", "answer_prob": 0.0, "threshold": 0.0,
			"dials_learned": 0.0, "progressive": false, "down": false, "forecast": true} {
			if got, ok := sip[key]; !ok || got != want {
				t.Errorf("pacer JSON %s = %v, want %v (%v)", key, got, want, sip)
			}
		}
	}

	// A supervisor fixes the ring timeout: the wallboard shows it, not automatic.
	decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", supervisor, map[string]any{"ring_timeout": "20s"}), http.StatusOK)
	waitPacer("a fixed ring timeout", func(p []WallboardPacer) bool {
		return len(p) == 2 && p[0].RingTimeout.Std() == 20*time.Second && !p[0].RingTimeoutAuto && p[1].RingTimeout.Std() == 20*time.Second
	})

	// A campaign the engine does not run has no pacer.
	decode[any](t, e.action(t, c.ID, "pause", storage.RoleSupervisor), http.StatusOK)
	waitPacer("a paused campaign", func(p []WallboardPacer) bool { return len(p) == 2 })
	draft := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Draft", "default_country": "BR", "caller_id": "+551130000000", "ladder": ladder,
	}), http.StatusCreated)
	// The draft shows within the second a snapshot is shared for.
	for deadline := time.Now().Add(snapshotTTL + 3*time.Second); ; time.Sleep(50 * time.Millisecond) {
		snap := decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", supervisor), http.StatusOK)
		i := slices.IndexFunc(snap.Campaigns, func(wc WallboardCampaign) bool { return idString(wc.ID) == draft.ID })
		if i >= 0 {
			if p := snap.Campaigns[i].Pacer; p == nil || len(p) != 0 {
				t.Errorf("a draft campaign's pacer is %#v, want []", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the draft campaign never showed on the wallboard")
		}
	}
}
