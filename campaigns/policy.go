package campaigns

import (
	"slices"
	"strings"
	"time"
)

// ContactAction is an outbound action on a contact that the policy gate rules on.
type ContactAction string

// The actions the gate rules on. The strings are the API's.
const (
	ActionSIPCall           ContactAction = "sip_call"
	ActionWhatsAppCall      ContactAction = "whatsapp_call"
	ActionPermissionRequest ContactAction = "whatsapp_permission_request"
	ActionTemplate          ContactAction = "whatsapp_template"
	ActionText              ContactAction = "whatsapp_text"
	ActionCallback          ContactAction = "callback"
)

// ContactActions lists every action the gate rules on.
var ContactActions = []ContactAction{ActionSIPCall, ActionWhatsAppCall, ActionPermissionRequest, ActionTemplate, ActionText, ActionCallback}

// Valid reports whether a is an action the gate knows.
func (a ContactAction) Valid() bool { return slices.Contains(ContactActions, a) }

// isCall reports whether the action rings the person.
func (a ContactAction) isCall() bool {
	return a == ActionSIPCall || a == ActionWhatsAppCall || a == ActionCallback
}

// ActionFor is the gate's action for an attempt on a ladder channel.
func ActionFor(ch Channel) ContactAction {
	switch ch {
	case ChannelWhatsAppCall:
		return ActionWhatsAppCall
	case ChannelWhatsAppTemplate:
		return ActionTemplate
	}
	return ActionSIPCall
}

// Reason is why the gate refuses an action: a stable code of the API and the UI.
type Reason string

// Reasons for a refusal.
const (
	ReasonDoNotCall            Reason = "do_not_call"
	ReasonOptedOut             Reason = "opted_out"
	ReasonNoConsent            Reason = "no_consent"
	ReasonOutsideWindow        Reason = Reason(ClosedOutsideWindow)
	ReasonHoliday              Reason = Reason(ClosedHoliday)
	ReasonNumberAttemptLimit   Reason = "number_attempt_limit"
	ReasonAbandonQuietPeriod   Reason = "abandon_quiet_period"
	ReasonNoCallPermission     Reason = "no_call_permission"
	ReasonOutsideServiceWindow Reason = "outside_service_window"
	// ReasonOnInboundCall: the person is on a call they made to the business
	// (waiting in the inbound queue or talking to an agent).
	ReasonOnInboundCall Reason = "on_inbound_call"
)

// Reasons lists every reason, in the order a decision gives them.
var Reasons = []Reason{ReasonDoNotCall, ReasonOptedOut, ReasonNoConsent, ReasonOutsideWindow, ReasonHoliday,
	ReasonNumberAttemptLimit, ReasonAbandonQuietPeriod, ReasonNoCallPermission, ReasonOutsideServiceWindow,
	ReasonOnInboundCall}

// Permission is what WhatsApp last said of the business calling the person.
type Permission string

// Call permission states.
const (
	PermissionUnknown   Permission = "unknown"
	PermissionRequested Permission = "requested"
	PermissionGranted   Permission = "granted"
	PermissionDenied    Permission = "denied"
)

// Facts is what the gate needs to know of a contact beyond the contact itself,
// read from storage just before the action.
type Facts struct {
	// DoNotCall: the number is on the global list or the campaign's.
	DoNotCall bool
	// OptedOut: the person asked to hear no more (a reply, a disposition, the API).
	OptedOut bool
	// Consent is when the person consented to WhatsApp contact; zero: no record.
	Consent time.Time
	// NumberAttempts are the start times of the calls made to the number in the last
	// seven days before the instant checked, on every campaign and channel.
	NumberAttempts []time.Time
	// LastAbandon is when the number was last abandoned (answered, no agent); zero: never.
	LastAbandon time.Time
	// AgentReserved: an agent waits for this very call (a preview dial, a callback
	// with its agent), so an abandon cannot happen.
	AgentReserved bool
	// Permission is the WhatsApp call permission, and PermissionUntil its expiry
	// (zero: none).
	Permission      Permission
	PermissionUntil time.Time
	// PermissionRequests are when call permission requests were sent to the
	// person in the 7 days before the instant checked, since their last
	// connected WhatsApp call (which resets Meta's limits).
	PermissionRequests []time.Time
	// PermissionNextRequest is when Meta last said the next permission request
	// may be sent (its call_permissions answer); zero: Meta set no bound.
	PermissionNextRequest time.Time
	// LastInbound is when the person last wrote on WhatsApp (zero: never), which
	// opens WhatsApp's 24 h service window for free-form text.
	LastInbound time.Time
	// OnInboundCallUntil is, while the person's own call to the business is
	// under way (an inbound attempt on the number that has not ended), the
	// instant read plus InboundRecheck: nobody knows when the call ends, so a
	// refusal lifts then to be asked again. Zero: no such call.
	OnInboundCallUntil time.Time
}

// NumberLimits bounds the calls one number gets across every campaign.
type NumberLimits struct {
	// PerDay calls in any 24 h, PerWeek in any 7 days; 0 means no limit.
	PerDay  int `json:"per_day"`
	PerWeek int `json:"per_week"`
}

// Policy rules on outbound actions for one campaign's contacts.
type Policy struct {
	Campaign *Campaign
	// Limits are the engine's per-number attempt limits.
	Limits NumberLimits
	// QuietAfterAbandon is how long an abandoned person is not called again
	// unless an agent is reserved for the call.
	QuietAfterAbandon time.Duration
}

// DefaultQuietAfterAbandon is Ofcom's 72 hours.
const DefaultQuietAfterAbandon = 72 * time.Hour

// InboundRecheck is how soon an action refused because the person is on an
// inbound call is asked about again: the call's end is not known in advance.
const InboundRecheck = 30 * time.Second

// ServiceWindow is how long after a person's last message WhatsApp accepts free text.
const ServiceWindow = 24 * time.Hour

// Decision is the gate's answer.
type Decision struct {
	Allowed bool     `json:"allowed"`
	Reasons []Reason `json:"reasons"`
	// NextAllowedAt is the first instant the action would be allowed, given what is
	// known now; nil when it is allowed already, or when no passing of time allows
	// it (do-not-call, opt-out, …).
	NextAllowedAt *time.Time `json:"next_allowed_at"`
	// Zones are the time zones the person may be in, all of which the calling
	// window must hold in.
	Zones []string `json:"zones"`
}

// maxLookahead bounds the search for the next allowed instant.
const maxLookahead = 400 * 24 * time.Hour

// Check rules on action for ct at at. It refuses with every reason that applies and
// gives the first later instant when none does.
func (p Policy) Check(ct Contact, f Facts, action ContactAction, at time.Time) Decision {
	zones := p.Campaign.ContactZones(ct)
	d := Decision{Zones: make([]string, len(zones))}
	for i, z := range zones {
		d.Zones[i] = z.String()
	}
	reasons, next, final := p.refusals(zones, f, action, at)
	if len(reasons) == 0 {
		d.Allowed, d.Reasons = true, []Reason{}
		return d
	}
	d.Reasons = reasons
	if final {
		return d
	}
	// Each refusal says when it lifts; the others may still hold then.
	for t := next; !t.IsZero() && t.Sub(at) <= maxLookahead; {
		rs, n, fin := p.refusals(zones, f, action, t)
		if len(rs) == 0 {
			d.NextAllowedAt = &t
			return d
		}
		if fin || !n.After(t) {
			return d
		}
		t = n
	}
	return d
}

// refusals lists the reasons that refuse action at at, the latest instant at which
// one of them lifts, and whether one of them never lifts by itself.
func (p Policy) refusals(zones []*time.Location, f Facts, action ContactAction, at time.Time) (reasons []Reason, next time.Time, final bool) {
	refuse := func(r Reason, lifts time.Time) {
		reasons = append(reasons, r)
		if lifts.IsZero() {
			final = true
		} else if lifts.After(next) {
			next = lifts
		}
	}
	c := p.Campaign
	if f.DoNotCall {
		refuse(ReasonDoNotCall, time.Time{})
	}
	if f.OptedOut {
		refuse(ReasonOptedOut, time.Time{})
	}
	whatsApp := action == ActionWhatsAppCall || action == ActionPermissionRequest || action == ActionTemplate || action == ActionText
	if whatsApp && c.RequireConsent {
		// Consent dated after the instant checked was not yet given then.
		switch {
		case f.Consent.IsZero():
			refuse(ReasonNoConsent, time.Time{})
		case f.Consent.After(at):
			refuse(ReasonNoConsent, f.Consent)
		}
	}
	if action != ActionText {
		if closed, open := c.Hours(at, zones); closed != Open {
			refuse(Reason(closed), open)
		}
	}
	if action.isCall() {
		if lifts, over := overLimit(p.Limits, f.NumberAttempts, at); over {
			refuse(ReasonNumberAttemptLimit, lifts)
		}
		if quiet := p.quiet(); !f.AgentReserved && quiet > 0 && !f.LastAbandon.IsZero() && at.Before(f.LastAbandon.Add(quiet)) {
			refuse(ReasonAbandonQuietPeriod, f.LastAbandon.Add(quiet))
		}
	}
	if action.isCall() && at.Before(f.OnInboundCallUntil) {
		// Never ring a person who is on the line to us already: they would
		// hear their own phone ring while they wait for an agent.
		refuse(ReasonOnInboundCall, f.OnInboundCallUntil)
	}
	switch {
	case action == ActionWhatsAppCall && (f.Permission == PermissionDenied || f.Permission == PermissionRequested):
		// A refusal or a pending request skips the rung while no other request
		// may be sent: the person is not kept waiting for days on a call rung
		// when the template after it reaches them now (a grant, when it comes,
		// queues them for a WhatsApp call). Once another request is allowed the
		// call goes ahead: the person may have granted it meanwhile (in the
		// business profile, by calling in), which the channel reads from Meta
		// before asking again. A temporary grant that lapsed is as good as
		// unknown: the call is tried, and WhatsApp's refusal of it is what
		// sends a new request.
		if next := f.nextPermissionRequest(at); next.After(at) {
			refuse(ReasonNoCallPermission, time.Time{})
		}
	case action == ActionPermissionRequest:
		if next := f.nextPermissionRequest(at); next.After(at) {
			refuse(ReasonNoCallPermission, next)
		}
	}
	if action == ActionText {
		if f.LastInbound.IsZero() || !at.Before(f.LastInbound.Add(ServiceWindow)) {
			refuse(ReasonOutsideServiceWindow, time.Time{})
		}
	}
	return reasons, next, final
}

// PermissionRequestLimits are Meta's limits on call permission requests from a
// business to one person (user-call-permissions, "Limits"): one in 24 hours and
// two in 7 days, both reset by a connected call between them.
var PermissionRequestLimits = NumberLimits{PerDay: 1, PerWeek: 2}

// nextPermissionRequest is the first instant from at when a call permission
// request is within Meta's limits, as counted here and as Meta last said.
func (f Facts) nextPermissionRequest(at time.Time) time.Time {
	next := at
	if lifts, over := overLimit(PermissionRequestLimits, f.PermissionRequests, at); over {
		next = lifts
	}
	if f.PermissionNextRequest.After(next) {
		next = f.PermissionNextRequest
	}
	return next
}

func (p Policy) quiet() time.Duration {
	if p.QuietAfterAbandon == 0 {
		return DefaultQuietAfterAbandon
	}
	return p.QuietAfterAbandon
}

// overLimit reports whether another action at at, after the ones at times,
// would break limits and, if so, when it no longer would.
func overLimit(limits NumberLimits, attempts []time.Time, at time.Time) (time.Time, bool) {
	var lifts time.Time
	over := false
	for _, l := range []struct {
		max    int
		period time.Duration
	}{{limits.PerDay, 24 * time.Hour}, {limits.PerWeek, 7 * 24 * time.Hour}} {
		if l.max <= 0 {
			continue
		}
		var in []time.Time
		for _, t := range attempts {
			if t.After(at.Add(-l.period)) && !t.After(at) {
				in = append(in, t)
			}
		}
		if len(in) < l.max {
			continue
		}
		slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
		// The oldest attempts leave the period one by one; one place must free up.
		if t := in[len(in)-l.max].Add(l.period); t.After(lifts) {
			lifts = t
		}
		over = true
	}
	return lifts, over
}

// Has reports whether the decision refuses for r.
func (d Decision) Has(r Reason) bool { return slices.Contains(d.Reasons, r) }

// Final reports whether a refusal does not lift by the passing of time alone
// (do-not-call, opt-out, no consent…).
func (d Decision) Final() bool { return !d.Allowed && d.NextAllowedAt == nil }

// RefusedError is the error of an action the policy gate refused: it carries the
// decision, so an API can answer with its reasons and next allowed instant.
type RefusedError struct {
	Action   ContactAction
	Decision Decision
}

func (e *RefusedError) Error() string {
	s := make([]string, len(e.Decision.Reasons))
	for i, r := range e.Decision.Reasons {
		s[i] = string(r)
	}
	msg := string(e.Action) + " refused by policy: " + strings.Join(s, ", ")
	if e.Decision.NextAllowedAt != nil {
		msg += "; allowed from " + e.Decision.NextAllowedAt.UTC().Format(time.RFC3339)
	}
	return msg
}
