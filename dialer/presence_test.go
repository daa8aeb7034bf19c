package dialer

import (
	"errors"
	"testing"
	"time"
)

// TestAgentPresence: an agent takes calls only while its path is live. Each case
// plays a session's steps on a pool and checks where the agent ends, whether
// Ready is refused and with which reason, and whether a customer could be
// reserved for it.
func TestAgentPresence(t *testing.T) {
	const id, campaign = 7, 3
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	type step func(p *Agents, at time.Time)
	login := func(m AgentMedia) step {
		return func(p *Agents, at time.Time) { p.LoginWith(id, "ana", []int64{campaign}, m, at) }
	}
	ready := func(p *Agents, at time.Time) { p.Ready(id, at) }
	open := func(p *Agents, at time.Time) { p.PageOpened(id, at) }
	closed := func(p *Agents, at time.Time) { p.PageClosed(id, at) }
	audioUp := func(p *Agents, at time.Time) { p.setAudio(id, true, at) }
	audioDown := func(p *Agents, at time.Time) { p.setAudio(id, false, at) }
	onCall := func(p *Agents, at time.Time) {
		if _, ok := p.reserve(campaign, 99, "sip", 0, at); !ok {
			t.Fatal("no agent reserved for the call")
		}
		p.connected(id, at)
	}
	callEnded := func(p *Agents, at time.Time) { p.callEnded(id, at) }
	dispose := func(p *Agents, at time.Time) {
		if _, _, err := p.wrapUpDone(id, at); err != nil {
			t.Fatal(err)
		}
	}
	type at struct {
		after time.Duration
		do    step
	}
	tests := []struct {
		name       string
		steps      []at
		state      AgentState
		reason     string
		readyErr   string // the reason Ready is refused with now ("" : accepted or busy)
		takesCalls bool
	}{
		{"API client without page or audio", []at{{0, login(MediaNone)}, {0, ready}},
			AgentReady, "", "", true},
		{"browser agent without audio cannot go ready", []at{{0, open}, {0, login(MediaBrowser)}, {0, ready}},
			AgentPaused, ReasonNoAudio, ReasonNoAudio, false},
		{"browser agent with page and audio", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready}},
			AgentReady, "", "", true},
		{"tab closed while ready", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready}, {time.Minute, closed}},
			AgentPaused, ReasonConnectionLost, ReasonConnectionLost, false},
		{"tab closed, audio gone too: the page is missing first", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{time.Minute, closed}, {0, audioDown}},
			AgentPaused, ReasonConnectionLost, ReasonConnectionLost, false},
		{"reloaded within the grace: ready again", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{time.Minute, closed}, {0, audioDown}, {3 * time.Second, open}, {time.Second, audioUp}},
			AgentReady, "", "", true},
		{"page back, audio not yet", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{time.Minute, closed}, {0, audioDown}, {3 * time.Second, open}},
			AgentPaused, ReasonNoAudio, ReasonNoAudio, false},
		{"back after the grace: paused until the agent says", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{time.Minute, closed}, {0, audioDown}, {ResumeGrace, open}, {0, audioUp}},
			AgentPaused, ReasonReconnected, "", false},
		{"audio silent or dropped while ready", []at{{0, login(MediaPhone)}, {0, audioUp}, {0, ready}, {time.Minute, audioDown}},
			AgentPaused, ReasonNoAudio, ReasonNoAudio, false},
		{"phone never connected", []at{{0, login(MediaPhone)}, {0, ready}},
			AgentPaused, ReasonNoAudio, ReasonNoAudio, false},
		{"an API client whose audio came up needs it since", []at{{0, login(MediaNone)}, {0, audioUp}, {0, ready}, {time.Second, audioDown}},
			AgentPaused, ReasonNoAudio, ReasonNoAudio, false},
		{"an API client whose event stream closed", []at{{0, login(MediaNone)}, {0, open}, {0, ready}, {time.Second, closed}},
			AgentPaused, ReasonConnectionLost, ReasonConnectionLost, false},
		{"reload in wrap-up keeps the wrap-up", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{0, onCall}, {time.Minute, callEnded}, {time.Second, closed}, {0, audioDown}, {2 * time.Second, open}},
			AgentWrapUp, "", "", false},
		{"disposed after a reload within the grace: ready", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{0, onCall}, {time.Minute, callEnded}, {time.Second, closed}, {0, audioDown}, {2 * time.Second, open},
			{time.Second, audioUp}, {5 * time.Second, dispose}},
			AgentReady, "", "", true},
		{"wrap-up closed while the page is gone: paused, not ready", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{0, onCall}, {time.Minute, callEnded}, {time.Second, closed}, {0, audioDown}, {time.Minute, dispose}},
			AgentPaused, ReasonConnectionLost, ReasonConnectionLost, false},
		{"audio back in the wrap-up long after: the grace ran from the loss", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{0, onCall}, {time.Minute, callEnded}, {0, audioDown}, {0, dispose}, {ResumeGrace + time.Second, audioUp}},
			AgentPaused, ReasonReconnected, "", false},
		{"explicit pause is not undone by a reconnection", []at{{0, open}, {0, login(MediaBrowser)}, {0, audioUp}, {0, ready},
			{0, closed}, {0, func(p *Agents, at time.Time) { p.Pause(id, "lunch", at) }}, {time.Second, open}},
			AgentPaused, "lunch", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewAgents()
			now := t0
			for _, s := range tc.steps {
				now = now.Add(s.after)
				s.do(p, now)
			}
			a, _ := p.Get(id)
			if a.State != tc.state || a.Reason != tc.reason {
				t.Fatalf("agent %s (%q), want %s (%q)", a.State, a.Reason, tc.state, tc.reason)
			}
			if got := p.readyFor(campaign); got != tc.takesCalls {
				t.Errorf("takes calls %t, want %t", got, tc.takesCalls)
			}
			if a.State != AgentPaused {
				return
			}
			_, err := p.Ready(id, now)
			var pe *PathError
			switch {
			case tc.readyErr == "" && err != nil:
				t.Errorf("Ready refused: %v", err)
			case tc.readyErr != "" && (!errors.As(err, &pe) || !errors.Is(err, ErrNoPath) || pe.Reason != tc.readyErr || pe.Missing == ""):
				t.Errorf("Ready: %v, want a PathError %s saying what is missing", err, tc.readyErr)
			}
			if a, _ := p.Get(id); tc.readyErr != "" && (a.State != AgentPaused || a.Reason != tc.readyErr) {
				t.Errorf("after the refused Ready: %s (%q)", a.State, a.Reason)
			}
		})
	}
}
