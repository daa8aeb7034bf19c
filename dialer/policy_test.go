package dialer

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// shiftedClock is the wall clock moved by an offset a test advances: time passes
// as usual for the engine's loop, and days pass at once when the test says so.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *shiftedClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newShiftedClock starts at noon UTC five days ago, so a day's window is open for
// hours, and the clock stays behind the wall clock however the test advances it
// (the harness's agents time their talk on the wall clock from the engine's).
func newShiftedClock() *shiftedClock {
	c := &shiftedClock{}
	now := time.Now().UTC()
	noon := time.Date(now.Year(), now.Month(), now.Day()-5, 12, 0, 0, 0, time.UTC)
	c.offset.Store(int64(noon.Sub(now)))
	return c
}

// seedAttempt records an ended call to a contact on the storage clock.
func seedAttempt(t *testing.T, store *storage.DB, contactID int64, outcome campaigns.Outcome) storage.Attempt {
	t.Helper()
	ctx := context.Background()
	a, err := store.StartAttempt(ctx, contactID, campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.State, a.Outcome = "ended", string(outcome)
	if outcome == campaigns.OutcomeAbandoned {
		answered := a.CreatedAt
		a.AnswerAt = &answered
	}
	if err := store.FinishAttempt(ctx, a, backToPending); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestNumberLimitsAndAbandonQuietHoldAcrossCampaigns: a number called three times
// today in campaign A (a busy, a no answer, a machine) is not called in campaign B
// until 24 h after the first of them; a person abandoned in A is not called in B
// for 72 h; both by the engine's clock, through sipp.
func TestNumberLimitsAndAbandonQuietHoldAcrossCampaigns(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 3})
	clock := newShiftedClock()
	h := newHarnessOn(t, filepath.Join(t.TempDir(), "turbina.db"), storage.Options{Now: clock.Now},
		sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{Now: clock.Now})
	ctx := context.Background()
	// The same three numbers in both campaigns.
	a := h.draft(3, campaigns.PacingProgressive, sipOnlyLadder(1))
	b := h.draft(3, campaigns.PacingProgressive, sipOnlyLadder(1))
	inA, _, _ := h.store.ListContacts(ctx, a.ID, storage.ContactFilter{})
	inB, _, _ := h.store.ListContacts(ctx, b.ID, storage.ContactFilter{})
	abandoned := seedAttempt(t, h.store, inA[0].ID, campaigns.OutcomeAbandoned)
	first := seedAttempt(t, h.store, inA[1].ID, campaigns.OutcomeBusy)
	seedAttempt(t, h.store, inA[1].ID, campaigns.OutcomeNoAnswer)
	seedAttempt(t, h.store, inA[1].ID, campaigns.OutcomeMachine)

	h.setState(b.ID, campaigns.StateRunning)
	h.agents(b.ID, 1, 100*time.Millisecond)
	quietUntil := abandoned.CreatedAt.Add(72 * time.Hour)
	limitUntil := first.CreatedAt.Add(24 * time.Hour)
	deferredTo := func(id int64, want time.Time) func(campaigns.Contact) bool {
		return func(ct campaigns.Contact) bool {
			pos, err := h.store.ContactPosition(ctx, id)
			return err == nil && pos.NextAttemptAt.Equal(want)
		}
	}
	h.waitContacts(b.ID, 15*time.Second, func(ct campaigns.Contact) bool {
		switch ct.ID {
		case inB[0].ID:
			return deferredTo(ct.ID, quietUntil)(ct)
		case inB[1].ID:
			return deferredTo(ct.ID, limitUntil)(ct)
		}
		return ct.Status == campaigns.ContactDone
	})
	for i, want := range []campaigns.Reason{campaigns.ReasonAbandonQuietPeriod, campaigns.ReasonNumberAttemptLimit} {
		if as := h.attempts(inB[i].ID); len(as) != 0 {
			t.Fatalf("contact %s called in B: %+v", inB[i].Phone, as)
		}
		rs, err := h.store.PolicyRefusals(ctx, inB[i].ID)
		if err != nil || len(rs) == 0 || !slices.Equal(rs[0].Reasons, []campaigns.Reason{want}) || rs[0].Action != campaigns.ActionSIPCall {
			t.Fatalf("refusals of %s: %+v %v, want %s", inB[i].Phone, rs, err, want)
		}
	}

	// A day later the limit has lifted; the quiet period has not.
	clock.advance(24*time.Hour + time.Second)
	h.waitContacts(b.ID, 15*time.Second, func(ct campaigns.Contact) bool {
		return ct.ID == inB[0].ID || ct.Status == campaigns.ContactDone
	})
	if as := h.attempts(inB[0].ID); len(as) != 0 {
		t.Fatalf("abandoned person called again within 72 h: %+v", as)
	}
	clock.advance(48 * time.Hour)
	h.waitContacts(b.ID, 15*time.Second, func(ct campaigns.Contact) bool { return ct.Status == campaigns.ContactDone })
	if as := h.attempts(inB[0].ID); len(as) != 1 || as[0].CreatedAt.Before(quietUntil) {
		t.Fatalf("after the quiet period: %+v, want one call from %s", as, quietUntil)
	}
	carrier.Wait(t, 10*time.Second)
}

// TestCallbackTimeMustBeAllowed: an agent's callback outside the calling window is
// refused with the next allowed time, which is then accepted; a callback to a
// number put on the do-not-call list during the call is refused for good, and the
// agent's do_not_call disposition puts the number on the global list.
func TestCallbackTimeMustBeAllowed(t *testing.T) {
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 2})
	clock := newShiftedClock()
	h := newHarnessOn(t, filepath.Join(t.TempDir(), "turbina.db"), storage.Options{Now: clock.Now},
		sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, Config{Now: clock.Now})
	ctx := context.Background()
	c := h.draft(2, campaigns.PacingProgressive, sipOnlyLadder(1))
	if _, err := h.store.UpdateCampaign(ctx, tester, c.ID, "test", func(c *campaigns.Campaign) error {
		c.Window = campaigns.Window{Start: 9 * 60, End: 21 * 60} // the contacts are in UTC; the clock is at noon
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list, _, _ := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	agent := h.readyAgents(c.ID, 1)[0]
	h.setState(c.ID, campaigns.StateRunning)

	wrapUp := func() Agent {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		h.waitOnCall(wctx, agent, "a call")
		if err := h.engine.Hangup(ctx, agent); err != nil {
			t.Fatal(err)
		}
		for {
			if a, _ := h.engine.Agents().Get(agent); a.State == AgentWrapUp {
				return a
			}
			if wctx.Err() != nil {
				t.Fatal("no wrap-up")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := wrapUp()
	attempt, _ := h.store.GetAttempt(ctx, a.AttemptID)
	night := clock.Now().UTC().Truncate(time.Hour).Add(10 * time.Hour) // 22:00 UTC
	err := h.engine.Disposition(ctx, agent, Close{Code: "callback", CallbackAt: night, SameAgent: true})
	var refused *campaigns.RefusedError
	if !errors.As(err, &refused) || !refused.Decision.Has(campaigns.ReasonOutsideWindow) || refused.Decision.NextAllowedAt == nil {
		t.Fatalf("callback at %s: %v", night, err)
	}
	next := *refused.Decision.NextAllowedAt
	if want := time.Date(night.Year(), night.Month(), night.Day()+1, 9, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next allowed %s, want %s", next, want)
	}
	if got, _ := h.engine.Agents().Get(agent); got.State != AgentWrapUp {
		t.Fatalf("a refused callback freed the agent: %s", got.State)
	}
	if err := h.engine.Disposition(ctx, agent, Close{Code: "callback", CallbackAt: next, SameAgent: true}); err != nil {
		t.Fatalf("callback at the next allowed time: %v", err)
	}
	if pos, err := h.store.ContactPosition(ctx, attempt.ContactID); err != nil || !pos.NextAttemptAt.Equal(next) {
		t.Errorf("callback scheduled at %v (%v), want %s", pos.NextAttemptAt, err, next)
	}

	// The second contact asks, during the call, never to be called again.
	a = wrapUp()
	attempt, _ = h.store.GetAttempt(ctx, a.AttemptID)
	other := list[0]
	if other.ID != attempt.ContactID {
		other = list[1]
	}
	if _, err := h.store.AddDNC(ctx, tester, 0, []string{other.Phone}, "asked"); err != nil {
		t.Fatal(err)
	}
	err = h.engine.Disposition(ctx, agent, Close{Code: "callback", CallbackAt: clock.Now().Add(time.Hour)})
	if !errors.As(err, &refused) || !refused.Decision.Has(campaigns.ReasonDoNotCall) || refused.Decision.NextAllowedAt != nil {
		t.Fatalf("callback to a do-not-call number: %v", err)
	}
	if err := h.store.RemoveDNC(ctx, tester, 0, other.Phone, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.engine.Disposition(ctx, agent, Close{Code: campaigns.DispositionDoNotCall}); err != nil {
		t.Fatal(err)
	}
	if blocked, _ := h.store.IsDNC(ctx, 0, other.Phone); !blocked {
		t.Error("do_not_call disposition left the number off the list")
	}
	if f, _ := h.store.PolicyFacts(ctx, other.ID, "", clock.Now()); !f.OptedOut {
		t.Error("do_not_call disposition is not an opt-out")
	}
	rs, _ := h.store.PolicyRefusals(ctx, other.ID)
	if len(rs) != 1 || rs[0].Action != campaigns.ActionCallback {
		t.Errorf("refusals %+v", rs)
	}
	carrier.Wait(t, 10*time.Second)
}

// textsTo counts the text messages sent to phone.
func (h *waHarness) textsTo(phone string) int {
	n := 0
	for _, r := range h.emu.Requests() {
		if r.Type == "text" && r.Status == 200 && strings.TrimPrefix(r.To, "+") == strings.TrimPrefix(phone, "+") {
			n++
		}
	}
	return n
}

// TestOptOutReplyStopsEveryAction: a reply "Sáir!" through the emulator's signed
// webhook puts the number on the do-not-call list within a second, for its
// contacts in every campaign, is confirmed once (not again on a second opt-out,
// nor when the webhook is applied again), and every action on it is refused.
func TestOptOutReplyStopsEveryAction(t *testing.T) {
	h := newWhatsAppHarness(t)
	ctx := context.Background()
	const phone, other = "+5511987650061", "+5511987650062"
	a := h.campaignWith(map[string]string{phone: "Ouro", other: "Prata"})
	b := h.campaignWith(map[string]string{phone: "Ouro"})
	sent := time.Now()
	id := h.emu.UserMessage(phone, "  Sáir!! ")
	for blocked := false; !blocked; {
		var err error
		if blocked, err = h.store.IsDNC(ctx, 0, phone); err != nil {
			t.Fatal(err)
		}
		if time.Since(sent) > time.Second {
			t.Fatalf("not on the do-not-call list %s after the reply", time.Since(sent))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("on the list %s after the reply", time.Since(sent).Round(time.Millisecond))
	var contacts []campaigns.Contact
	for _, c := range []int64{a.ID, b.ID} {
		list, _, _ := h.store.ListContacts(ctx, c, storage.ContactFilter{})
		for _, ct := range list {
			if want := ct.Phone == phone; (ct.Status == campaigns.ContactDoNotCall) != want {
				t.Errorf("contact %s of campaign %d is %s", ct.Phone, c, ct.Status)
			}
			if ct.Phone == phone {
				contacts = append(contacts, ct)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.textsTo(phone) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// A second opt-out word, and the first reply applied again as after a crash.
	h.emu.UserMessage(phone, "PARAR")
	for deadline = time.Now().Add(5 * time.Second); ; {
		msgs, _ := h.store.ListWAMessages(ctx, contacts[0].ID)
		in := 0
		for _, m := range msgs {
			if m.Direction == "in" {
				in++
			}
		}
		if in == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second reply not kept: %+v", msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.engine.wa.Apply(ctx, whatsapp.Event{Message: &whatsapp.InboundMessage{ID: id, From: strings.TrimPrefix(phone, "+"), Type: "text", Text: "Sáir"}, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := h.textsTo(phone); n != 1 {
		t.Fatalf("%d confirmations, want 1", n)
	}

	// Every action on the number is refused, each with do_not_call and opted_out.
	ct := contacts[0]
	for _, text := range []string{"", "Oi"} {
		_, err := h.engine.SendWhatsApp(ctx, ct.ID, text, "k"+text)
		var refused *campaigns.RefusedError
		if !errors.As(err, &refused) || !refused.Decision.Has(campaigns.ReasonDoNotCall) || !refused.Decision.Has(campaigns.ReasonOptedOut) {
			t.Errorf("agent send %q: %v", text, err)
		}
	}
	for _, action := range campaigns.ContactActions {
		d, err := h.engine.CheckPolicy(ctx, ct.ID, action, time.Now())
		if err != nil || d.Allowed || !d.Has(campaigns.ReasonDoNotCall) || !d.Has(campaigns.ReasonOptedOut) || !d.Final() {
			t.Errorf("%s: %+v %v", action, d, err)
		}
	}
	before := len(h.emu.Requests())
	h.engine.channels[campaigns.ChannelWhatsAppCall].(*wachannel.Calls).RequestPermission(ctx, channel.PlaceRequest{Contact: ct, To: phone, Key: "contact-x", Rung: waLadder()[1]})
	if n := len(h.emu.Requests()); n != before {
		t.Errorf("a permission request went out to an opted-out number: %+v", h.emu.Requests()[before:])
	}
	rs, err := h.store.PolicyRefusals(ctx, ct.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []campaigns.ContactAction
	for _, r := range rs {
		actions = append(actions, r.Action)
	}
	if want := []campaigns.ContactAction{campaigns.ActionTemplate, campaigns.ActionText, campaigns.ActionPermissionRequest}; !slices.Equal(actions, want) {
		t.Errorf("refusals kept %v, want %v", actions, want)
	}
	// Running campaign A places nothing for the number.
	h.agents(a.ID, 1, time.Hour)
	h.setState(a.ID, campaigns.StateRunning)
	time.Sleep(time.Second)
	for _, ct := range contacts {
		if as := h.attempts(ct.ID); len(as) != 0 {
			t.Errorf("opted-out contact tried: %+v", as)
		}
	}
}

// backToPending puts the contact back where it was, pending, after a seeded attempt.
func backToPending(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
	pos.Status = campaigns.ContactPending
	return pos, nil
}

// TestOptOutStopsARingingCall: a number opted out while its call rings is not left
// ringing to the ring timeout: the call is cancelled at once (sipp sees the
// CANCEL), its attempt says why, and the contact stays on the do-not-call list.
func TestOptOutStopsARingingCall(t *testing.T) {
	carrier := sipptest.Start(t, "noanswer.xml", sipptest.Options{Calls: 1})
	h := newHarnessWith(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}},
		Config{RingTimeout: 60 * time.Second})
	ctx := context.Background()
	c := h.campaign(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	h.agents(c.ID, 1, time.Second)
	list, _, err := h.store.ListContacts(ctx, c.ID, storage.ContactFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("contacts: %v %v", list, err)
	}
	ct := list[0]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if as := h.attempts(ct.ID); len(as) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never rang: %+v", h.attempts(ct.ID))
		}
		h.engine.CampaignChanged()
	}
	// The carrier rings at once; the run keeps ringing in memory (it is written
	// with the call's next step), so give the 180 a moment to arrive.
	time.Sleep(time.Second)
	optedOut := time.Now()
	if _, err := h.engine.OptOut(ctx, tester, []string{ct.Phone}, storage.OptOutAPI); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if as := h.attempts(ct.ID); len(as) == 1 && as[0].State == "ended" {
			a := as[0]
			if took := a.EndAt.Sub(optedOut); took > 2*time.Second {
				t.Errorf("the call rang on %s after the opt-out", took)
			}
			if !strings.Contains(string(a.Detail), "do-not-call") || a.HangupBy != "local" {
				t.Errorf("attempt %+v detail %s", a, a.Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still ringing 5 s after the opt-out: %+v", h.attempts(ct.ID))
		}
	}
	if got, _ := h.store.GetContact(ctx, ct.ID); got.Status != campaigns.ContactDoNotCall {
		t.Errorf("contact is %q", got.Status)
	}
	carrier.Wait(t, 10*time.Second)
}
