package dialer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/storage"
)

// newInboundHarness is the WhatsApp harness with a dead SIP trunk (nothing
// listens on its port), the first campaign created as the default inbound queue
// and the longest inbound wait maxWait.
func newInboundHarness(t *testing.T, maxWait time.Duration) *waHarness {
	t.Helper()
	return newWhatsAppHarnessConfig(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "trunk", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}},
		InviteTimeout: sip.Duration(300 * time.Millisecond), FaultsToOpen: 1, ProbeInterval: sip.Duration(time.Hour)},
		func(o *sip.Originator) channel.Channel { return sipchannel.New(o) },
		Config{RingTimeout: 5 * time.Second, InboundCampaign: 1, InboundMaxWait: maxWait})
}

// waitAttempt waits until the contact with phone in campaignID has an attempt
// satisfying ok, and returns the contact's ID and attempts.
func (h *waHarness) waitAttempt(ctx context.Context, campaignID int64, phone, what string, ok func(storage.Attempt) bool) (int64, []storage.Attempt) {
	h.t.Helper()
	for {
		list, _, err := h.store.ListContacts(context.WithoutCancel(ctx), campaignID, storage.ContactFilter{Limit: 100})
		if err != nil {
			h.t.Fatal(err)
		}
		for _, ct := range list {
			if ct.Phone != phone {
				continue
			}
			if as := h.attempts(ct.ID); slices.ContainsFunc(as, ok) {
				return ct.ID, as
			}
		}
		if ctx.Err() != nil {
			for _, ct := range list {
				h.t.Logf("contact %s %s: %+v", ct.Phone, ct.Status, h.attempts(ct.ID))
			}
			h.t.Fatalf("%s: never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInboundWhatsAppCallsGoToTheAgents: with the trunk dead, three people call
// the business on WhatsApp while the campaign's one agent is free, then busy. A
// known contact whose journey ended reaches the agent, with the screen-pop and
// audio both ways; an unknown caller becomes a contact of the default inbound
// queue and waits on hold (hearing the hold tone), and the gate refuses to call
// them while they wait; a third, unknown too, waits past the longest wait, hears
// the apology and is hung up on, and the campaign calls them back first. The
// agent's hang-up puts the caller on hold through, and the wallboard's queue
// counts two answered, one abandoned and the longest wait. Each inbound call is
// an attempt of direction inbound.
func TestInboundWhatsAppCallsGoToTheAgents(t *testing.T) {
	requireOpus(t)
	const maxWait = 5 * time.Second
	h := newInboundHarness(t, maxWait)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	const known, onHold, missed = "+5511987650401", "+5511987650402", "+5511987650403"
	c := h.campaignWith(map[string]string{known: "Fibra"})
	if c.ID != 1 {
		t.Fatalf("the queue campaign is %d, the engine's inbound campaign 1", c.ID)
	}
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v %v", list, err)
	}
	knownID := list[0].ID
	storetest.EndJourney(ctx, t, h.store, knownID)
	agent := h.readyAgents(c.ID, 1)[0]
	heard := h.browserAgent(ctx, agent)
	h.run(c.ID)

	knownCall, err := h.emu.PlaceCall(ctx, known)
	if err != nil {
		t.Fatal(err)
	}
	h.waitOnCall(ctx, agent, "the known contact's WhatsApp call")
	h.waitAudioBothWays(ctx, heard, knownCall)
	pop := h.waitAgentEvent(ctx, EventScreenPop).ScreenPop
	if pop.Contact.ID != knownID || pop.Channel != campaigns.ChannelWhatsAppCall || pop.Direction != storage.DirectionInbound {
		t.Errorf("screen-pop %+v, want the known contact %d's inbound WhatsApp call", pop, knownID)
	}

	// The agent is busy: the next callers wait on hold, the first past the
	// longest wait, the second not.
	missedCall, err := h.emu.PlaceCall(ctx, missed)
	if err != nil {
		t.Fatal(err)
	}
	h.waitAttempt(ctx, c.ID, missed, "the first unknown caller queued", func(a storage.Attempt) bool { return a.State == "answered" })
	time.Sleep(maxWait / 2)
	holdCall, err := h.emu.PlaceCall(ctx, onHold)
	if err != nil {
		t.Fatal(err)
	}
	holdID, _ := h.waitAttempt(ctx, c.ID, onHold, "the second unknown caller queued", func(a storage.Attempt) bool { return a.State == "answered" })
	for st, _ := h.emu.CallStats(holdCall); st.PacketsReceived < 25; st, _ = h.emu.CallStats(holdCall) {
		if ctx.Err() != nil {
			t.Fatalf("the caller on hold heard %d packets", st.PacketsReceived)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d, err := h.engine.CheckPolicy(ctx, holdID, campaigns.ActionWhatsAppCall, time.Now())
	if err != nil || d.Allowed || !d.Has(campaigns.ReasonOnInboundCall) {
		t.Errorf("gate on a caller waiting in the queue: %+v, %v", d, err)
	}
	if qs, err := h.engine.InboundQueues(ctx, time.UTC); err != nil || len(qs) != 1 || qs[0].Waiting != 2 {
		t.Errorf("queues while two wait: %+v, %v", qs, err)
	}

	// The first caller waits past the longest wait and leaves the queue to hear
	// the apology; the second still waits.
	for qs, _ := h.engine.InboundQueues(ctx, time.UTC); len(qs) != 1 || qs[0].Waiting != 1; qs, _ = h.engine.InboundQueues(ctx, time.UTC) {
		if ctx.Err() != nil {
			t.Fatalf("queue %+v: the first caller never left it", qs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	h.waitAttempt(ctx, c.ID, known, "the known contact's call ended", func(a storage.Attempt) bool { return a.Direction == storage.DirectionInbound && a.State == "ended" })
	if err := h.engine.Disposition(ctx, agent, Close{Code: "sale"}); err != nil {
		t.Fatal(err)
	}
	h.waitAttempt(ctx, c.ID, onHold, "the caller on hold put through", func(a storage.Attempt) bool { return a.AgentID == agent && a.ConnectAt != nil })
	h.waitOnCall(ctx, agent, "the caller on hold")
	// After the hold tone the agent is heard: one stream, which SRTP keeps.
	before, _ := h.emu.CallStats(holdCall)
	for st, _ := h.emu.CallStats(holdCall); st.PacketsReceived < before.PacketsReceived+50; st, _ = h.emu.CallStats(holdCall) {
		if ctx.Err() != nil {
			t.Fatalf("the caller put through after the hold heard %d packets, %d before", st.PacketsReceived, before.PacketsReceived)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	_, as := h.waitAttempt(ctx, c.ID, onHold, "the held call ended", func(a storage.Attempt) bool { return a.State == "ended" })
	if a := as[0]; a.Outcome != string(campaigns.OutcomeConnected) || a.Direction != storage.DirectionInbound || a.ExternalID != holdCall {
		t.Errorf("held caller's attempt %+v", a)
	}
	if as := h.attempts(knownID); len(as) != 2 || as[1].Direction != storage.DirectionInbound || as[1].Outcome != string(campaigns.OutcomeConnected) ||
		as[1].AgentID != agent || as[1].ExternalID != knownCall {
		t.Errorf("known contact's attempts %+v", as)
	}
	if err := h.engine.Disposition(ctx, agent, Close{Code: "sale"}); err != nil {
		t.Fatal(err)
	}
	// The missed caller was hung up on after the apology, and is called back:
	// the next attempt is the campaign's own.
	missedID, as := h.waitAttempt(ctx, c.ID, missed, "the caller past the longest wait",
		func(a storage.Attempt) bool { return a.Outcome == string(campaigns.OutcomeInboundMissed) })
	if a := as[0]; a.Direction != storage.DirectionInbound || a.AnswerAt == nil || a.EndAt.Sub(*a.AnswerAt) < maxWait || a.AgentID != 0 {
		t.Errorf("missed inbound attempt %+v", a)
	}
	for st, _ := h.emu.CallStats(missedCall); !st.Ended; st, _ = h.emu.CallStats(missedCall) {
		if ctx.Err() != nil {
			t.Fatal("the caller past the longest wait was never hung up on")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Hold tone for the longest wait, then the apology: well over 100 packets.
	if st, _ := h.emu.CallStats(missedCall); st.EndedBy != "business" || st.PacketsReceived < 300 {
		t.Errorf("missed caller's call %+v: want hung up by the business after the hold tone and the apology", st)
	}
	for as = h.attempts(missedID); len(as) < 2; as = h.attempts(missedID) {
		if ctx.Err() != nil {
			t.Fatalf("the missed caller was never called back: %+v", as)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if as[1].Direction != storage.DirectionOutbound {
		t.Errorf("call back %+v", as[1])
	}
	qs, err := h.engine.InboundQueues(ctx, time.UTC)
	if err != nil || len(qs) != 1 {
		t.Fatalf("queues %+v, %v", qs, err)
	}
	if q := qs[0]; q.Answered != 2 || q.Abandoned != 1 || q.LongestWaitSeconds < maxWait.Seconds() || q.CampaignName != c.Name {
		t.Errorf("queue %+v: want 2 answered, 1 abandoned, longest wait ≥ %s", q, maxWait)
	}
}

// TestLateConnectAnsweredWithinMetasRingWindow: a customer's call whose connect
// is applied late (a busy server: here 45 s after the customer placed it) is
// still taken, as Meta lets the business answer for up to about 60 s; one older
// than that has stopped ringing and is not.
func TestLateConnectAnsweredWithinMetasRingWindow(t *testing.T) {
	h := newInboundHarness(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := h.campaignWith(map[string]string{})
	if c.ID != 1 {
		t.Fatalf("the queue campaign is %d, the engine's inbound campaign 1", c.ID)
	}
	h.setState(c.ID, campaigns.StateRunning)
	const late, stale = "+5511987650481", "+5511987650482"
	connect := func(from string, age time.Duration) whatsapp.Event {
		id := "wacid.late-" + from[1:]
		return whatsapp.Event{Key: "call|" + id + "|connect", Type: whatsapp.EventCallConnect, Time: time.Now().Add(-age),
			Call: &whatsapp.CallEvent{ID: id, From: from[1:], To: "551130000000", Direction: "USER_INITIATED", SDPType: "offer", SDP: "v=0"}}
	}
	if err := h.engine.WhatsAppSink().HandleEvents(ctx, []whatsapp.Event{connect(late, 45*time.Second), connect(stale, 75*time.Second)}); err != nil {
		t.Fatal(err)
	}
	// Events apply in event-time order: the stale one was decided first.
	h.waitAttempt(ctx, c.ID, late, "the late call taken", func(a storage.Attempt) bool { return a.Direction == storage.DirectionInbound })
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range list {
		if ct.Phone == stale {
			t.Errorf("a call 75 s old was taken: contact %+v, attempts %+v", ct, h.attempts(ct.ID))
		}
	}
}
