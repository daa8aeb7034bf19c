package dialer

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/webrtctest"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// TestCustomerAudioReachesABrowserAgent: a browser agent's nailed-up WebRTC leg gets
// the audio of a customer answered through a sipp carrier, and the customer gets the
// agent's, through the engine's bridge.
func TestCustomerAudioReachesABrowserAgent(t *testing.T) {
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	recordings := t.TempDir()
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}},
		Config{AgentPeers: peers, RecordingsDir: recordings})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.Record = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ids := h.agents(c.ID, 1, time.Hour) // talks until the test hangs up
	agent := ids[0]

	browser := webrtctest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answer, err := h.engine.AgentAudio().Offer(ctx, agent, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, answer)
	var heard, gaps, spoken atomic.Uint64
	go browser.Talk(ctx, &spoken)
	go browser.Listen(ctx, &heard, &gaps)
	for a, _ := h.engine.Agents().Get(agent); !a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("the agent's audio never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}

	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "a call")
	// Half a second of conversation.
	deadline := time.Now().Add(5 * time.Second)
	var stats media.CallStats
	for {
		if cur := h.engine.audio.Bridge(agent).Current(); cur != nil {
			stats = cur.Stats()
		}
		if heard.Load() >= 25 && stats.ToCustomer.Packets >= 25 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if heard.Load() < 25 || stats.ToAgent.Packets < 25 {
		t.Errorf("agent heard %d packets (bridge forwarded %d), want ≥ 25", heard.Load(), stats.ToAgent.Packets)
	}
	if stats.ToCustomer.Packets < 25 {
		t.Errorf("customer got %d packets of the agent's %d, want ≥ 25", stats.ToCustomer.Packets, spoken.Load())
	}
	if g := gaps.Load(); g != 0 {
		t.Errorf("%d sequence gaps in the agent's stream", g)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	carrier.Wait(t, 10*time.Second)
	// The leg stays nailed up for the next call.
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Error("agent audio went down with the call")
	}
	// The call was recorded, both sides, once it ended.
	contacts, _, _ := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{})
	h.waitContacts(c.ID, 5*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	attempt := h.attempts(contacts[0].ID)[0]
	b, err := os.ReadFile(filepath.Join(recordings, strconv.FormatInt(c.ID, 10), strconv.FormatInt(attempt.ID, 10)+".wav"))
	if err != nil {
		t.Fatal(err)
	}
	wav, err := media.ParseWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	// Half a second at least: 8,000 stereo 16-bit frames a second.
	if wav.Channels != 2 || wav.SampleRate != 8000 || len(wav.Data) < 8000*2*2/2 {
		t.Errorf("recording: %d channels at %d Hz, %d bytes", wav.Channels, wav.SampleRate, len(wav.Data))
	}
}

// TestAbandonedCallHearsThePrompt: when no agent is free within the patience, the
// person hears the abandon prompt to its end before the hang-up.
func TestAbandonedCallHearsThePrompt(t *testing.T) {
	t.Parallel()
	prompt, err := media.NewAbandonPlayer()
	if err != nil {
		t.Fatal(err)
	}
	carrier := sipptest.Start(t, "answer-after-ring.xml", sipptest.Options{Calls: 1})
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{AbandonPrompt: prompt})
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	ids := h.agents(c.ID, 1, time.Hour)
	contacts, _, _ := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{})
	// The only agent steps away while the call rings.
	deadline := time.Now().Add(10 * time.Second)
	for len(h.attempts(contacts[0].ID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing was dialled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.engine.Agents().Pause(ids[0], "coffee", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.waitContacts(c.ID, 20*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactPending })
	var a storage.Attempt
	for a = h.attempts(contacts[0].ID)[0]; a.State != "ended"; a = h.attempts(contacts[0].ID)[0] {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("attempt never ended: %+v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.Outcome != string(campaigns.OutcomeAbandoned) || a.AnswerAt == nil || a.AgentID != 0 {
		t.Fatalf("attempt %+v, want abandoned without an agent", a)
	}
	// Two seconds of patience, then the whole prompt, then the BYE.
	if held, want := a.EndAt.Sub(*a.AnswerAt), 2*time.Second+prompt.Duration()-200*time.Millisecond; held < want {
		t.Errorf("call held %s after the answer, want ≥ %s (patience and prompt)", held, want)
	}
	carrier.Wait(t, 10*time.Second)
	st, _ := h.store.CampaignStats(context.Background(), c.ID)
	if st.Abandoned != 1 || st.Answered != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestAnsweringMachineDetection: with AMD on, a voicemail greeting is hung up on and
// the contact moves to the next rung, while a person who says "hello" reaches the
// agent within the 2-second rule.
func TestAnsweringMachineDetection(t *testing.T) {
	ladder := []campaigns.Rung{
		{Channel: campaigns.ChannelSIP, MaxAttempts: 2, RetryDelay: campaigns.Duration(time.Hour)},
		{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1},
	}
	tests := []struct {
		scenario string
		outcome  campaigns.Outcome
	}{
		{"answer-rtp.xml", campaigns.OutcomeMachineNext}, // a greeting that goes on and on
		{"answer-human.xml", campaigns.OutcomeConnected},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			t.Parallel()
			carrier := sipptest.Start(t, tc.scenario, sipptest.Options{Calls: 1})
			h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
			c := h.draft(1, campaigns.PacingProgressive, ladder)
			if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
				c.AMD = campaigns.AMD{Enabled: true, Action: campaigns.AMDNextRung}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			h.agents(c.ID, 1, 300*time.Millisecond)
			h.setState(c.ID, campaigns.StateRunning)
			contacts, _, _ := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{})
			deadline := time.Now().Add(15 * time.Second)
			var a storage.Attempt
			for {
				if as := h.attempts(contacts[0].ID); len(as) > 0 && as[0].State == "ended" {
					a = as[0]
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the call did not end")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if a.Outcome != string(tc.outcome) {
				t.Fatalf("outcome %s (%s), want %s", a.Outcome, a.Detail, tc.outcome)
			}
			if tc.outcome == campaigns.OutcomeConnected {
				if wait := a.ConnectAt.Sub(*a.AnswerAt); wait > 2*time.Second {
					t.Errorf("person waited %s for the agent, want ≤ 2 s", wait)
				}
			} else if a.AgentID != 0 {
				t.Errorf("a machine reached agent %d", a.AgentID)
			}
			carrier.Wait(t, 10*time.Second)
		})
	}
}

// TestAgentBrowserDroppingMidCallDoesNotLeaveTheCustomerInSilence: the agent's
// browser goes away during a call; the customer hears the safe-harbour message,
// is hung up and counted abandoned, and the agent is paused.
func TestAgentBrowserDroppingMidCallDoesNotLeaveTheCustomerInSilence(t *testing.T) {
	t.Parallel()
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := media.NewAbandonPlayer()
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	// sipp answers no OPTIONS; the trunk-health probe is kept out of this test
	// by a long media_silence, because while the safe-harbour prompt plays after
	// the agent's leg is lost, the carrier's RTP is not reported to the trunk
	// (sip.Media.NoteReceived) and the trunk looks silent.
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		MediaSilence: sip.Duration(time.Minute)},
		Config{AgentPeers: peers, AbandonPrompt: prompt})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0]
	browser := webrtctest.NewBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer, err := h.engine.AgentAudio().Offer(ctx, agent, browser.Offer(t))
	if err != nil {
		t.Fatal(err)
	}
	browser.Accept(t, answer)
	go browser.Talk(ctx, nil)
	for a, _ := h.engine.Agents().Get(agent); !a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("agent audio never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "a call")
	dropped := time.Now()
	browser.PC.Close()
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v: %v", list, err)
	}
	// The message's mark is written once it has played, beside the outcome.
	a := h.waitEndedAttempts(ctx, list[0].ID, 1, func(as []storage.Attempt) bool { return as[0].SafeHarbour != "" })[0]
	if a.HangupBy != "agent_lost" || a.Outcome != string(campaigns.OutcomeAbandoned) || a.SafeHarbour != storage.SafeHarbourBuiltin {
		t.Fatalf("attempt %+v, want hung up by agent_lost, abandoned, with the built-in safe-harbour message", a)
	}
	// The agent, whose audio is gone, takes no further call: once its wrap-up
	// is closed it is paused for want of audio.
	for ag, _ := h.engine.Agents().Get(agent); ag.State != AgentPaused || ag.Reason != ReasonNoAudio; ag, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatalf("agent %+v, want paused (no_audio)", ag)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held := a.EndAt.Sub(dropped); held < prompt.Duration()-500*time.Millisecond {
		t.Errorf("customer hung up %s after the agent dropped, before the %s prompt could play", held, prompt.Duration())
	}
	carrier.Wait(t, 10*time.Second)
}

// TestAgentBrowserBackMidCallGetsTheCustomerBack: a browser agent's page is
// reloaded during a call, so its WebRTC leg ends and a new one is offered a
// moment later. The customer is not given up: the new leg hears the customer
// again, the agent stays on the call, and the call ends as the agent's hang-up,
// connected, not abandoned.
func TestAgentBrowserBackMidCallGetsTheCustomerBack(t *testing.T) {
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := media.NewAbandonPlayer()
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{AgentPeers: peers, AbandonPrompt: prompt})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.readyAgents(c.ID, 1)[0]
	h.engine.Agents().LoginWith(agent, "browser", []int64{c.ID}, MediaBrowser, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// connect opens a browser's audio the way the agent page does and returns
	// the packets it hears.
	connect := func() (*webrtctest.Browser, *atomic.Uint64) {
		t.Helper()
		browser := webrtctest.NewBrowser(t)
		answer, err := h.engine.AgentAudio().Offer(ctx, agent, browser.Offer(t))
		if err != nil {
			t.Fatal(err)
		}
		browser.Accept(t, answer)
		heard := new(atomic.Uint64)
		go browser.Talk(ctx, nil)
		go browser.Listen(ctx, heard, new(atomic.Uint64))
		for a, _ := h.engine.Agents().Get(agent); !a.Audio; a, _ = h.engine.Agents().Get(agent) {
			if ctx.Err() != nil {
				t.Fatal("agent audio never came up")
			}
			time.Sleep(20 * time.Millisecond)
		}
		return browser, heard
	}
	first, _ := connect()
	if a, _ := h.engine.Agents().Get(agent); a.State != AgentReady {
		t.Fatalf("agent with its browser audio %+v, want ready", a)
	}
	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "a call")
	first.PC.Close()
	for a, _ := h.engine.Agents().Get(agent); a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("the closed browser's audio never went down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, heard := connect()
	for heard.Load() < 50 {
		if ctx.Err() != nil {
			t.Fatalf("the reloaded browser heard %d packets of the customer, want 50", heard.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a, _ := h.engine.Agents().Get(agent); a.State != AgentOnCall {
		t.Fatalf("agent after its audio came back %+v, want still on the call", a)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v: %v", list, err)
	}
	a := h.waitEndedAttempts(ctx, list[0].ID, 1, func([]storage.Attempt) bool { return true })[0]
	if a.Outcome != string(campaigns.OutcomeConnected) || a.HangupBy != "agent" || a.SafeHarbour != "" {
		t.Errorf("attempt %+v, want connected, hung up by the agent, no safe-harbour message", a)
	}
	carrier.Wait(t, 10*time.Second)
}

// TestVoicemailGetsTheMessage: with AMD set to leave a message, an answering
// machine hears its greeting out, then the campaign's message, and the contact
// moves on to the next rung.
func TestVoicemailGetsTheMessage(t *testing.T) {
	t.Parallel()
	message, err := media.NewVoicemailPlayer()
	if err != nil {
		t.Fatal(err)
	}
	carrier := sipptest.Start(t, "answer-voicemail.xml", sipptest.Options{Calls: 1})
	// The machine's greeting is played once and then its RTP stops; sipp
	// answers no OPTIONS, so the trunk-health probe that silence starts would
	// find the trunk dead and end the call before the message.
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		MediaSilence: sip.Duration(time.Minute)}, Config{VoicemailMessage: message})
	ladder := []campaigns.Rung{{Channel: campaigns.ChannelSIP, MaxAttempts: 2, RetryDelay: campaigns.Duration(time.Hour)}}
	c := h.draft(1, campaigns.PacingProgressive, ladder)
	if _, err := h.store.UpdateCampaign(context.Background(), tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.AMD = campaigns.AMD{Enabled: true, Action: campaigns.AMDLeaveMessage}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.agents(c.ID, 1, time.Second)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 30*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactExhausted })
	a := h.attempts(list[0].ID)[0]
	if a.Outcome != string(campaigns.OutcomeMachineMessage) || a.AgentID != 0 {
		t.Fatalf("attempt %+v", a)
	}
	// The greeting (3 s), the quiet after the beep, then the whole message.
	if held, want := a.EndAt.Sub(*a.AnswerAt), 3*time.Second+message.Duration(); held < want {
		t.Errorf("call held %s after the answer, want ≥ %s", held, want)
	}
	carrier.Wait(t, 10*time.Second)
}
