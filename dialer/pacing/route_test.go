package pacing

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestDialChannel(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   Channel
	}{
		{"SIP up: SIP", []Route{{Channel: "sip"}, {Channel: "whatsapp_call"}}, "sip"},
		{"SIP down: the WhatsApp call", []Route{{Channel: "sip", Down: true}, {Channel: "whatsapp_call"}}, "whatsapp_call"},
		{"WhatsApp first and down: SIP", []Route{{Channel: "whatsapp_call", Down: true}, {Channel: "sip"}}, "sip"},
		{"SIP down, the last call rung: SIP, its contacts wait", []Route{{Channel: "sip", Down: true}}, "sip"},
		{"everything down: the first", []Route{{Channel: "sip", Down: true}, {Channel: "whatsapp_call", Down: true}}, "sip"},
		{"no call rung", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DialChannel(tt.routes); got != tt.want {
				t.Errorf("DialChannel(%+v) = %q, want %q", tt.routes, got, tt.want)
			}
		})
	}
}

// twoChannels returns a predictive Controller that has learned an hour of SIP calls
// answered 80 % of the time within about 3 s and of WhatsApp calls answered 20 % of
// the time within about 12 s, with the same talk and wrap-up times.
func twoChannels(t *testing.T) *Controller {
	t.Helper()
	c := NewController(Settings{Mode: Predictive, TargetAbandon: 0.03})
	r := rand.New(rand.NewPCG(3, 3))
	learn := func(now time.Time, ch Channel, p float64, ring func(*rand.Rand) float64) {
		if r.Float64() < p {
			c.Observe(Observation{At: now, Kind: Human, Channel: ch, Duration: secs(ring(r))})
			c.Observe(Observation{At: now, Kind: Connected, Channel: ch})
		} else {
			c.Observe(Observation{At: now, Kind: NoAnswer, Channel: ch, Duration: 25 * time.Second})
		}
	}
	sipRing, waRing, talk := lognormal(3, 1), lognormal(12, 4), lognormal(120, 60)
	for i := range 3600 {
		now := at(float64(i))
		learn(now, "sip", 0.8, sipRing)
		learn(now, "whatsapp_call", 0.2, waRing)
		if i%4 == 0 {
			for _, ch := range []Channel{"sip", "whatsapp_call"} {
				c.Observe(Observation{At: now, Kind: TalkEnded, Channel: ch, Duration: secs(talk(r))})
				c.Observe(Observation{At: now, Kind: WrapEnded, Channel: ch, Duration: secs(10 * r.ExpFloat64())})
			}
		}
	}
	return c
}

// TestForecastFollowsTheChannelUp: when SIP goes down the very next decision
// forecasts on the WhatsApp call's answer rate and ring time (here: far fewer
// answers per dial, so more dials for the same free agents), exactly as a pacer
// that never saw SIP up would decide; and back on SIP once it is up again.
func TestForecastFollowsTheChannelUp(t *testing.T) {
	sipUp := []Route{{Channel: "sip"}, {Channel: "whatsapp_call"}}
	sipDown := []Route{{Channel: "sip", Down: true}, {Channel: "whatsapp_call"}}
	snap := func(now float64, routes []Route) Snapshot {
		s := Snapshot{Channel: DialChannel(routes)}
		for range 8 {
			s.Agents = append(s.Agents, Agent{State: AgentReady, Since: at(now), Channel: "sip"})
		}
		for i := range 6 {
			s.Agents = append(s.Agents, Agent{State: AgentTalking, Since: at(now - float64(10+i*13)), Channel: "sip"})
		}
		return s
	}
	const now = 3600.0
	switched := twoChannels(t)
	onSIP := switched.Decide(at(now), snap(now, sipUp))
	// 100 ms later, before any refit is due: the trunk went down.
	onWA := switched.Decide(at(now+0.1), snap(now+0.1, sipDown))
	if est := switched.Estimates("whatsapp_call"); est.Progressive {
		t.Fatalf("the WhatsApp call's pacer dialled progressively (threshold %g): the test needs a forecast", est.Threshold)
	}
	alwaysWA := twoChannels(t).Decide(at(now+0.1), snap(now+0.1, sipDown))
	if onWA != alwaysWA {
		t.Errorf("after the switch the pacer dials %d, one that forecast on WhatsApp from the start %d", onWA, alwaysWA)
	}
	if onWA <= onSIP {
		t.Errorf("SIP answered 80 %%, WhatsApp 20 %%: %d dials on SIP, %d on WhatsApp, want more on WhatsApp", onSIP, onWA)
	}
	t.Logf("dials: %d on SIP, %d on WhatsApp", onSIP, onWA)
	back := switched.Decide(at(now+0.2), snap(now+0.2, sipUp))
	if again := twoChannels(t).Decide(at(now+0.2), snap(now+0.2, sipUp)); back != again {
		t.Errorf("SIP back up: %d dials, a pacer that forecast on SIP throughout %d", back, again)
	}
}
