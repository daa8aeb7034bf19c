package dialer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/phonetest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// TestCustomerAudioReachesASIPPhone: an agent's SIP phone (baresip) registers
// with Turbina's registrar, is called once and nailed up; a customer answered
// through a sipp carrier is switched onto it, and audio flows both ways through
// the bridge. The leg outlives the customer call and goes down when the phone
// hangs up. The same holds when the phone registered to another node's
// registrar on the same database: the engine's own registrar calls it.
func TestCustomerAudioReachesASIPPhone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes bool // the phone registers to node A; the engine's registrar is node B's
	}{
		{"registered here", false},
		{"registered to another node", true},
	} {
		t.Run(tc.name, func(t *testing.T) { customerAudioReachesPhone(t, tc.nodes) })
	}
}

func customerAudioReachesPhone(t *testing.T, nodes bool) {
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0] // talks until the test hangs up
	accounts := map[string]int64{"agent1": agent}
	// The phone registers to at; the engine calls it through reg.
	at := phonetest.Registrar(t, sip.RegistrarConfig{}, accounts)
	reg := at
	if nodes {
		shared := func(node string) sip.RegistrarConfig {
			return sip.RegistrarConfig{Node: node, Shared: h.store, NonceKey: []byte("nonce key of the test's nodes")}
		}
		at, reg = phonetest.Registrar(t, shared("node-a"), accounts), phonetest.Registrar(t, shared("node-b"), accounts)
	}
	phone := phonetest.Start(t, at, "agent1", agent)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	// A binds the phone in memory before it writes the database (its 200
	// waits for both): B calls it once written.
	phone.WaitUntil(t, 10*time.Second, "the binding shared", func() bool { _, ok, _ := reg.Registered(ctx, agent); return ok })
	if err := h.engine.AgentAudio().NailUpPhone(ctx, agent, reg); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Fatal("the agent's audio is not up after NailUpPhone")
	}

	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "a call")
	// Half a second of conversation, at least (sipp's stream is slow to start
	// on a loaded machine).
	var stats media.CallStats
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cur := h.engine.audio.Bridge(agent).Current(); cur != nil {
			stats = cur.Stats()
		}
		if stats.ToAgent.Packets >= 25 && stats.ToCustomer.Packets >= 25 || time.Now().After(deadline) {
			break
		}
	}
	if stats.ToAgent.Packets < 25 {
		t.Errorf("bridge forwarded %d packets of the customer to the phone, want ≥ 25", stats.ToAgent.Packets)
	}
	if stats.ToCustomer.Packets < 25 {
		t.Errorf("bridge forwarded %d packets of the phone to the customer, want ≥ 25", stats.ToCustomer.Packets)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	carrier.Wait(t, 10*time.Second)
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Error("the phone's leg went down with the customer call")
	}

	// The agent hangs up the phone: the leg is detached.
	phone.Command(t, "hangup")
	for a, _ := h.engine.Agents().Get(agent); a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("the agent's audio stayed up after the phone hung up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the phone received is what the bridge sent it.
	_, received := phone.RTPStats(t, 3*time.Second)
	t.Logf("bridge: %d packets to the phone, %d to the customer; baresip received %d", stats.ToAgent.Packets, stats.ToCustomer.Packets, received)
	if uint64(received) < stats.ToAgent.Packets {
		t.Errorf("baresip received %d packets, the bridge sent ≥ %d", received, stats.ToAgent.Packets)
	}
}

// TestKilledPhoneMidCallAbandonsHonestlyAndPausesTheAgent: an agent works with
// its SIP phone (baresip), nailed up; a sipp customer is put through to it and
// the phone is killed (no BYE, no unregistration). Its silence gives it away
// within the threshold: the customer hears the safe-harbour message and the
// attempt counts abandoned, hung up by agent_lost; the agent, once its wrap-up
// is closed, is paused (no_audio) within 5 s of the kill and refuses to go
// ready, saying the phone is not connected.
func TestKilledPhoneMidCallAbandonsHonestlyAndPausesTheAgent(t *testing.T) {
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}},
		Config{AgentSilence: 3 * time.Second})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0] // talks until the phone dies
	pool := h.engine.Agents()
	pool.LoginWith(agent, "phone agent", []int64{c.ID}, MediaPhone, time.Now())
	if _, err := pool.Ready(agent, time.Now()); !errors.Is(err, ErrNoPath) {
		t.Fatalf("ready without the phone: %v, want ErrNoPath", err)
	}
	reg := phonetest.Registrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": agent})
	phone := phonetest.Start(t, reg, "agent1", agent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.engine.AgentAudio().NailUpPhone(ctx, agent, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Ready(agent, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "a call")
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cur := h.engine.audio.Bridge(agent).Current(); cur != nil && cur.Stats().ToCustomer.Packets >= 25 {
			break
		}
	}

	killed := time.Now()
	phone.Kill(t)
	var a Agent
	for a, _ = pool.Get(agent); a.State != AgentPaused; a, _ = pool.Get(agent) {
		if ctx.Err() != nil {
			t.Fatalf("agent %+v, want paused after its phone was killed", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.Reason != ReasonNoAudio || a.Audio {
		t.Errorf("agent %+v, want paused (no_audio) without audio", a)
	}
	if took := a.Since.Sub(killed); took > 5*time.Second {
		t.Errorf("paused %s after the phone was killed, want within 5 s", took)
	}
	var pe *PathError
	if _, err := pool.Ready(agent, time.Now()); !errors.As(err, &pe) || pe.Reason != ReasonNoAudio || !strings.Contains(pe.Missing, "phone") {
		t.Errorf("ready without the phone: %v, want a PathError naming the phone", err)
	}
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v: %v", list, err)
	}
	at := h.waitEndedAttempts(ctx, list[0].ID, 1, func(as []storage.Attempt) bool { return as[0].SafeHarbour != "" })[0]
	if at.Outcome != string(campaigns.OutcomeAbandoned) || at.HangupBy != "agent_lost" || at.SafeHarbour != storage.SafeHarbourBuiltin {
		t.Errorf("attempt %+v, want abandoned, hung up by agent_lost, with the safe-harbour message", at)
	}
	if st, err := h.store.CampaignStats(ctx, c.ID); err != nil || st.Abandoned != 1 {
		t.Errorf("campaign stats %+v (%v), want 1 abandoned", st, err)
	}
	carrier.Wait(t, 10*time.Second)
}
