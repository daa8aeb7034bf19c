package dialer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/baresiptest"
)

// TestCarrierHangupOnANewTCPConnectionFreesTheAgent: a call on a TCP trunk is
// connected to an agent who stays on it; the carrier (baresip) then loses its
// connection, as its idle timer would close it, and hangs up. Its BYE comes on
// a connection of its own to the trunk's Contact, and the agent is freed to
// wrap-up with the attempt recorded as hung up by the customer. With the
// connection's ephemeral port in Contact the BYE had nowhere to go and the
// agent stayed on a dead call for good.
func TestCarrierHangupOnANewTCPConnectionFreesTheAgent(t *testing.T) {
	const phone = "+5511987650000" // the campaign's first contact (harness.draft)
	carrier := baresiptest.StartCarrier(t, baresiptest.CarrierOptions{User: phone})
	carrier.WaitUntil(t, 10*time.Second, "start", func() bool { return strings.Contains(carrier.Output(), "baresip is ready") })
	h := newHarness(t, sip.Config{
		Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.SIPAddr(), Transport: sip.TransportTCP,
			KeepaliveInterval: sip.KeepaliveEvery(0)}},
		InviteTimeout: sip.Duration(3 * time.Second), // baresip on a loaded machine
		SuspectAfter:  sip.Duration(time.Second),
	})
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agents := h.readyAgents(c.ID, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	h.waitOnCall(ctx, agents[0], "the carrier's call")

	// Once baresip has our ACK: a reset would drop one it had not read.
	carrier.WaitUntil(t, 5*time.Second, "call established", func() bool { return strings.Contains(carrier.Output(), "Call established") })
	carrier.DropConnections(t)
	carrier.Command(t, "hangup")
	h.waitAgents(agents, AgentWrapUp, 10*time.Second)
	list := h.waitContacts(c.ID, 10*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	as := h.attempts(list[0].ID)
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeConnected) || as[0].HangupBy != "remote" || as[0].EndAt == nil {
		t.Errorf("attempts %+v, want one connected, hung up by the carrier's side", as)
	}
}
