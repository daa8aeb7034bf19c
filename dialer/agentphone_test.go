package dialer

import (
	"context"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/phonetest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/media"
)

// TestCustomerAudioReachesASIPPhone: an agent's SIP phone (baresip) registers
// with Turbina's registrar, is called once and nailed up; a customer answered
// through a sipp carrier is switched onto it, and audio flows both ways through
// the bridge. The leg outlives the customer call and goes down when the phone
// hangs up.
func TestCustomerAudioReachesASIPPhone(t *testing.T) {
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr}}})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0] // talks until the test hangs up
	reg := phonetest.Registrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": agent})
	phone := phonetest.Start(t, reg, "agent1", agent)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
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
