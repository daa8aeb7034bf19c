package demo

import (
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// TestFailoverReadsTheCutFromTheRecords: the calls under way at the cut are the
// caught ones, whatever they were recorded as; each one's time is to its own
// first WhatsApp call after the cut, and the first WhatsApp call of the run may
// be another contact's.
func TestFailoverReadsTheCutFromTheRecords(t *testing.T) {
	cut := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return cut.Add(time.Duration(s * float64(time.Second))) }
	ptr := func(t time.Time) *time.Time { return &t }
	attempt := func(ch campaigns.Channel, outcome string, created, ended float64) storage.Attempt {
		a := storage.Attempt{Channel: ch, Outcome: outcome, CreatedAt: at(created)}
		if ended != 0 {
			a.EndAt = ptr(at(ended))
		}
		return a
	}
	connected := attempt(campaigns.ChannelSIP, "connected", -20, 3)
	connected.ID, connected.ConnectAt, connected.HangupBy = 40, ptr(at(-15)), "trunk"
	back := attempt(campaigns.ChannelWhatsAppCall, "resumed", 2.5, 40)
	back.ResumedFrom, back.AnswerAt = 40, ptr(at(4))
	hungUp := attempt(campaigns.ChannelSIP, "connected", -10, 0.5)
	hungUp.ConnectAt, hungUp.HangupBy = ptr(at(-8)), "agent"
	byContact := map[int64][]storage.Attempt{
		// Ringing at the cut, then on WhatsApp 1.2 s after it.
		1: {attempt(campaigns.ChannelSIP, "trunk_down", -3, 1), attempt(campaigns.ChannelWhatsAppCall, "connected", 1.2, 30)},
		// Over before the cut: not caught; its WhatsApp call is the run's first.
		2: {attempt(campaigns.ChannelSIP, "busy", -9, -5), attempt(campaigns.ChannelWhatsAppCall, "no_answer", 0.8, 20)},
		// Caught, recorded no_answer (dishonest), never called on WhatsApp.
		3: {attempt(campaigns.ChannelSIP, "no_answer", -1, 16)},
		// Connected at the cut, resumed on WhatsApp 2.5 s after it.
		4: {connected, back},
		// Connected at the cut, hung up by the agent before the death was found:
		// not called back, for a stated reason.
		6: {hungUp},
		// Dialled after the cut: not caught; a channel_down attempt was never placed.
		5: {attempt(campaigns.ChannelSIP, "channel_down", 2, 2), attempt(campaigns.ChannelWhatsAppCall, "channel_down", 0.1, 0.1)},
	}
	f := failover(cut, byContact)
	if f.FirstWhatsAppCallS == nil || *f.FirstWhatsAppCallS != 0.8 {
		t.Errorf("first WhatsApp call %v s after the cut, want 0.8 (contact 2's; contact 5's was never placed)", f.FirstWhatsAppCallS)
	}
	type want struct {
		outcome   string
		connected bool
		toWA      float64 // 0: none
	}
	wants := map[int64]want{1: {"trunk_down", false, 1.2}, 3: {"no_answer", false, 0}, 4: {"connected", true, 2.5}, 6: {"connected", true, 0}}
	if len(f.Caught) != len(wants) {
		t.Fatalf("caught %+v, want contacts 1, 3, 4 and 6", f.Caught)
	}
	for _, c := range f.Caught {
		resumed, why := c.ContactID == 4, ""
		if c.ContactID == 6 {
			why = hungUpByUs
		}
		if c.Resumed != resumed || c.NotCalledWhy != why {
			t.Errorf("contact %d: resumed %t (%q), not called because %q; want %t, %q", c.ContactID, c.Resumed, c.ResumeOutcome, c.NotCalledWhy, resumed, why)
		}
	}
	for _, c := range f.Caught {
		w, ok := wants[c.ContactID]
		if !ok {
			t.Errorf("contact %d caught, want not", c.ContactID)
			continue
		}
		got := 0.0
		if c.ToWhatsAppS != nil {
			got = *c.ToWhatsAppS
		}
		if c.SIPOutcome != w.outcome || c.Connected != w.connected || got != w.toWA {
			t.Errorf("contact %d: %+v (to WhatsApp %v), want %+v", c.ContactID, c, got, w)
		}
	}
	if len(f.CaughtCalledS) != 2 || f.CaughtCalledS[0] != 1.2 || f.CaughtCalledS[1] != 2.5 {
		t.Errorf("caught contacts' times to WhatsApp %v, want [1.2 2.5]", f.CaughtCalledS)
	}
}
