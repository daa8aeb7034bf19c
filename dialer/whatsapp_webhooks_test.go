package dialer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// TestDuplicatedAndReorderedWebhooksGiveOneOutcomePerAttempt: Meta sends every
// webhook twice and out of order (a call's RINGING after its terminate, statuses
// after the end). Each contact still gets one attempt per rung, each ending once
// with the outcome of what happened, and one template, whose delivery ends read.
func TestDuplicatedAndReorderedWebhooksGiveOneOutcomePerAttempt(t *testing.T) {
	t.Parallel()
	requireOpus(t)
	h := newWhatsAppHarness(t)
	type want struct {
		b    emulator.Behaviour
		call campaigns.Outcome
	}
	scripts := map[string]want{
		"+5511987651001": {emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 100 * time.Millisecond}, campaigns.OutcomeRejected},
		"+5511987651002": {emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: 50 * time.Millisecond}, campaigns.OutcomeRejected},
		"+5511987651003": {emulator.Behaviour{Call: emulator.CallNoAnswer, RingTimeout: 300 * time.Millisecond}, campaigns.OutcomeNoAnswer},
		"+5511987651004": {emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 100 * time.Millisecond, HangupAfter: 300 * time.Millisecond}, campaigns.OutcomeConnected},
	}
	contacts := map[string]string{}
	for phone, w := range scripts {
		w.b.DuplicateWebhooks, w.b.ReorderWebhooks = true, true
		h.emu.Script(strings.TrimPrefix(phone, "+"), w.b)
		contacts[phone] = "Fibra"
	}
	c := h.campaignWith(contacts)
	h.agents(c.ID, 2, time.Hour)
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 30*time.Second, func(ct campaigns.Contact) bool {
		if ct.Status != campaigns.ContactDone {
			return false
		}
		as := h.attempts(ct.ID)
		last := as[len(as)-1]
		return last.Channel != campaigns.ChannelWhatsAppTemplate || last.Outcome == "read"
	})
	// Let the last duplicates and held-back statuses arrive and be applied.
	waitQuiet(t, h.emu)
	time.Sleep(1200 * time.Millisecond)
	ctx := context.Background()
	for _, ct := range list {
		w := scripts[ct.Phone]
		as := h.attempts(ct.ID)
		var got []string
		for _, a := range as {
			got = append(got, fmt.Sprintf("%s:%s", a.Channel, a.Outcome))
			if a.State != "ended" || a.EndAt == nil {
				t.Errorf("%s: attempt %d is %s", ct.Phone, a.ID, a.State)
			}
		}
		wantSeq := []string{"sip:" + string(campaigns.OutcomeTrunkFault), "whatsapp_call:" + string(w.call), "whatsapp_template:read"}
		if w.call == campaigns.OutcomeConnected {
			wantSeq = wantSeq[:2]
		}
		if len(got) != len(wantSeq) || strings.Join(got[1:], ",") != strings.Join(wantSeq[1:], ",") || as[0].Channel != campaigns.ChannelSIP {
			t.Errorf("%s: attempts %v, want %v", ct.Phone, got, wantSeq)
		}
		msgs, err := h.store.ListWAMessages(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		templates := 0
		for _, m := range msgs {
			if m.Type == "template" {
				templates++
			}
		}
		if want := len(wantSeq) - 2; templates != want {
			t.Errorf("%s: %d templates in the conversation, want %d", ct.Phone, templates, want)
		}
	}
	// Each request took effect once, though every webhook came twice.
	for _, r := range h.emu.Requests() {
		if r.Key != "" && r.Status == 200 && h.emu.Accepted(r.Key) != 1 {
			t.Errorf("key %s accepted %d times", r.Key, h.emu.Accepted(r.Key))
		}
	}
	if pending, err := h.store.PendingWebhookEvents(ctx, 100); err != nil || len(pending) != 0 {
		t.Errorf("webhook events left unapplied: %d, %v", len(pending), err)
	}
}

// waitQuiet waits until the emulator has delivered no webhook for 300 ms.
func waitQuiet(t *testing.T, emu *emulator.Emulator) {
	t.Helper()
	last, since := emu.WebhooksDelivered(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if d := emu.WebhooksDelivered(); d != last {
			last, since = d, time.Now()
		} else if time.Since(since) > 300*time.Millisecond {
			return
		}
	}
	t.Fatal("webhooks still flowing after 10 s")
}

// templateCampaign creates a draft campaign of n contacts whose ladder is only the
// reminder template, filled with the contact's name and phone.
func (h *waHarness) templateCampaign(n int) (campaigns.Campaign, []string) {
	h.t.Helper()
	ctx := context.Background()
	c := campaigns.Campaign{Name: "wa-templates", CallerID: "+551130000000", Ladder: []campaigns.Rung{
		{Channel: campaigns.ChannelWhatsAppTemplate, MaxAttempts: 1, Template: "lembrete", Language: "pt_BR", Params: []string{"name", "phone"}},
	}}
	c.ApplyDefaults()
	c.Pacing.Mode = campaigns.PacingProgressive
	c.Window = campaigns.Window{Start: 0, End: 24*60 - 1}
	if err := h.store.CreateCampaign(ctx, tester, &c); err != nil {
		h.t.Fatal(err)
	}
	b, err := h.store.BeginImport(ctx, tester, c.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	var phones []string
	for i := range n {
		phone := fmt.Sprintf("+55119876520%02d", i)
		phones = append(phones, phone)
		if _, err := b.Add(ctx, campaigns.Contact{Phone: phone, Name: "Ana", Timezone: "UTC", Line: i + 2}); err != nil {
			h.t.Fatal(err)
		}
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		h.t.Fatal(err)
	}
	return c, phones
}

// TestThrottleStormEachTemplateAcceptedOnce: WhatsApp answers the first sends to
// every number with code 130429 (HTTP 400, as Meta's error table gives it). The client backs off and tries again, and
// every message is accepted exactly once, its attempt recorded as sent.
func TestThrottleStormEachTemplateAcceptedOnce(t *testing.T) {
	t.Parallel()
	const n, throttled = 40, 3
	h := newWhatsAppHarness(t)
	c, phones := h.templateCampaign(n)
	for _, p := range phones {
		h.emu.Script(strings.TrimPrefix(p, "+"), emulator.Behaviour{Throttle: throttled, NoRead: true})
	}
	h.setState(c.ID, campaigns.StateRunning)
	list := h.waitContacts(c.ID, 30*time.Second, func(ct campaigns.Contact) bool {
		return ct.Status == campaigns.ContactDone
	})
	type seen struct {
		times  []time.Time
		status []int
		keys   map[string]bool
	}
	byTo := map[string]*seen{}
	for _, r := range h.emu.Requests() {
		if r.Type != "template" {
			continue
		}
		s := byTo[r.To]
		if s == nil {
			s = &seen{keys: map[string]bool{}}
			byTo[r.To] = s
		}
		s.times, s.status = append(s.times, r.Time), append(s.status, r.Status)
		s.keys[r.Key] = true
	}
	for _, p := range phones {
		s := byTo[strings.TrimPrefix(p, "+")]
		if s == nil {
			t.Errorf("%s: no template request", p)
			continue
		}
		if fmt.Sprint(s.status) != "[400 400 400 200]" || len(s.keys) != 1 {
			t.Errorf("%s: answers %v under keys %v, want three 130429 (HTTP 400) then one 200 under one key", p, s.status, s.keys)
			continue
		}
		for k := range s.keys {
			if h.emu.Accepted(k) != 1 {
				t.Errorf("%s: key %s accepted %d times", p, k, h.emu.Accepted(k))
			}
		}
		// Backoff: equal jitter waits at least half of the step (10, 20, 40 ms).
		for i := 1; i < len(s.times); i++ {
			if gap, floor := s.times[i].Sub(s.times[i-1]), (10*time.Millisecond<<(i-1))/2; gap < floor {
				t.Errorf("%s: retry %d came %s after the 130429, want at least %s", p, i, gap, floor)
			}
		}
	}
	ctx := context.Background()
	for _, ct := range list {
		as := h.attempts(ct.ID)
		if len(as) != 1 || as[0].ExternalID == "" || (as[0].Outcome != string(campaigns.OutcomeSent) && as[0].Outcome != "delivered") {
			t.Errorf("%s: attempts %+v", ct.Phone, as)
			continue
		}
		// Each request is one claim of the row (claimed only while in flight):
		// the three refused and the accepted one.
		m, err := h.store.OutboxByKey(ctx, fmt.Sprintf("contact-%d-attempt-0", ct.ID))
		if err != nil || m.State != "sent" || m.Tries != throttled+1 {
			t.Errorf("%s: outbox %+v, %v", ct.Phone, m, err)
		}
	}
}
