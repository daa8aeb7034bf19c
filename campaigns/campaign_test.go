package campaigns

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStateTransitions(t *testing.T) {
	tests := []struct {
		from State
		act  Action
		to   State
		ok   bool
	}{
		{StateDraft, ActionStart, StateRunning, true},
		{StateDraft, ActionPause, StateDraft, false},
		{StateRunning, ActionPause, StatePaused, true},
		{StateRunning, ActionResume, StateRunning, false},
		{StatePaused, ActionResume, StateRunning, true},
		{StatePaused, ActionFinish, StateFinished, true},
		{StateRunning, ActionFinish, StateFinished, true},
		{StateFinished, ActionStart, StateFinished, false},
		{StateFinished, ActionResume, StateFinished, false},
	}
	for _, tc := range tests {
		got, err := tc.from.Next(tc.act)
		if (err == nil) != tc.ok || got != tc.to {
			t.Errorf("%s --%s--> %s, %v; want %s ok=%v", tc.from, tc.act, got, err, tc.to, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTransition) {
			t.Errorf("error %v is not ErrInvalidTransition", err)
		}
	}
}

func TestWindowContainsContactLocalTime(t *testing.T) {
	saoPaulo, _ := time.LoadLocation("America/Sao_Paulo")
	manaus, _ := time.LoadLocation("America/Manaus")
	day := Window{Start: 9 * 60, End: 21 * 60}
	night := Window{Start: 22 * 60, End: 6 * 60}
	// 23:30 UTC is 20:30 in São Paulo (UTC-3) and 19:30 in Manaus (UTC-4).
	at := time.Date(2026, 11, 26, 23, 30, 0, 0, time.UTC)
	tests := []struct {
		w    Window
		t    time.Time
		loc  *time.Location
		want bool
	}{
		{day, at, saoPaulo, true},
		{day, at.Add(30 * time.Minute), saoPaulo, false}, // 21:00 is closed
		{day, at.Add(30 * time.Minute), manaus, true},
		{day, time.Date(2026, 11, 26, 11, 59, 0, 0, time.UTC), saoPaulo, false}, // 08:59
		{day, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), saoPaulo, true},   // 09:00
		{night, time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), saoPaulo, true},  // 23:00
		{night, time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), saoPaulo, true},  // 05:00
		{night, time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), saoPaulo, false},
	}
	for i, tc := range tests {
		if got := tc.w.Contains(tc.t, tc.loc); got != tc.want {
			t.Errorf("%d: window %s-%s at %s in %s = %v, want %v", i, tc.w.Start, tc.w.End, tc.t, tc.loc, got, tc.want)
		}
	}
}

func TestScheduleOpensAndCloses(t *testing.T) {
	s := Schedule{Open: "0 9 * * 1-5", Close: "0 18 * * 1-5", Timezone: "America/Sao_Paulo"}
	tests := []struct {
		at   string
		want bool
	}{
		{"2026-11-26T11:59:00Z", false}, // Thursday 08:59 local
		{"2026-11-26T12:00:00Z", true},  // 09:00
		{"2026-11-26T20:59:00Z", true},  // 17:59
		{"2026-11-26T21:00:00Z", false}, // 18:00
		{"2026-11-28T15:00:00Z", false}, // Saturday noon
		{"2026-11-30T13:00:00Z", true},  // Monday 10:00
	}
	for _, tc := range tests {
		at, _ := time.Parse(time.RFC3339, tc.at)
		got, err := s.IsOpen(at)
		if err != nil || got != tc.want {
			t.Errorf("IsOpen(%s) = %v, %v; want %v", tc.at, got, err, tc.want)
		}
	}
	if open, err := (Schedule{Timezone: "UTC"}).IsOpen(time.Now()); !open || err != nil {
		t.Errorf("empty schedule: %v, %v; want always open", open, err)
	}
	if _, err := (Schedule{Open: "bogus", Close: "0 18 * * *", Timezone: "UTC"}).IsOpen(time.Now()); err == nil {
		t.Error("bad cron expression accepted")
	}
}

// TestScheduleCheck: a schedule that never fires, fires more often than once a
// minute, or never opens the campaign is refused with a message naming it.
func TestScheduleCheck(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, open, close string
		want              string // in the error; "" for none
	}{
		{"weekdays", "0 9 * * 1-5", "0 18 * * 1-5", ""},
		{"every minute", "* * * * *", "30 18 * * *", ""},
		{"@every 1m", "@every 1m", "0 18 * * *", ""},
		{"leap day", "0 9 29 2 *", "0 18 * * *", ""},
		{"30 February", "0 9 30 2 *", "0 18 * * *", `schedule open "0 9 30 2 *" never fires`},
		{"31 April closes", "0 9 * * *", "0 18 31 4 *", `schedule close "0 18 31 4 *" never fires`},
		{"@every 1s", "@every 1s", "0 18 * * *", `schedule open "@every 1s" fires every 1s: at most once a minute`},
		{"@every 59s close", "0 9 * * *", "@every 59s", `schedule close "@every 59s" fires every 59s`},
		{"open and close together", "0 9 * * *", "0 9,18 * * *", "never opens the campaign"},
		{"bad expression", "bogus", "0 18 * * *", `schedule open "bogus"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Schedule{Open: tt.open, Close: tt.close, Timezone: "America/Sao_Paulo"}.check(now)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	c := Campaign{Name: "x", CallerID: "+551130000000", DefaultCountry: "BR"}
	c.ApplyDefaults()
	c.Schedule.Open, c.Schedule.Close = "0 9 30 2 *", "0 18 * * *"
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) || !strings.Contains(ve.Fields["schedule"], "never fires") {
		t.Errorf("Validate: %v, want schedule: never fires", err)
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c := Campaign{Name: " ", CallerID: "123", DefaultCountry: "XX",
		Schedule: Schedule{Timezone: "Mars/Olympus"},
		Ladder:   []Rung{{Channel: "fax", MaxAttempts: 0}, {Channel: ChannelSIP, MaxAttempts: 1, RetryDelay: -1}},
		Pacing: Pacing{Mode: "turbo", TargetAbandon: 0.5, MaxRatio: 0.5, MaxInFlight: -1,
			RingTimeout: Duration(time.Second), MinRingTimeout: Duration(time.Minute + time.Second)}}
	c.Window = Window{Start: 600, End: 600}
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate() = %v, want a ValidationError", err)
	}
	for _, field := range []string{"name", "caller_id", "default_country", "schedule.timezone", "calling_window",
		"ladder[0].channel", "ladder[0].max_attempts", "ladder[1].retry_delay", "pacing.mode",
		"pacing.target_abandon", "pacing.max_ratio", "pacing.max_in_flight", "pacing.ring_timeout", "pacing.min_ring_timeout"} {
		if _, ok := ve.Fields[field]; !ok {
			t.Errorf("no error for %s in %v", field, ve.Fields)
		}
	}
}

func TestDefaultsAreValidButNeedATemplateToStart(t *testing.T) {
	c := Campaign{Name: "Vendas", CallerID: "(11) 3000-0000"}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.CallerID != "+551130000000" {
		t.Errorf("caller ID normalised to %q", c.CallerID)
	}
	if c.Window.Start != 9*60 || c.Window.End != 21*60 || c.Pacing.TargetAbandon != 0.03 || c.State != StateDraft {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if err := c.ValidateForStart(nil); err == nil {
		t.Fatal("started without a template on the template rung")
	}
	c.Ladder[2].Template, c.Ladder[2].Language = "lembrete", "pt_BR"
	c.Ladder[2].Params = []string{"name", "plano"}
	var ve *ValidationError
	if err := c.ValidateForStart([]string{"valor"}); !errors.As(err, &ve) || ve.Fields["ladder[2].params"] == "" {
		t.Fatalf("a parameter column the contacts lack: %v", err)
	}
	if err := c.ValidateForStart([]string{"plano", "valor"}); err != nil {
		t.Fatalf("ValidateForStart: %v", err)
	}
}

func TestSettingsJSONRoundTrip(t *testing.T) {
	in := `{"start":"08:30","end":"20:00"}`
	var w Window
	if err := json.Unmarshal([]byte(in), &w); err != nil || w.Start != 8*60+30 || w.End != 20*60 {
		t.Fatalf("window %+v, %v", w, err)
	}
	out, _ := json.Marshal(w)
	if string(out) != in {
		t.Errorf("window JSON %s, want %s", out, in)
	}
	var r Rung
	if err := json.Unmarshal([]byte(`{"channel":"sip","max_attempts":2,"retry_delay":"45m"}`), &r); err != nil || time.Duration(r.RetryDelay) != 45*time.Minute {
		t.Fatalf("rung %+v, %v", r, err)
	}
	if err := json.Unmarshal([]byte(`{"retry_delay":"soon"}`), &r); err == nil {
		t.Error("bad duration accepted")
	}
	if err := json.Unmarshal([]byte(`"25:00"`), &w.Start); err == nil {
		t.Error("25:00 accepted as a time of day")
	}
}

func TestValidatePacingRingTimeouts(t *testing.T) {
	tests := []struct {
		name        string
		ring, min   time.Duration
		wantInvalid []string
	}{
		{name: "both automatic"},
		{name: "fixed at the lower bound", ring: 5 * time.Second},
		{name: "fixed at the upper bound", ring: 120 * time.Second},
		{name: "minimum at its lower bound", min: 5 * time.Second},
		{name: "minimum at its upper bound", min: 60 * time.Second},
		// A fixed ring makes the minimum irrelevant: no cross check.
		{name: "fixed under the minimum", ring: 10 * time.Second, min: 30 * time.Second},
		{name: "ring too short", ring: 4 * time.Second, wantInvalid: []string{"pacing.ring_timeout"}},
		{name: "ring too long", ring: 121 * time.Second, wantInvalid: []string{"pacing.ring_timeout"}},
		{name: "ring negative", ring: -time.Second, wantInvalid: []string{"pacing.ring_timeout"}},
		{name: "minimum too short", min: time.Second, wantInvalid: []string{"pacing.min_ring_timeout"}},
		{name: "minimum too long", min: 61 * time.Second, wantInvalid: []string{"pacing.min_ring_timeout"}},
		{name: "both wrong", ring: time.Hour, min: -time.Second, wantInvalid: []string{"pacing.ring_timeout", "pacing.min_ring_timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Campaign{Name: "Vendas", CallerID: "(11) 3000-0000"}
			c.ApplyDefaults()
			c.Pacing.RingTimeout, c.Pacing.MinRingTimeout = Duration(tt.ring), Duration(tt.min)
			err := c.Validate()
			if len(tt.wantInvalid) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a ValidationError", err)
			}
			for _, field := range tt.wantInvalid {
				if ve.Fields[field] == "" {
					t.Errorf("no error for %s in %v", field, ve.Fields)
				}
			}
			if len(ve.Fields) != len(tt.wantInvalid) {
				t.Errorf("errors %v, want only %v", ve.Fields, tt.wantInvalid)
			}
		})
	}
}

func TestPacingRingTimeoutsJSON(t *testing.T) {
	var p Pacing
	if err := json.Unmarshal([]byte(`{"mode":"predictive","ring_timeout":"20s","min_ring_timeout":18}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.RingTimeout.Std() != 20*time.Second || p.MinRingTimeout.Std() != 18*time.Second {
		t.Fatalf("ring_timeout %v, min_ring_timeout %v; want 20s, 18s", p.RingTimeout.Std(), p.MinRingTimeout.Std())
	}
	out, err := json.Marshal(Pacing{Mode: PacingPredictive, RingTimeout: Duration(20 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"mode":"predictive","target_abandon":0,"max_ratio":0,"max_in_flight":0,"ring_timeout":"20s","min_ring_timeout":"0s"}`
	if string(out) != want {
		t.Errorf("Marshal = %s, want %s", out, want)
	}
}
