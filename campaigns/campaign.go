package campaigns

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"github.com/robfig/cron/v3"
)

// State is a campaign's lifecycle state.
type State string

// Campaign states: draft → running ⇄ paused → finished.
const (
	StateDraft    State = "draft"
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateFinished State = "finished"
)

// Action is a lifecycle command a user sends to a campaign.
type Action string

// Lifecycle actions.
const (
	ActionStart  Action = "start"
	ActionPause  Action = "pause"
	ActionResume Action = "resume"
	ActionFinish Action = "finish"
)

// transitions is the campaign lifecycle as data: from state, by action, to state.
var transitions = map[State]map[Action]State{
	StateDraft:   {ActionStart: StateRunning, ActionFinish: StateFinished},
	StateRunning: {ActionPause: StatePaused, ActionFinish: StateFinished},
	StatePaused:  {ActionResume: StateRunning, ActionFinish: StateFinished},
}

// ErrInvalidTransition is returned when an action does not apply to a campaign's state.
var ErrInvalidTransition = errors.New("invalid campaign state transition")

// Next returns the state the campaign moves to when action is applied in state s.
func (s State) Next(a Action) (State, error) {
	to, ok := transitions[s][a]
	if !ok {
		return s, fmt.Errorf("%w: cannot %s a %s campaign", ErrInvalidTransition, a, s)
	}
	return to, nil
}

// Channel is a way to reach a contact: one rung of the escalation ladder.
type Channel string

// Channels, in the order the default ladder climbs them.
const (
	ChannelSIP              Channel = "sip"
	ChannelWhatsAppCall     Channel = "whatsapp_call"
	ChannelWhatsAppTemplate Channel = "whatsapp_template"
)

// Rung is one step of the escalation ladder.
type Rung struct {
	Channel     Channel `json:"channel"`
	MaxAttempts int     `json:"max_attempts"`
	// RetryDelay is the wait between two attempts on this rung, in Go duration syntax.
	RetryDelay Duration `json:"retry_delay"`
	// Template, Language and Params apply to the whatsapp_template rung only.
	Template string `json:"template,omitempty"`
	Language string `json:"language,omitempty"`
	// Params names, in order, the contact columns that fill the template's body
	// parameters ("name", "phone" or any attribute column of the import).
	Params []string `json:"params,omitempty"`
}

// PacingMode selects how the engine decides how many lines to dial.
type PacingMode string

// Pacing modes.
const (
	PacingPreview     PacingMode = "preview"
	PacingProgressive PacingMode = "progressive"
	PacingPredictive  PacingMode = "predictive"
)

// Pacing holds the supervisor's pacing settings for a campaign.
type Pacing struct {
	Mode          PacingMode `json:"mode"`
	TargetAbandon float64    `json:"target_abandon"`
	MaxRatio      float64    `json:"max_ratio"`
	// MaxInFlight caps the lines dialling at once; 0 means no cap beyond the trunks'.
	MaxInFlight int `json:"max_in_flight"`
	// RingTimeout is how long a call rings before it is given up. 0 is automatic: a
	// predictive campaign chooses it from the ring times it has learned (never under
	// MinRingTimeout) and the other modes ring for the engine's ring_timeout, which also
	// caps what the predictive pacer chooses. A value set here applies in every mode and
	// MinRingTimeout is then ignored.
	RingTimeout Duration `json:"ring_timeout"`
	// MinRingTimeout is the shortest ring an automatic ring timeout may choose; 0 means
	// DefaultMinRingTimeout.
	MinRingTimeout Duration `json:"min_ring_timeout"`
}

// Window is the time of day, in the contact's local time, when calls are allowed.
type Window struct {
	Start ClockTime `json:"start"`
	End   ClockTime `json:"end"`
}

// Contains reports whether t, read in loc, falls inside the window.
// A window whose end is before its start spans midnight.
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	lt := t.In(loc)
	m := ClockTime(lt.Hour()*60 + lt.Minute())
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

// Schedule opens and closes a running campaign on cron expressions.
// Empty expressions mean the campaign is open whenever it is running.
type Schedule struct {
	Open     string `json:"open,omitempty"`  // e.g. "0 9 * * 1-5"
	Close    string `json:"close,omitempty"` // e.g. "0 18 * * 1-5"
	Timezone string `json:"timezone"`        // IANA name the expressions are read in
}

// IsOpen reports whether the schedule is open at t: the most recent Open firing
// is later than the most recent Close firing. It looks back at most eight days,
// which covers any weekly schedule.
func (s Schedule) IsOpen(t time.Time) (bool, error) {
	if s.Open == "" && s.Close == "" {
		return true, nil
	}
	open, closing, loc, err := s.parse()
	if err != nil {
		return false, err
	}
	t = t.In(loc)
	lastOpen := lastFiring(open, t)
	lastClose := lastFiring(closing, t)
	return !lastOpen.IsZero() && lastOpen.After(lastClose), nil
}

func (s Schedule) parse() (open, closing cron.Schedule, loc *time.Location, err error) {
	loc, err = time.LoadLocation(s.Timezone)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("schedule timezone %q: %w", s.Timezone, err)
	}
	if s.Open == "" || s.Close == "" {
		return nil, nil, nil, errors.New("schedule needs both open and close expressions")
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	if open, err = parser.Parse(s.Open); err != nil {
		return nil, nil, nil, fmt.Errorf("schedule open %q: %w", s.Open, err)
	}
	if closing, err = parser.Parse(s.Close); err != nil {
		return nil, nil, nil, fmt.Errorf("schedule close %q: %w", s.Close, err)
	}
	return open, closing, loc, nil
}

// scheduleHorizon is how far ahead a schedule must open: robfig/cron's Next gives
// up after five years too.
const scheduleHorizon = 5 * 366 * 24 * time.Hour

// minFiringGap is the shortest interval between firings a schedule may have: the
// engine reads schedules by the minute, and a schedule firing every second costs
// CPU for nothing. Five-field expressions cannot go below it; @every can.
const minFiringGap = time.Minute

// check parses the schedule and refuses one that would not work as written: an
// expression that never fires (30 February), one that fires more often than once
// a minute (@every 1s), or an opening that always coincides with a closing, so
// the campaign would show running and never open. now is where the search for
// firings starts.
func (s Schedule) check(now time.Time) error {
	open, closing, loc, err := s.parse()
	if err != nil {
		return err
	}
	now = now.In(loc)
	for _, e := range []struct {
		field, expr string
		sched       cron.Schedule
	}{{"open", s.Open, open}, {"close", s.Close, closing}} {
		if d, ok := e.sched.(cron.ConstantDelaySchedule); ok && d.Delay < minFiringGap {
			return fmt.Errorf("schedule %s %q fires every %s: at most once a minute is allowed", e.field, e.expr, d.Delay)
		}
		first := e.sched.Next(now)
		if first.IsZero() || first.Sub(now) > scheduleHorizon {
			return fmt.Errorf("schedule %s %q never fires (no date matches it in the next 5 years)", e.field, e.expr)
		}
	}
	// The campaign opens at an open firing unless a close fires at the same
	// instant (IsOpen wants the last open after the last close).
	at := now
	for range 1000 {
		if at = open.Next(at); at.IsZero() || at.Sub(now) > scheduleHorizon {
			break
		}
		if !closing.Next(at.Add(-time.Second)).Equal(at) {
			return nil
		}
	}
	return fmt.Errorf("schedule open %q never opens the campaign: close %q fires at each of its times", s.Open, s.Close)
}

// lastFiring finds the latest firing of sched at or before t within eight days.
func lastFiring(sched cron.Schedule, t time.Time) time.Time {
	var last time.Time
	for next := sched.Next(t.Add(-8 * 24 * time.Hour)); !next.IsZero() && !next.After(t); next = sched.Next(next) {
		last = next
	}
	return last
}

// Disposition is a code an agent closes a call with.
type Disposition struct {
	Code  string `json:"code"`
	Label string `json:"label"`
	// Callback dispositions carry a time: the contact is called again then.
	Callback bool `json:"callback,omitempty"`
}

// DefaultDispositions are the codes a new campaign offers its agents.
func DefaultDispositions() []Disposition {
	return []Disposition{
		{Code: "sale", Label: "Venda"},
		{Code: "callback", Label: "Retornar a ligação", Callback: true},
		{Code: "not_interested", Label: "Sem interesse"},
		{Code: "wrong_person", Label: "Pessoa errada"},
		{Code: DispositionDoNotCall, Label: "Não ligar novamente"},
		{Code: "other", Label: "Outro"},
	}
}

// DispositionDoNotCall is the disposition of a person who asked not to be
// contacted again: the number goes on the global do-not-call list.
const DispositionDoNotCall = "do_not_call"

// AMDAction is what happens to a call an answering machine picked up.
type AMDAction string

// Machine actions.
const (
	// AMDHangUp hangs up; the rung is tried again after its delay.
	AMDHangUp AMDAction = "hang_up"
	// AMDNextRung hangs up and moves the contact to the next rung at once (the
	// WhatsApp call, which reaches the person rather than the voicemail).
	AMDNextRung AMDAction = "next_rung"
	// AMDLeaveMessage waits for the greeting and beep to end, leaves the recorded
	// message, hangs up and moves the contact to the next rung.
	AMDLeaveMessage AMDAction = "leave_message"
)

// AMD configures answering-machine detection for a campaign.
type AMD struct {
	Enabled bool      `json:"enabled"`
	Action  AMDAction `json:"action,omitempty"`
}

// CallPermission says how a campaign asks a contact for permission to call on
// WhatsApp when WhatsApp refuses the call: with an interactive request (Text as its
// body; Meta takes it only inside the 24 h window the contact's last message
// opened) or, with Template set, an approved template that carries the request
// (allowed at any time).
type CallPermission struct {
	Text     string `json:"text,omitempty"`
	Template string `json:"template,omitempty"`
	Language string `json:"language,omitempty"`
}

// DefaultWrapUp is how long an agent's wrap-up may last before it ends by itself.
const DefaultWrapUp = Duration(60 * time.Second)

// Campaign is an outbound campaign and the policy for reaching its contacts.
type Campaign struct {
	ID             int64    `json:"id,string"`
	Name           string   `json:"name"`
	CallerID       string   `json:"caller_id"`
	DefaultCountry string   `json:"default_country"`
	State          State    `json:"state"`
	Schedule       Schedule `json:"schedule"`
	// Window is the legacy calling window, every day; WeekHours, when set, wins.
	Window Window `json:"calling_window"`
	// WeekHours are the calling hours of each weekday (nil: Window every day).
	WeekHours *WeeklyHours `json:"calling_hours,omitempty"`
	// Holidays are the days the calling hours stay closed.
	Holidays Holidays `json:"holidays"`
	Ladder   []Rung   `json:"ladder"`
	Pacing   Pacing   `json:"pacing"`
	// Dispositions are the codes agents close calls with.
	Dispositions []Disposition `json:"dispositions"`
	// WrapUp ends an agent's wrap-up without a disposition after this long.
	WrapUp Duration `json:"wrap_up"`
	// AMD screens answered calls for answering machines before an agent gets them.
	AMD AMD `json:"amd"`
	// Record keeps each connected call as a stereo WAV (customer left, agent right)
	// beside the database.
	Record bool `json:"record"`
	// CallPermission is how WhatsApp call permission is asked for.
	CallPermission CallPermission `json:"call_permission"`
	// RequireConsent keeps the WhatsApp rungs for contacts whose import recorded
	// their consent.
	RequireConsent bool `json:"require_consent"`
	// Script is what agents are shown to say on the campaign's calls: plain
	// text whose {{field}} placeholders the agent page fills from the contact
	// (name, phone, or a column of the import).
	Script    string    `json:"script,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// ArchivedAt is when the campaign was deleted through the API: it is then out
	// of every list and closed to changes, its history kept for reports.
	ArchivedAt *time.Time `json:"archived_at,omitempty"`
}

// MaxScript bounds a campaign's script, in characters.
const MaxScript = 20000

// Defaults used for settings a new campaign leaves out.
const (
	DefaultTargetAbandon = 0.03
	DefaultMaxRatio      = 3.0
	DefaultCountry       = "BR"
	DefaultTimezone      = "America/Sao_Paulo"
	// DefaultMinRingTimeout is the shortest automatic ring timeout unless a campaign sets
	// Pacing.MinRingTimeout: the US Telemarketing Sales Rule and Ofcom both ask for 15 s.
	DefaultMinRingTimeout = Duration(15 * time.Second)
)

// Bounds of Pacing.RingTimeout and Pacing.MinRingTimeout when they are not 0; the
// messages of validatePacing spell them out.
const (
	shortestRing   = Duration(5 * time.Second)
	longestRing    = Duration(120 * time.Second)
	longestMinRing = Duration(60 * time.Second)
)

// DefaultLadder is the escalation the product promises: SIP, then a WhatsApp call,
// then a WhatsApp template message.
func DefaultLadder() []Rung {
	return []Rung{
		// Two SIP tries and the WhatsApp call are three calls: the engine's default
		// limit of calls to a number in 24 h (Florida's), so the ladder is not held
		// back a day before its WhatsApp rung.
		{Channel: ChannelSIP, MaxAttempts: 2, RetryDelay: Duration(30 * time.Minute)},
		{Channel: ChannelWhatsAppCall, MaxAttempts: 1, RetryDelay: Duration(time.Hour)},
		{Channel: ChannelWhatsAppTemplate, MaxAttempts: 1},
	}
}

// ApplyDefaults fills every setting left at its zero value.
func (c *Campaign) ApplyDefaults() {
	if c.DefaultCountry == "" {
		c.DefaultCountry = DefaultCountry
	}
	c.DefaultCountry = strings.ToUpper(c.DefaultCountry)
	if c.State == "" {
		c.State = StateDraft
	}
	if c.Schedule.Timezone == "" {
		c.Schedule.Timezone = CountryTimezone(c.DefaultCountry)
	}
	if c.Holidays.National == nil {
		on := true
		c.Holidays.National = &on
	}
	if c.Window == (Window{}) {
		c.Window = Window{Start: 9 * 60, End: 21 * 60}
	}
	if c.Ladder == nil {
		c.Ladder = DefaultLadder()
	}
	if c.Pacing.Mode == "" {
		c.Pacing.Mode = PacingPredictive
	}
	if c.Pacing.TargetAbandon == 0 {
		c.Pacing.TargetAbandon = DefaultTargetAbandon
	}
	if c.Pacing.MaxRatio == 0 {
		c.Pacing.MaxRatio = DefaultMaxRatio
	}
	if c.Dispositions == nil {
		c.Dispositions = DefaultDispositions()
	}
	if c.WrapUp == 0 {
		c.WrapUp = DefaultWrapUp
	}
	if c.AMD.Action == "" {
		c.AMD.Action = AMDHangUp
	}
}

// Disposition returns the campaign's disposition with code.
func (c *Campaign) Disposition(code string) (Disposition, bool) {
	for _, d := range c.Dispositions {
		if d.Code == code {
			return d, true
		}
	}
	return Disposition{}, false
}

// ValidationError lists what is wrong with a campaign, field by field.
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid campaign:")
	for _, k := range sortedKeys(e.Fields) {
		fmt.Fprintf(&b, " %s: %s;", k, e.Fields[k])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Validate checks every setting and reports all problems at once.
func (c *Campaign) Validate() error {
	bad := map[string]string{}
	if strings.TrimSpace(c.Name) == "" {
		bad["name"] = "required"
	} else if len(c.Name) > 200 {
		bad["name"] = "longer than 200 characters"
	}
	if utf8.RuneCountInString(c.Script) > MaxScript {
		bad["script"] = fmt.Sprintf("longer than %d characters", MaxScript)
	}
	if !phonenumbers.GetSupportedRegions()[c.DefaultCountry] {
		bad["default_country"] = "not a supported ISO 3166 region code"
	}
	if c.CallerID == "" {
		bad["caller_id"] = "required"
	} else if e164, err := NormalizePhone(c.CallerID, c.DefaultCountry); err != nil {
		bad["caller_id"] = "not a valid phone number"
	} else {
		c.CallerID = e164
	}
	if _, err := time.LoadLocation(c.Schedule.Timezone); err != nil {
		bad["schedule.timezone"] = "unknown time zone"
	} else if c.Schedule.Open != "" || c.Schedule.Close != "" {
		if err := c.Schedule.check(time.Now()); err != nil {
			bad["schedule"] = err.Error()
		}
	}
	if !c.Window.Start.valid() || !c.Window.End.valid() || c.Window.Start == c.Window.End {
		bad["calling_window"] = "start and end must be distinct times of day (an end before the start spans midnight)"
	}
	if c.WeekHours != nil {
		c.WeekHours.validate(bad)
	}
	c.Holidays.validate("holidays", bad)
	validateLadder(c.Ladder, bad)
	validateDispositions(c.Dispositions, bad)
	if c.WrapUp < Duration(5*time.Second) || c.WrapUp > Duration(30*time.Minute) {
		bad["wrap_up"] = "must be between 5s and 30m"
	}
	if c.CallPermission.Template != "" && c.CallPermission.Language == "" {
		bad["call_permission.language"] = "required with a template"
	}
	if len(c.CallPermission.Text) > 1024 {
		bad["call_permission.text"] = "at most 1024 characters"
	}
	switch c.AMD.Action {
	case AMDHangUp, AMDNextRung, AMDLeaveMessage:
	default:
		bad["amd.action"] = "must be hang_up, next_rung or leave_message"
	}
	validatePacing(c.Pacing, bad)
	if len(bad) > 0 {
		return &ValidationError{Fields: bad}
	}
	return nil
}

func validateLadder(ladder []Rung, bad map[string]string) {
	if len(ladder) == 0 {
		bad["ladder"] = "needs at least one rung"
	}
	seen := map[Channel]bool{}
	for i, r := range ladder {
		key := fmt.Sprintf("ladder[%d]", i)
		switch r.Channel {
		case ChannelSIP, ChannelWhatsAppCall, ChannelWhatsAppTemplate:
		default:
			bad[key+".channel"] = fmt.Sprintf("unknown channel %q (sip, whatsapp_call, whatsapp_template)", r.Channel)
		}
		if seen[r.Channel] {
			bad[key+".channel"] = "channel appears twice"
		}
		seen[r.Channel] = true
		if r.MaxAttempts < 1 || r.MaxAttempts > 20 {
			bad[key+".max_attempts"] = "must be between 1 and 20"
		}
		if r.RetryDelay < 0 {
			bad[key+".retry_delay"] = "must not be negative"
		}
	}
}

// ValidateForStart checks what a campaign needs before it dials, beyond what Validate
// checks: a draft may leave the template unnamed, a running campaign may not, and
// every template parameter must name a column its contacts have (columns: the
// attribute columns of its imports), so a missing one is found now and not when
// the message is due.
func (c *Campaign) ValidateForStart(columns []string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	bad := map[string]string{}
	for i, r := range c.Ladder {
		if r.Channel != ChannelWhatsAppTemplate {
			continue
		}
		key := fmt.Sprintf("ladder[%d]", i)
		if r.Template == "" {
			bad[key+".template"] = "required on a whatsapp_template rung before the campaign starts"
		}
		if r.Language == "" {
			bad[key+".language"] = "required on a whatsapp_template rung before the campaign starts"
		}
		for _, p := range r.Params {
			lp := strings.ToLower(p)
			if lp != "name" && lp != "phone" && !slices.Contains(columns, p) {
				bad[key+".params"] = fmt.Sprintf("column %q is not in the campaign's contacts (have: name, phone, %s)", p, strings.Join(columns, ", "))
			}
		}
	}
	if len(bad) > 0 {
		return &ValidationError{Fields: bad}
	}
	return nil
}

var dispositionCode = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

func validateDispositions(ds []Disposition, bad map[string]string) {
	if len(ds) == 0 {
		bad["dispositions"] = "needs at least one code"
	}
	seen := map[string]bool{}
	for i, d := range ds {
		key := fmt.Sprintf("dispositions[%d]", i)
		switch {
		case !dispositionCode.MatchString(d.Code):
			bad[key+".code"] = "1 to 64 lower-case letters, digits or _"
		case seen[d.Code]:
			bad[key+".code"] = "code appears twice"
		}
		seen[d.Code] = true
		if strings.TrimSpace(d.Label) == "" || len(d.Label) > 100 {
			bad[key+".label"] = "required, at most 100 characters"
		}
	}
}

func validatePacing(p Pacing, bad map[string]string) {
	switch p.Mode {
	case PacingPreview, PacingProgressive, PacingPredictive:
	default:
		bad["pacing.mode"] = "must be preview, progressive or predictive"
	}
	if p.TargetAbandon <= 0 || p.TargetAbandon > MaxAbandonCeiling {
		bad["pacing.target_abandon"] = fmt.Sprintf("must be in (0, %g]", MaxAbandonCeiling)
	}
	if p.MaxRatio < 1 || p.MaxRatio > 10 {
		bad["pacing.max_ratio"] = "must be between 1 and 10"
	}
	if p.MaxInFlight < 0 {
		bad["pacing.max_in_flight"] = "must not be negative"
	}
	// A fixed RingTimeout makes MinRingTimeout irrelevant, so the two are not checked
	// against each other.
	if p.RingTimeout != 0 && (p.RingTimeout < shortestRing || p.RingTimeout > longestRing) {
		bad["pacing.ring_timeout"] = "must be 0 (automatic) or between 5s and 120s"
	}
	if p.MinRingTimeout != 0 && (p.MinRingTimeout < shortestRing || p.MinRingTimeout > longestMinRing) {
		bad["pacing.min_ring_timeout"] = "must be 0 (the 15s default) or between 5s and 60s"
	}
}
