package whatsapp

import (
	"cmp"
	"slices"
	"time"
)

// CallPhase is where a call is in its life. Phases only move forward.
type CallPhase int

// Call phases, in order.
const (
	PhaseDialing  CallPhase = iota // connect sent, nothing heard yet
	PhaseRinging                   // the user's phone rings
	PhaseAccepted                  // the user picked up
	PhaseRejected                  // the user declined
	PhaseEnded                     // terminated; Outcome is final
)

var phaseNames = [...]string{"dialing", "ringing", "accepted", "rejected", "ended"}

// String returns the phase name.
func (p CallPhase) String() string {
	if p >= 0 && int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "unknown"
}

// rank orders phases for the state machine: accepted and rejected are alternatives of
// the same rank.
func (p CallPhase) rank() int {
	switch p {
	case PhaseDialing:
		return 0
	case PhaseRinging:
		return 1
	case PhaseAccepted, PhaseRejected:
		return 2
	}
	return 3
}

// CallOutcome is how a call ended, as the engine records it on the attempt.
type CallOutcome string

// Call outcomes.
const (
	OutcomeNone      CallOutcome = ""
	OutcomeAnswered  CallOutcome = "answered"
	OutcomeRejected  CallOutcome = "rejected"
	OutcomeNoAnswer  CallOutcome = "no_answer"
	OutcomeFailed    CallOutcome = "failed"
	OutcomeCancelled CallOutcome = "cancelled"
)

// CallState is one call's state machine. It applies the call's webhook events
// idempotently and in event-time order: an event that would move the call backwards
// (a RINGING after ACCEPTED, anything after terminate) or that was already applied is
// ignored, so duplicated and reordered webhooks give one outcome. It is not safe for
// concurrent use; [Call] guards its own.
type CallState struct {
	ID        string
	Phase     CallPhase
	Outcome   CallOutcome
	AnswerSDP string
	// RingingAt, AcceptedAt and EndedAt are event times of the transitions.
	RingingAt, AcceptedAt, EndedAt time.Time
	// Duration is Meta's duration of a connected call (from terminate).
	Duration time.Duration
	// Errors are from a FAILED terminate.
	Errors []WebhookError
}

// Transition reports a change made by [CallState.Apply].
type Transition struct {
	From, To CallPhase
	// Outcome is set when the call ended with this transition.
	Outcome CallOutcome
	// Answer is true when the event delivered the SDP answer.
	Answer bool
}

// Apply applies one event of this call and reports whether anything changed.
func (s *CallState) Apply(ev Event) (Transition, bool) {
	if ev.Call == nil || (s.ID != "" && ev.Call.ID != s.ID) {
		return Transition{}, false
	}
	if s.ID == "" {
		s.ID = ev.Call.ID
	}
	tr := Transition{From: s.Phase, To: s.Phase}
	if s.Phase == PhaseEnded {
		return tr, false // terminal: a second terminate or a late status changes nothing
	}
	switch ev.Type {
	case EventCallConnect:
		if ev.Call.SDPType != "answer" || ev.Call.SDP == "" || s.AnswerSDP != "" {
			return tr, false
		}
		// business-initiated-calls: Meta sends the person's SDP answer when they
		// pick up, and the ACCEPTED status only later, "primarily for call event
		// auditing": the connect is the answer.
		s.AnswerSDP = ev.Call.SDP
		tr.Answer = true
		s.accept(&tr, ev.Time)
		return tr, true
	case EventCallStatus:
		var to CallPhase
		switch ev.Call.Status {
		case "RINGING":
			to = PhaseRinging
		case "ACCEPTED":
			to = PhaseAccepted
		case "REJECTED":
			to = PhaseRejected
		default:
			return tr, false
		}
		if to.rank() <= s.Phase.rank() {
			return tr, false
		}
		s.Phase = to
		switch to {
		case PhaseRinging:
			s.RingingAt = ev.Time
		case PhaseAccepted:
			s.AcceptedAt = ev.Time
		}
		tr.To = to
		return tr, true
	case EventCallTerminate:
		s.Duration = ev.Call.Duration
		s.Errors = ev.Call.Errors
		s.EndedAt = ev.Time
		switch {
		case s.Phase == PhaseAccepted || s.Duration > 0:
			// A positive duration means the call was connected even if ACCEPTED
			// arrives after the terminate (reordered).
			s.Outcome = OutcomeAnswered
		case s.Phase == PhaseRejected:
			s.Outcome = OutcomeRejected
		case ev.Call.Status == "FAILED" && len(ev.Call.Errors) > 0:
			s.Outcome = OutcomeFailed
		default:
			s.Outcome = OutcomeNoAnswer
		}
		s.Phase = PhaseEnded
		tr.To, tr.Outcome = PhaseEnded, s.Outcome
		return tr, true
	}
	return tr, false
}

// MediaStarted records the first media heard from the person at at: whichever of
// it and the connect webhook comes first answers the call.
func (s *CallState) MediaStarted(at time.Time) (Transition, bool) {
	tr := Transition{From: s.Phase, To: s.Phase}
	if s.Phase.rank() >= PhaseAccepted.rank() {
		return tr, false
	}
	s.accept(&tr, at)
	return tr, true
}

// accept moves a call not yet answered, rejected or ended to accepted at at.
func (s *CallState) accept(tr *Transition, at time.Time) {
	if s.Phase.rank() >= PhaseAccepted.rank() {
		return
	}
	s.Phase, s.AcceptedAt, tr.To = PhaseAccepted, at, PhaseAccepted
}

// End ends the call locally (the business hung up or gave up): an accepted call's
// outcome is answered, a rejected one's rejected, any other's unanswered.
func (s *CallState) End(at time.Time, unanswered CallOutcome) (Transition, bool) {
	tr := Transition{From: s.Phase, To: s.Phase}
	if s.Phase == PhaseEnded {
		return tr, false
	}
	switch s.Phase {
	case PhaseAccepted:
		s.Outcome = OutcomeAnswered
		if !s.AcceptedAt.IsZero() && at.After(s.AcceptedAt) {
			s.Duration = at.Sub(s.AcceptedAt)
		}
	case PhaseRejected:
		s.Outcome = OutcomeRejected
	default:
		s.Outcome = unanswered
	}
	s.EndedAt = at
	s.Phase = PhaseEnded
	tr.To, tr.Outcome = PhaseEnded, s.Outcome
	return tr, true
}

// callEventRank orders events of the same second: Meta's timestamps are whole seconds,
// so a RINGING and an ACCEPTED often share one.
func callEventRank(ev Event) int {
	switch ev.Type {
	case EventCallConnect:
		return 0
	case EventCallStatus:
		switch ev.Call.Status {
		case "RINGING":
			return 1
		case "ACCEPTED", "REJECTED":
			return 2
		}
		return 2
	case EventCallTerminate:
		return 3
	}
	return 4
}

// SortEvents sorts events in event-time order, breaking ties within a second by the
// natural order of a call (connect, ringing, accepted/rejected, terminate). It is
// stable, so events of equal rank keep their arrival order.
func SortEvents(events []Event) {
	slices.SortStableFunc(events, func(a, b Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(callEventRank(a), callEventRank(b))
	})
}

// CallTracker keeps a [CallState] per call ID and applies events to them; the engine
// (or a test) feeds it every call event from the sink. It is not safe for concurrent use.
type CallTracker struct {
	calls map[string]*CallState
}

// NewCallTracker returns an empty tracker.
func NewCallTracker() *CallTracker { return &CallTracker{calls: make(map[string]*CallState)} }

// Apply sorts events (see [SortEvents]) and applies the call events among them,
// returning the transitions that changed something, keyed by call ID in order.
func (t *CallTracker) Apply(events []Event) map[string][]Transition {
	sorted := append([]Event(nil), events...)
	SortEvents(sorted)
	out := make(map[string][]Transition)
	for _, ev := range sorted {
		if ev.Call == nil {
			continue
		}
		s := t.calls[ev.Call.ID]
		if s == nil {
			s = &CallState{ID: ev.Call.ID}
			t.calls[ev.Call.ID] = s
		}
		if tr, ok := s.Apply(ev); ok {
			out[ev.Call.ID] = append(out[ev.Call.ID], tr)
		}
	}
	return out
}

// State returns the state of a call, or nil.
func (t *CallTracker) State(callID string) *CallState { return t.calls[callID] }

// PermissionStatus is the state of a user's call permission for the business number.
type PermissionStatus string

// Permission statuses.
const (
	PermissionUnknown   PermissionStatus = "unknown"
	PermissionRequested PermissionStatus = "requested"
	PermissionGranted   PermissionStatus = "granted"
	PermissionDenied    PermissionStatus = "denied"
)

// Permission is what the business knows of one user's call permission. Values are
// immutable: methods return the updated permission.
type Permission struct {
	Status PermissionStatus `json:"status"`
	// RequestID is the wamid of the last permission request message.
	RequestID   string    `json:"request_id,omitempty"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// UpdatedAt is the event time of the last reply applied.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Expires is when a temporary grant lapses; zero with Permanent.
	Expires   time.Time `json:"expires,omitzero"`
	Permanent bool      `json:"permanent,omitempty"`
}

// Requested records that a permission request was sent.
func (p Permission) Requested(at time.Time, messageID string) Permission {
	if p.Status != PermissionGranted {
		p.Status = PermissionRequested
	}
	p.RequestID, p.RequestedAt = messageID, at
	return p
}

// Apply records a user's reply given at time at. A reply older than the last one
// applied is ignored (webhooks can arrive out of order).
func (p Permission) Apply(r PermissionReply, at time.Time) Permission {
	if !p.UpdatedAt.IsZero() && at.Before(p.UpdatedAt) {
		return p
	}
	p.UpdatedAt = at
	if r.Granted {
		p.Status, p.Expires, p.Permanent = PermissionGranted, r.Expires, r.Permanent
	} else {
		p.Status, p.Expires, p.Permanent = PermissionDenied, time.Time{}, false
	}
	return p
}

// Revoked records that Meta refused a call for lack of permission (138006): whatever
// was believed, permission must be asked again.
func (p Permission) Revoked() Permission {
	p.Status, p.Expires, p.Permanent = PermissionUnknown, time.Time{}, false
	return p
}

// Current returns the status at now: a temporary grant past its expiry is unknown.
func (p Permission) Current(now time.Time) PermissionStatus {
	if p.Status == "" {
		return PermissionUnknown
	}
	if p.Status == PermissionGranted && !p.Permanent && !p.Expires.IsZero() && !now.Before(p.Expires) {
		return PermissionUnknown
	}
	return p.Status
}

// CanCall reports whether a business-initiated call may be placed at now.
func (p Permission) CanCall(now time.Time) bool { return p.Current(now) == PermissionGranted }
