package campaigns

import (
	"errors"
	"testing"
	"time"
)

// TestInboundCallClaimsAndAMissedCallIsCalledBackFirst: a person's call to the
// business claims the contact whether its journey goes on or ended, not while an
// attempt is under way nor on a do-not-call list; a call nobody took puts the
// contact first in line on the first rung with its attempts all left.
func TestInboundCallClaimsAndAMissedCallIsCalledBackFirst(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ladder := DefaultLadder()
	ev := Event{Kind: EventInboundCall}
	for _, tc := range []struct {
		from  ContactStatus
		claim bool
	}{
		{ContactPending, true}, {ContactDone, true}, {ContactExhausted, true}, {ContactInvalid, true},
		{ContactInProgress, false}, {ContactDoNotCall, false},
	} {
		t.Run(string(tc.from), func(t *testing.T) {
			pos := Position{Status: tc.from, Rung: 2, Attempts: 1, NextAt: now.Add(time.Hour)}
			got, err := Apply(ladder, Contact{ID: 1}, pos, ev, now)
			switch {
			case tc.claim && (err != nil || got.Status != ContactInProgress || got.Rung != 2):
				t.Errorf("claim: %+v, %v", got, err)
			case !tc.claim && (!errors.Is(err, ErrNoTransition) || got != pos):
				t.Errorf("refusal: %+v, %v", got, err)
			}
		})
	}
	pos := Position{Status: ContactInProgress, Rung: 2, Attempts: 3, NextAt: now}
	got, err := Apply(ladder, Contact{ID: 1}, pos, OutcomeEvent(OutcomeInboundMissed), now)
	if err != nil {
		t.Fatal(err)
	}
	want := Position{Status: ContactPending, Rung: 0, Attempts: 0, NextAt: time.UnixMilli(0).UTC(), CallbackAt: now}
	if got != want {
		t.Errorf("missed inbound call: %+v, want %+v", got, want)
	}
}

// TestGateRefusesCallsToAPersonOnAnInboundCall: while the person's own call to
// the business is under way, no call (SIP, WhatsApp, callback) rings them; the
// refusal lifts at the recheck instant, and messages are not refused for it.
func TestGateRefusesCallsToAPersonOnAnInboundCall(t *testing.T) {
	at := time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
	c := Campaign{Name: "c"}
	c.ApplyDefaults()
	c.Window = Window{Start: 0, End: 24*60 - 1}
	p := Policy{Campaign: &c}
	ct := Contact{ID: 1, Phone: "+5511987650001", Timezone: "UTC"}
	f := Facts{OnInboundCallUntil: at.Add(InboundRecheck), Permission: PermissionGranted, LastInbound: at}
	for _, tc := range []struct {
		action  ContactAction
		refused bool
	}{
		{ActionSIPCall, true}, {ActionWhatsAppCall, true}, {ActionCallback, true},
		{ActionTemplate, false}, {ActionText, false},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			d := p.Check(ct, f, tc.action, at)
			if d.Has(ReasonOnInboundCall) != tc.refused {
				t.Fatalf("decision %+v", d)
			}
			if tc.refused && (d.NextAllowedAt == nil || !d.NextAllowedAt.Equal(at.Add(InboundRecheck))) {
				t.Errorf("next allowed %v, want the recheck instant", d.NextAllowedAt)
			}
			if later := p.Check(ct, f, tc.action, at.Add(InboundRecheck)); !later.Allowed {
				t.Errorf("at the recheck instant: %+v", later)
			}
		})
	}
}
