package dialer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// TestDeadCallEndsAndFreesTheAgent: a carrier (sipp) answers and then sends no
// RTP; the connected call is ended by the SIP layer after rtp_timeout, and the
// call's step records why (connected, hung up by timeout, the detail) and
// takes the agent out of the call into wrap-up, as any end of a conversation.
func TestDeadCallEndsAndFreesTheAgent(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{
		// sipp answers no OPTIONS: no keepalives, and the trunk's health watch
		// (which the silence starts) kept out; the call's own timeout is tested.
		Trunks:       []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}},
		MediaSilence: sip.Duration(time.Hour),
		RTPTimeout:   sip.Duration(time.Second),
	})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0] // would talk for an hour
	h.setState(c.ID, campaigns.StateRunning)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.waitOnCall(ctx, agent, "the dead call")

	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v: %v", list, err)
	}
	at := h.waitEndedAttempts(ctx, list[0].ID, 1, func([]storage.Attempt) bool { return true })[0]
	if at.Outcome != string(campaigns.OutcomeConnected) || at.HangupBy != channel.HangupByTimeout ||
		!strings.Contains(string(at.Detail), "rtp timeout") {
		t.Errorf("attempt %s hung up by %q (%s), want connected, hung up by timeout, rtp timeout", at.Outcome, at.HangupBy, at.Detail)
	}
	if at.EndAt == nil || at.ConnectAt == nil || at.EndAt.Sub(*at.ConnectAt) < time.Second {
		t.Errorf("attempt connected %v ended %v: want ended rtp_timeout after", at.ConnectAt, at.EndAt)
	}
	for a, _ := h.engine.Agents().Get(agent); a.State == AgentOnCall; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatalf("agent %+v still on the dead call", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	carrier.Wait(t, 10*time.Second) // it had our BYE
}
