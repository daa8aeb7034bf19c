package dialer

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// droppingTrunk is a SIP channel whose calls are answered at once and go on until
// hung up or dropped by the test as a dead trunk drops them (HangupBy trunk).
type droppingTrunk struct {
	legs chan *droppingLeg
}

// droppingLeg is one call of a droppingTrunk.
type droppingLeg struct {
	events chan channel.AttemptEvent
	once   sync.Once
}

func newDroppingTrunk() *droppingTrunk { return &droppingTrunk{legs: make(chan *droppingLeg, 8)} }

// sipChannel is the harness's SIP channel: this trunk, whatever the originator.
func (d *droppingTrunk) sipChannel(*sip.Originator) channel.Channel { return d }

func (d *droppingTrunk) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	l := &droppingLeg{events: make(chan channel.AttemptEvent, 8)}
	now := time.Now()
	l.events <- channel.AttemptEvent{Kind: channel.AttemptSetup, At: now, Trunk: "trunk-a"}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptRinging, At: now, Trunk: "trunk-a"}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptAnswered, At: now, Trunk: "trunk-a"}
	select {
	case d.legs <- l:
	default:
	}
	return l, nil
}

// next waits for the next call placed.
func (d *droppingTrunk) next(ctx context.Context, t *testing.T) *droppingLeg {
	t.Helper()
	select {
	case l := <-d.legs:
		return l
	case <-ctx.Done():
		t.Fatal("no SIP call was placed")
		return nil
	}
}

func (l *droppingLeg) Events() <-chan channel.AttemptEvent { return l.events }

func (l *droppingLeg) Hangup(context.Context) error {
	l.end("local")
	return nil
}

// drop ends the call as a dead trunk does: nobody hung up, the line dropped.
func (l *droppingLeg) drop() { l.end(channel.HangupByTrunk) }

func (l *droppingLeg) end(by string) {
	l.once.Do(func() {
		l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), HangupBy: by, Trunk: "trunk-a"}
		close(l.events)
	})
}

// agentEvents is a copy of the agents' events so far, state changes left out.
func (h *harness) agentEvents() []AgentEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// waitAgentEvent waits for an agent event of kind and returns it.
func (h *harness) waitAgentEvent(ctx context.Context, kind AgentEventKind) AgentEvent {
	h.t.Helper()
	for {
		for _, ev := range h.agentEvents() {
			if ev.Kind == kind {
				return ev
			}
		}
		if ctx.Err() != nil {
			h.t.Fatalf("no %s event; the agent had %v", kind, eventKinds(h.agentEvents()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventKinds lists events' kinds, audio path switches left out.
func eventKinds(evs []AgentEvent) []AgentEventKind {
	var out []AgentEventKind
	for _, ev := range evs {
		if ev.Kind != EventAudioPath {
			out = append(out, ev.Kind)
		}
	}
	return out
}

// waitAttempts waits until the contact has n attempts, all ended, and ok holds.
func (h *harness) waitEndedAttempts(ctx context.Context, contactID int64, n int, ok func([]storage.Attempt) bool) []storage.Attempt {
	h.t.Helper()
	for {
		as := h.attempts(contactID)
		done := len(as) == n
		for _, a := range as {
			done = done && a.State == "ended"
		}
		if done && ok(as) {
			return as
		}
		if ctx.Err() != nil {
			h.t.Fatalf("attempts %+v", as)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resumeCampaign creates the campaign of one contact (the ladder SIP, WhatsApp call,
// template) and returns it with the contact's id.
func (h *waHarness) resumeCampaign(phone string) (campaigns.Campaign, int64) {
	h.t.Helper()
	c := h.campaignWith(map[string]string{phone: "Fibra"})
	list, _, err := h.store.ListContacts(context.Background(), c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		h.t.Fatalf("contacts %v %v", list, err)
	}
	return c, list[0].ID
}

// resumedConversation is the scene of a conversation whose SIP trunk dropped and
// that was taken up on WhatsApp: the person answered the call back and is with
// the same agent, whose browser hears the call.
type resumedConversation struct {
	h                       *waHarness
	ctx                     context.Context // the test's patience, from the scene's start
	c                       campaigns.Campaign
	contactID, agent, sipID int64 // sipID: the conversation's attempt, as the screen-pop named it
	ear                     *agentEar
	callID                  string // the WhatsApp call back's
}

// resumeOnWhatsApp builds a resumedConversation for phone: a campaign of its one
// contact (call permission granted), one agent with a browser, the SIP call
// answered and dropped by the trunk, and the WhatsApp call back accepted.
func resumeOnWhatsApp(t *testing.T, phone string) resumedConversation {
	t.Helper()
	requireOpus(t)
	trunk := newDroppingTrunk()
	h := newWhatsAppHarnessSIP(t, fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t)), trunk.sipChannel)
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 200 * time.Millisecond})
	c, contactID := h.resumeCampaign(phone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := h.store.SetWhatsAppPermission(ctx, contactID, storage.PermissionGranted, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	agent := h.agents(c.ID, 1, time.Hour)[0]
	ear := h.browserAgent(ctx, agent)
	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "the SIP call")
	leg := trunk.next(ctx, t)
	sipID := h.waitAgentEvent(ctx, EventScreenPop).ScreenPop.AttemptID
	leg.drop()
	h.waitAgentEvent(ctx, EventResumed)
	var callID string
	for _, cs := range h.emu.Calls() {
		callID = cs.CallID
	}
	return resumedConversation{h: h, ctx: ctx, c: c, contactID: contactID, agent: agent, sipID: sipID, ear: ear, callID: callID}
}

// TestTrunkDroppedConversationResumesOnWhatsApp is issue 14's promise for a call
// talking to an agent when its trunk dies: the person is called on WhatsApp within
// a second, picks up, and is back with the same agent (who kept the screen-pop and
// was told), with audio both ways; the two attempts are linked and the
// conversation counts once.
func TestTrunkDroppedConversationResumesOnWhatsApp(t *testing.T) {
	r := resumeOnWhatsApp(t, "+5511987650031")
	h, ctx, c, contactID, agent, sipID, ear, callID := r.h, r.ctx, r.c, r.contactID, r.agent, r.sipID, r.ear, r.callID
	if a, _ := h.engine.Agents().Get(agent); a.State != AgentOnCall || a.AttemptID != sipID {
		t.Fatalf("agent after the resume: %s on attempt %d, want on_call on %d (the screen-pop's)", a.State, a.AttemptID, sipID)
	}
	// The agent hears the WhatsApp user (the emulator's Opus frames, on the
	// browser's Opus path) and the user hears the agent.
	for ear.path(webrtc.MimeTypeOpus).opusSilence < 25 {
		if ctx.Err() != nil {
			t.Fatalf("agent heard %+v of the WhatsApp user", ear.path(webrtc.MimeTypeOpus))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for st, _ := h.emu.CallStats(callID); st.PacketsReceived < 25; st, _ = h.emu.CallStats(callID) {
		if ctx.Err() != nil {
			t.Fatalf("WhatsApp user got %d packets of the agent", st.PacketsReceived)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	as := h.waitEndedAttempts(ctx, contactID, 2, func(as []storage.Attempt) bool { return as[0].Disposition != "" })
	sip, wa := as[0], as[1]
	if sip.ID != sipID || sip.Channel != campaigns.ChannelSIP || sip.Outcome != string(campaigns.OutcomeConnected) ||
		sip.HangupBy != channel.HangupByTrunk || sip.AgentID != agent || sip.Disposition != "sale" {
		t.Errorf("SIP attempt %+v: want connected, hung up by the trunk, the agent's, disposed", sip)
	}
	if wa.Channel != campaigns.ChannelWhatsAppCall || wa.Outcome != string(campaigns.OutcomeResumed) || wa.ResumedFrom != sip.ID ||
		wa.AgentID != agent || wa.ExternalID != callID || wa.ConnectAt == nil {
		t.Errorf("WhatsApp attempt %+v: want resumed from %d, through to agent %d, call %s", wa, sip.ID, agent, callID)
	}
	// Measured from the records' own timestamps: the call left within a second of
	// the drop and was back with the agent within the 5 s.
	if left := wa.CreatedAt.Sub(*sip.EndAt); left > time.Second {
		t.Errorf("WhatsApp call placed %s after the drop, want within 1 s", left)
	}
	if back := wa.ConnectAt.Sub(*sip.EndAt); back > 5*time.Second {
		t.Errorf("back with the agent %s after the drop, want within 5 s", back)
	}
	if n := len(h.emu.Calls()); n != 1 {
		t.Errorf("%d WhatsApp calls, want the one call back", n)
	}
	kinds := eventKinds(h.agentEvents())
	if want := []AgentEventKind{EventScreenPop, EventResuming, EventResumed, EventCallEnded}; !slices.Equal(kinds, want) {
		t.Errorf("agent events %v, want %v (one screen-pop, kept)", kinds, want)
	}
	for _, ev := range h.agentEvents() {
		if ev.Kind != EventAudioPath && ev.AttemptID != sipID && ev.Kind != EventScreenPop {
			t.Errorf("%s event names attempt %d, want the conversation's %d", ev.Kind, ev.AttemptID, sipID)
		}
	}
	st, err := h.store.CampaignStats(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Connected != 1 || st.Answered != 1 || st.Abandoned != 0 {
		t.Errorf("stats: %d connected, %d answered, %d abandoned; want the one conversation counted once", st.Connected, st.Answered, st.Abandoned)
	}
	ab, err := h.store.Abandonment(ctx, c.ID, time.Now(), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Hours24.Answered != 1 || ab.Hours24.Abandoned != 0 {
		t.Errorf("abandonment over 24 h: %+v, want 1 answered, none abandoned", ab.Hours24)
	}
	if ct := h.waitContacts(c.ID, 5*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone }); len(ct) != 1 {
		t.Errorf("contacts %+v", ct)
	}
}

// TestTrunkDroppedConversationNotResumed: when the person cannot be called back on
// WhatsApp (the gate refuses, WhatsApp refuses for permission, the person
// declines) the agent is told and goes to wrap-up on the conversation's screen,
// the conversation stays recorded once as connected, and a call back that was
// placed is linked to it with its own outcome.
func TestTrunkDroppedConversationNotResumed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		permission string // the contact's stored call permission ("" unknown)
		behaviour  emulator.Behaviour
		outcome    campaigns.Outcome // of the call back; "" when none was placed
	}{
		{"permission denied today: the gate refuses", storage.PermissionDenied, emulator.Behaviour{Call: emulator.CallAccept}, ""},
		{"WhatsApp refuses: no permission", "", emulator.Behaviour{RequirePermission: true}, campaigns.OutcomeNoPermission},
		{"the person declines", storage.PermissionGranted, emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond},
			campaigns.OutcomeRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trunk := newDroppingTrunk()
			h := newWhatsAppHarnessSIP(t, fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t)), trunk.sipChannel)
			const phone = "+5511987650032"
			h.emu.Script(strings.TrimPrefix(phone, "+"), tc.behaviour)
			c, contactID := h.resumeCampaign(phone)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.permission != "" {
				if err := h.store.SetWhatsAppPermission(ctx, contactID, tc.permission, time.Now().Add(24*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.permission == storage.PermissionDenied {
				// Asked (and refused) an hour ago: Meta allows no other request today.
				if err := h.store.RecordPermissionRequest(ctx, contactID, phone, time.Now().Add(-time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			agent := h.agents(c.ID, 1, time.Hour)[0]
			h.setState(c.ID, campaigns.StateRunning)
			h.waitOnCall(ctx, agent, "the SIP call")
			trunk.next(ctx, t).drop()
			n := 2
			if tc.outcome == "" {
				n = 1
			}
			as := h.waitEndedAttempts(ctx, contactID, n, func(as []storage.Attempt) bool { return as[0].Disposition != "" })
			if sip := as[0]; sip.Outcome != string(campaigns.OutcomeConnected) || sip.HangupBy != channel.HangupByTrunk || sip.Disposition != "sale" {
				t.Errorf("SIP attempt %+v: want connected, hung up by the trunk, disposed by the agent", sip)
			}
			if tc.outcome != "" {
				if wa := as[1]; wa.Channel != campaigns.ChannelWhatsAppCall || wa.Outcome != string(tc.outcome) || wa.ResumedFrom != as[0].ID {
					t.Errorf("call back %+v: want %s, resumed from %d", wa, tc.outcome, as[0].ID)
				}
			} else {
				if calls := h.emu.Calls(); len(calls) != 0 {
					t.Errorf("WhatsApp calls %+v, want none: the gate refused", calls)
				}
				refusals, err := h.store.PolicyRefusals(ctx, contactID)
				if err != nil || !slices.ContainsFunc(refusals, func(r storage.PolicyRefusal) bool { return r.Action == campaigns.ActionWhatsAppCall }) {
					t.Errorf("refusals %+v, %v: want the call back's kept in the history", refusals, err)
				}
			}
			kinds := eventKinds(h.agentEvents())
			if want := []AgentEventKind{EventScreenPop, EventResuming, EventResumeFailed, EventCallEnded}; !slices.Equal(kinds, want) {
				t.Errorf("agent events %v, want %v", kinds, want)
			}
			st, err := h.store.CampaignStats(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Connected != 1 || st.Abandoned != 0 {
				t.Errorf("stats: %d connected, %d abandoned; want the conversation once, no abandon", st.Connected, st.Abandoned)
			}
			h.waitContacts(c.ID, 5*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
		})
	}
}

// TestCrashDuringAResumeLeavesTheContactAsTheConversationLeftIt: a call back on
// WhatsApp open when Turbina stopped is closed interrupted at the next start,
// and its contact, which the dropped conversation finished, stays done: the
// resume moves nobody, so nothing is refused or logged as an error.
func TestCrashDuringAResumeLeavesTheContactAsTheConversationLeftIt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	store, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := campaigns.Campaign{Name: "crash", CallerID: "+551130000000", Ladder: waLadder()}
	c.ApplyDefaults()
	if err := store.CreateCampaign(ctx, tester, &c); err != nil {
		t.Fatal(err)
	}
	b, err := store.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, campaigns.Contact{Phone: "+5511987650033", Line: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list, _, err := store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	sipA, err := store.StartAttempt(ctx, list[0].ID, campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sipA.State, sipA.Outcome, sipA.HangupBy, sipA.ConnectAt, sipA.EndAt = "ended", string(campaigns.OutcomeConnected), channel.HangupByTrunk, &now, &now
	if err := store.FinishAttempt(ctx, sipA, func(ct campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
		return campaigns.Apply(c.Ladder, ct, pos, campaigns.OutcomeEvent(campaigns.OutcomeConnected), now)
	}); err != nil {
		t.Fatal(err)
	}
	resume, err := store.StartResumeAttempt(ctx, sipA, campaigns.ChannelWhatsAppCall, 1)
	if err != nil {
		t.Fatal(err)
	}
	store.Close()

	lines := &logLines{}
	h := newHarnessLogging(t, path, storage.Options{}, sip.Config{Trunks: []sip.TrunkConfig{{Name: "t", Address: fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t))}}},
		Config{}, slog.New(slog.NewJSONHandler(lines, nil)))
	deadline := time.Now().Add(10 * time.Second)
	for a, _ := h.store.GetAttempt(ctx, resume.ID); a.State != "ended"; a, _ = h.store.GetAttempt(ctx, resume.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("resume attempt %+v not closed at start", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a, _ := h.store.GetAttempt(ctx, resume.ID); a.Outcome != string(campaigns.OutcomeInterrupted) || a.ResumedFrom != sipA.ID {
		t.Errorf("resume attempt %+v, want interrupted, resumed from %d", a, sipA.ID)
	}
	if pos, err := h.store.ContactPosition(ctx, list[0].ID); err != nil || pos.Contact.Status != campaigns.ContactDone {
		t.Errorf("contact %+v, %v: want done, as the conversation left it", pos.Contact, err)
	}
	if recs := lines.records(t, "contact left where it is"); len(recs) != 0 {
		t.Errorf("the journey refused the resume's end: %v", recs)
	}
}

// TestAgentGivesUpTheCallBack: an agent who hangs up while the person is being
// called back on WhatsApp gives the call back up: it is withdrawn and recorded
// canceled (our side gave up before the answer; not interrupted, which says
// Turbina stopped), hung up by the agent, linked to the conversation and moving
// nobody; the agent is in wrap-up with the conversation's disposition at once.
func TestAgentGivesUpTheCallBack(t *testing.T) {
	trunk := newDroppingTrunk()
	h := newWhatsAppHarnessSIP(t, fmt.Sprintf("127.0.0.1:%d", sipptest.FreePort(t)), trunk.sipChannel)
	const phone = "+5511987650041"
	h.emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 20 * time.Second})
	c, contactID := h.resumeCampaign(phone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.store.SetWhatsAppPermission(ctx, contactID, storage.PermissionGranted, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	agent := h.agents(c.ID, 1, time.Hour)[0]
	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "the SIP call")
	trunk.next(ctx, t).drop()
	h.waitAgentEvent(ctx, EventResuming)
	for len(h.emu.Calls()) == 0 { // the call back rings
		if ctx.Err() != nil {
			t.Fatal("no call back on WhatsApp")
		}
		time.Sleep(20 * time.Millisecond)
	}
	hungUpAt := time.Now()
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatalf("agent's hang-up during the call back: %v", err)
	}
	ended := h.waitAgentEvent(ctx, EventCallEnded)
	if ended.At.Sub(hungUpAt) > time.Second {
		t.Errorf("agent released to wrap-up %s after the hang-up, want at once", ended.At.Sub(hungUpAt))
	}
	// The harness's agent closes its wrap-up with "sale": on the conversation.
	as := h.waitEndedAttempts(ctx, contactID, 2, func(as []storage.Attempt) bool { return as[0].Disposition == "sale" })
	if sip := as[0]; sip.Outcome != string(campaigns.OutcomeConnected) || sip.HangupBy != channel.HangupByTrunk {
		t.Errorf("SIP attempt %+v: want connected, hung up by the trunk", sip)
	}
	wa := as[1]
	if wa.Channel != campaigns.ChannelWhatsAppCall || wa.Outcome != string(campaigns.OutcomeCanceled) || wa.HangupBy != "agent" || wa.ResumedFrom != as[0].ID {
		t.Errorf("call back %+v: want canceled, hung up by the agent, resumed from %d", wa, as[0].ID)
	}
	if wa.AnswerAt != nil || wa.EndAt == nil || wa.EndAt.Before(hungUpAt.Add(-time.Second)) {
		t.Errorf("call back answered at %v, ended at %v: want unanswered, ended after the agent's hang-up (%s)", wa.AnswerAt, wa.EndAt, hungUpAt)
	}
	kinds := eventKinds(h.agentEvents())
	if want := []AgentEventKind{EventScreenPop, EventResuming, EventCallEnded}; !slices.Equal(kinds, want) {
		t.Errorf("agent events %v, want %v", kinds, want)
	}
	if ended.AttemptID != as[0].ID {
		t.Errorf("call_ended names attempt %d, want the conversation's %d", ended.AttemptID, as[0].ID)
	}
	h.waitContacts(c.ID, 5*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
}

// TestResumedConversationAgentVanishes is issue 15's item 0 for a conversation
// taken up on WhatsApp: when the agent's audio goes away (its browser closes)
// while the person is back on the WhatsApp call, the person hears the
// safe-harbour message and the call back counts abandoned in the campaign's
// figures; the conversation's SIP attempt stays connected and the contact is not
// moved again.
func TestResumedConversationAgentVanishes(t *testing.T) {
	t.Parallel()
	r := resumeOnWhatsApp(t, "+5511987650039")
	h, ctx, c, contactID, agent, sipID, ear, callID := r.h, r.ctx, r.c, r.contactID, r.agent, r.sipID, r.ear, r.callID
	h.waitAudioBothWays(ctx, ear, callID)
	before, _ := h.emu.CallStats(callID)

	ear.browser.PC.Close()
	// The message's mark is written once it has played, beside the outcome.
	as := h.waitEndedAttempts(ctx, contactID, 2, func(as []storage.Attempt) bool { return as[1].SafeHarbour != "" })
	sip, wa := as[0], as[1]
	if sip.ID != sipID || sip.Outcome != string(campaigns.OutcomeConnected) || sip.HangupBy != channel.HangupByTrunk {
		t.Errorf("SIP attempt %+v: want the conversation, connected, hung up by the trunk", sip)
	}
	if wa.Channel != campaigns.ChannelWhatsAppCall || wa.ResumedFrom != sip.ID || wa.Outcome != string(campaigns.OutcomeAbandoned) ||
		wa.HangupBy != "agent_lost" || wa.SafeHarbour != storage.SafeHarbourBuiltin {
		t.Errorf("WhatsApp attempt %+v: want resumed from %d, abandoned, hung up by agent_lost, with the built-in safe-harbour message", wa, sip.ID)
	}
	// The WhatsApp user heard the message (two seconds of it at least, so not
	// the agent's last packets): packets after the agent's went, and the call
	// ended by our side.
	after, _ := h.emu.CallStats(callID)
	if after.PacketsReceived-before.PacketsReceived < 100 || !after.Ended || after.EndedBy != "business" {
		t.Errorf("WhatsApp user's call after the agent vanished: %d more packets, ended %t by %q; want the message heard, hung up by the business",
			after.PacketsReceived-before.PacketsReceived, after.Ended, after.EndedBy)
	}
	st, err := h.store.CampaignStats(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Abandoned != 1 || st.Answered != 2 || st.Connected != 1 {
		t.Errorf("stats: %d connected, %d answered, %d abandoned; want the call back answered and abandoned beside the conversation",
			st.Connected, st.Answered, st.Abandoned)
	}
	ab, err := h.store.Abandonment(ctx, c.ID, time.Now(), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Hours24.Abandoned != 1 {
		t.Errorf("abandonment over 24 h: %+v, want the call back abandoned", ab.Hours24)
	}
	// The agent, whose audio is gone, takes no further call: once its wrap-up is
	// closed it is paused for want of audio.
	for ag, _ := h.engine.Agents().Get(agent); ag.State != AgentPaused || ag.Reason != ReasonNoAudio; ag, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatalf("agent %+v, want paused (no_audio)", ag)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ct := h.waitContacts(c.ID, 5*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone }); len(ct) != 1 {
		t.Errorf("contacts %+v, want the conversation's contact done, not moved again", ct)
	}
}
