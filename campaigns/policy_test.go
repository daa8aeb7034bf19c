package campaigns

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var saoPaulo = policyZone("America/Sao_Paulo")

func policyZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// local is an instant in São Paulo's time (UTC-3 all year): day 7 is a Monday.
func local(day, hour, minute int) time.Time {
	return time.Date(2026, time.December, day, hour, minute, 0, 0, saoPaulo)
}

func testPolicy(requireConsent bool) Policy {
	c := &Campaign{ID: 1, Schedule: Schedule{Timezone: "America/Sao_Paulo"},
		Window: Window{Start: 9 * 60, End: 21 * 60}, RequireConsent: requireConsent}
	return Policy{Campaign: c, Limits: NumberLimits{PerDay: 3, PerWeek: 10}, QuietAfterAbandon: 72 * time.Hour}
}

func ptr(t time.Time) *time.Time { return &t }

func TestPolicyCheck(t *testing.T) {
	mon12 := local(7, 12, 0)
	// Ten calls over the five days before: two a day, never three in 24 h.
	var week []time.Time
	for d := 2; d <= 6; d++ {
		week = append(week, local(d, 10, 0), local(d, 11, 0))
	}
	tests := []struct {
		name    string
		consent bool
		ct      Contact
		f       Facts
		action  ContactAction
		at      time.Time
		reasons []Reason
		next    *time.Time
	}{
		{name: "nothing against a call", action: ActionSIPCall, at: mon12},
		{name: "do not call", f: Facts{DoNotCall: true}, action: ActionSIPCall, at: mon12, reasons: []Reason{ReasonDoNotCall}},
		{name: "do not call refuses a template", f: Facts{DoNotCall: true}, action: ActionTemplate, at: mon12, reasons: []Reason{ReasonDoNotCall}},
		{name: "do not call refuses a text in the service window", f: Facts{DoNotCall: true, LastInbound: mon12.Add(-time.Hour)},
			action: ActionText, at: mon12, reasons: []Reason{ReasonDoNotCall}},
		{name: "opted out", f: Facts{OptedOut: true}, action: ActionWhatsAppCall, at: mon12, reasons: []Reason{ReasonOptedOut}},
		{name: "no consent for a template", consent: true, action: ActionTemplate, at: mon12, reasons: []Reason{ReasonNoConsent}},
		{name: "no consent for a permission request", consent: true, action: ActionPermissionRequest, at: mon12, reasons: []Reason{ReasonNoConsent}},
		{name: "consent is not asked of a SIP call", consent: true, action: ActionSIPCall, at: mon12},
		{name: "consent recorded", consent: true, f: Facts{Consent: local(1, 8, 0)}, action: ActionWhatsAppCall, at: mon12},
		{name: "consent dated later counts from its date", consent: true, f: Facts{Consent: local(7, 15, 30)},
			action: ActionTemplate, at: mon12, reasons: []Reason{ReasonNoConsent}, next: ptr(local(7, 15, 30))},
		{name: "last minute of the window", action: ActionSIPCall, at: local(7, 20, 59)},
		{name: "window closed at its end", action: ActionSIPCall, at: local(7, 21, 0),
			reasons: []Reason{ReasonOutsideWindow}, next: ptr(local(8, 9, 0))},
		{name: "before the window opens", action: ActionWhatsAppCall, at: local(7, 8, 59),
			reasons: []Reason{ReasonOutsideWindow}, next: ptr(local(7, 9, 0))},
		{name: "window opens", action: ActionSIPCall, at: local(7, 9, 0)},
		{name: "window holds for a template", action: ActionTemplate, at: local(7, 22, 0),
			reasons: []Reason{ReasonOutsideWindow}, next: ptr(local(8, 9, 0))},
		{name: "window holds for a permission request", action: ActionPermissionRequest, at: local(7, 6, 0),
			reasons: []Reason{ReasonOutsideWindow}, next: ptr(local(7, 9, 0))},
		{name: "window in the contact's own zone", ct: Contact{Timezone: "America/Manaus"}, action: ActionSIPCall, at: local(7, 9, 30),
			reasons: []Reason{ReasonOutsideWindow}, next: ptr(local(7, 10, 0))},
		{name: "callback outside the window", action: ActionCallback, at: local(7, 23, 0),
			reasons: []Reason{ReasonOutsideWindow}, next: ptr(local(8, 9, 0))},
		{name: "two calls today", f: Facts{NumberAttempts: []time.Time{local(7, 10, 0), local(7, 11, 0)}}, action: ActionSIPCall, at: mon12},
		{name: "third call of the day ends the day", f: Facts{NumberAttempts: []time.Time{local(7, 10, 0), local(7, 10, 30), local(7, 11, 0)}},
			action: ActionSIPCall, at: mon12, reasons: []Reason{ReasonNumberAttemptLimit}, next: ptr(local(8, 10, 0))},
		{name: "a call exactly 24 h before is out of the day", f: Facts{NumberAttempts: []time.Time{local(6, 12, 0), local(7, 10, 0), local(7, 11, 0)}},
			action: ActionSIPCall, at: mon12},
		{name: "limits count WhatsApp calls and callbacks alike", f: Facts{NumberAttempts: []time.Time{local(7, 10, 0), local(7, 10, 30), local(7, 11, 0)}},
			action: ActionCallback, at: mon12, reasons: []Reason{ReasonNumberAttemptLimit}, next: ptr(local(8, 10, 0))},
		{name: "limits do not bound messages", f: Facts{NumberAttempts: []time.Time{local(7, 10, 0), local(7, 10, 30), local(7, 11, 0)}},
			action: ActionTemplate, at: mon12},
		{name: "ten calls in seven days", f: Facts{NumberAttempts: week}, action: ActionSIPCall, at: mon12,
			reasons: []Reason{ReasonNumberAttemptLimit}, next: ptr(local(9, 10, 0))},
		{name: "nine calls in seven days", f: Facts{NumberAttempts: week[1:]}, action: ActionSIPCall, at: mon12},
		{name: "limit lifts after the window closes", f: Facts{NumberAttempts: []time.Time{local(6, 22, 30), local(7, 10, 0), local(7, 11, 0)}},
			action: ActionSIPCall, at: local(7, 20, 0), reasons: []Reason{ReasonNumberAttemptLimit}, next: ptr(local(8, 9, 0))},
		{name: "abandoned: quiet for 72 h", f: Facts{LastAbandon: local(7, 10, 0)}, action: ActionSIPCall, at: mon12,
			reasons: []Reason{ReasonAbandonQuietPeriod}, next: ptr(local(10, 10, 0))},
		{name: "abandoned 72 h ago", f: Facts{LastAbandon: local(4, 12, 0)}, action: ActionWhatsAppCall, at: mon12},
		{name: "abandoned, an agent reserved", f: Facts{LastAbandon: local(7, 10, 0), AgentReserved: true}, action: ActionCallback, at: mon12},
		{name: "abandoned, a template is no call", f: Facts{LastAbandon: local(7, 10, 0)}, action: ActionTemplate, at: mon12},
		// A call refused for want of permission skips the rung (no next instant:
		// the template after it reaches the person now), while another request
		// is not yet allowed.
		{name: "permission denied, asked an hour ago: the rung skipped", f: Facts{Permission: PermissionDenied, PermissionRequests: []time.Time{local(7, 11, 0)}},
			action: ActionWhatsAppCall, at: mon12, reasons: []Reason{ReasonNoCallPermission}},
		{name: "permission asked, no answer yet: the rung skipped", f: Facts{Permission: PermissionRequested, PermissionRequests: []time.Time{local(7, 11, 0)}},
			action: ActionWhatsAppCall, at: mon12, reasons: []Reason{ReasonNoCallPermission}},
		{name: "asked twice in 7 days: the next request when the older leaves them", f: Facts{Permission: PermissionRequested, PermissionRequests: []time.Time{local(2, 10, 0), local(6, 10, 0)}},
			action: ActionPermissionRequest, at: mon12, reasons: []Reason{ReasonNoCallPermission}, next: ptr(local(9, 10, 0))},
		{name: "Meta's bound later than the count", f: Facts{Permission: PermissionDenied, PermissionRequests: []time.Time{local(7, 11, 0)}, PermissionNextRequest: local(9, 15, 0)},
			action: ActionPermissionRequest, at: mon12, reasons: []Reason{ReasonNoCallPermission}, next: ptr(local(9, 15, 0))},
		{name: "denied, a retry due: the channel reads Meta's status", f: Facts{Permission: PermissionDenied, PermissionRequests: []time.Time{local(5, 10, 0)}},
			action: ActionWhatsAppCall, at: mon12},
		{name: "permission request within Meta's limits", f: Facts{PermissionRequests: []time.Time{local(5, 10, 0)}}, action: ActionPermissionRequest, at: mon12},
		{name: "a second permission request in 24 h", f: Facts{PermissionRequests: []time.Time{local(7, 11, 0)}}, action: ActionPermissionRequest, at: mon12,
			reasons: []Reason{ReasonNoCallPermission}, next: ptr(local(8, 11, 0))},
		{name: "permission lapsed: the call asks again", f: Facts{Permission: PermissionGranted, PermissionUntil: local(7, 11, 0)}, action: ActionWhatsAppCall, at: mon12},
		{name: "permission granted until later", f: Facts{Permission: PermissionGranted, PermissionUntil: local(8, 11, 0)}, action: ActionWhatsAppCall, at: mon12},
		{name: "permission unknown: the call asks", f: Facts{Permission: PermissionUnknown}, action: ActionWhatsAppCall, at: mon12},
		{name: "permission is not a SIP call's", f: Facts{Permission: PermissionDenied}, action: ActionSIPCall, at: mon12},
		{name: "text with no message from the person", action: ActionText, at: mon12, reasons: []Reason{ReasonOutsideServiceWindow}},
		{name: "text inside the service window, at night", f: Facts{LastInbound: local(7, 0, 30)}, action: ActionText, at: local(7, 23, 0)},
		{name: "text 24 h after the last message", f: Facts{LastInbound: local(6, 12, 0)}, action: ActionText, at: mon12, reasons: []Reason{ReasonOutsideServiceWindow}},
		{name: "every reason at once, in order", consent: true,
			f: Facts{DoNotCall: true, OptedOut: true, Permission: PermissionDenied, PermissionRequests: []time.Time{local(7, 21, 0)}, LastAbandon: local(7, 20, 0),
				NumberAttempts: []time.Time{local(7, 20, 0), local(7, 20, 10), local(7, 20, 20)}},
			action: ActionWhatsAppCall, at: local(7, 22, 0),
			reasons: []Reason{ReasonDoNotCall, ReasonOptedOut, ReasonNoConsent, ReasonOutsideWindow, ReasonNumberAttemptLimit, ReasonAbandonQuietPeriod, ReasonNoCallPermission}},
		{name: "window and quiet period: the later lift", f: Facts{LastAbandon: local(5, 10, 0)}, action: ActionSIPCall, at: local(7, 22, 0),
			reasons: []Reason{ReasonOutsideWindow, ReasonAbandonQuietPeriod}, next: ptr(local(8, 10, 0))},
		{name: "quiet period ends at night: the window after", f: Facts{LastAbandon: local(4, 22, 30)}, action: ActionSIPCall, at: local(7, 12, 0),
			reasons: []Reason{ReasonAbandonQuietPeriod}, next: ptr(local(8, 9, 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy(tt.consent)
			d := p.Check(tt.ct, tt.f, tt.action, tt.at)
			want := tt.reasons
			if want == nil {
				want = []Reason{}
			}
			if d.Allowed != (len(want) == 0) || !slices.Equal(d.Reasons, want) {
				t.Fatalf("allowed %v reasons %v, want %v", d.Allowed, d.Reasons, want)
			}
			switch {
			case tt.next == nil && d.NextAllowedAt != nil:
				t.Fatalf("next allowed at %v, want none", d.NextAllowedAt)
			case tt.next != nil && (d.NextAllowedAt == nil || !d.NextAllowedAt.Equal(*tt.next)):
				t.Fatalf("next allowed at %v, want %v", d.NextAllowedAt, tt.next)
			}
			if len(d.Zones) == 0 {
				t.Fatal("no zones")
			}
			if tt.next != nil {
				if d2 := p.Check(tt.ct, tt.f, tt.action, *tt.next); !d2.Allowed {
					t.Fatalf("not allowed at its next allowed instant: %v", d2.Reasons)
				}
			}
		})
	}
}

// TestPolicyNextAllowedIsFirst checks on random facts and instants that the next
// allowed instant is allowed and the instant just before it is not.
func TestPolicyNextAllowedIsFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	base := local(7, 0, 0)
	randTime := func(span time.Duration) time.Time {
		return base.Add(-span + time.Duration(rng.Int64N(int64(2*span))))
	}
	p := testPolicy(false)
	found := 0
	for i := 0; i < 2000; i++ {
		at := randTime(48 * time.Hour)
		var f Facts
		for n := rng.IntN(14); n > 0; n-- {
			f.NumberAttempts = append(f.NumberAttempts, at.Add(-time.Duration(rng.Int64N(int64(7*24*time.Hour)))))
		}
		if rng.IntN(3) == 0 {
			f.LastAbandon = at.Add(-time.Duration(rng.Int64N(int64(96 * time.Hour))))
		}
		action := []ContactAction{ActionSIPCall, ActionWhatsAppCall, ActionCallback, ActionTemplate}[rng.IntN(4)]
		d := p.Check(Contact{}, f, action, at)
		if d.Allowed || d.NextAllowedAt == nil {
			continue
		}
		found++
		next := *d.NextAllowedAt
		if !next.After(at) {
			t.Fatalf("case %d: next allowed %v not after %v", i, next, at)
		}
		if d2 := p.Check(Contact{}, f, action, next); !d2.Allowed {
			t.Fatalf("case %d: %s at %v: refused at its next allowed instant %v: %v", i, action, at, next, d2.Reasons)
		}
		if before := next.Add(-time.Millisecond); before.After(at) {
			if d2 := p.Check(Contact{}, f, action, before); d2.Allowed {
				t.Fatalf("case %d: %s at %v: allowed at %v, before its next allowed instant %v", i, action, at, before, next)
			}
		}
	}
	if found < 200 {
		t.Fatalf("only %d refusals with a next instant: the cases test too little", found)
	}
}
