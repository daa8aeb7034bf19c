package campaigns

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// weekHoursCampaign is Mon–Fri 09:00–21:00, Sat 10:00–16:00, Sun closed, with
// the national holidays on.
func weekHoursCampaign(t *testing.T) *Campaign {
	t.Helper()
	var c Campaign
	if err := json.Unmarshal([]byte(`{"name":"x","caller_id":"+5511987654321","calling_hours":{
		"mon":{"start":"09:00","end":"21:00"},"tue":{"start":"09:00","end":"21:00"},
		"wed":{"start":"09:00","end":"21:00"},"thu":{"start":"09:00","end":"21:00"},
		"fri":{"start":"09:00","end":"21:00"},"sat":{"start":"10:00","end":"16:00"}}}`), &c); err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func zonesOf(t *testing.T, names ...string) []*time.Location {
	t.Helper()
	out := make([]*time.Location, len(names))
	for i, n := range names {
		out[i] = mustZone(t, n)
	}
	return out
}

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, mustZone(t, zone))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHoursEdges(t *testing.T) {
	const ny, chi, sp = "America/New_York", "America/Chicago", "America/Sao_Paulo"
	optional := func(c *Campaign) { c.Holidays.Optional = true }
	own := func(c *Campaign) { c.Holidays.Dates = []string{"2027-01-25"} } // São Paulo city's anniversary
	off := func(c *Campaign) { no := false; c.Holidays.National = &no }
	tests := []struct {
		name   string
		change func(*Campaign)
		zones  []string
		at     time.Time
		want   Closure
		next   time.Time // checked when the hours are closed
	}{
		{"20:59 local is open", nil, []string{ny}, at(t, ny, "2027-03-03 20:59"), Open, time.Time{}},
		{"21:00 local is closed, opens 09:00 next day", nil, []string{ny}, at(t, ny, "2027-03-03 21:00"),
			ClosedOutsideWindow, at(t, ny, "2027-03-04 09:00")},
		{"08:59 local is closed", nil, []string{ny}, at(t, ny, "2027-03-03 08:59"), ClosedOutsideWindow, at(t, ny, "2027-03-03 09:00")},
		{"Saturday after 16:00 waits for Monday across the US spring DST change", nil, []string{ny},
			at(t, ny, "2027-03-13 16:30"), ClosedOutsideWindow, time.Date(2027, 3, 15, 13, 0, 0, 0, time.UTC)},
		{"Saturday before the DST change opens 10:00 EST", nil, []string{ny}, at(t, ny, "2027-03-13 09:00"),
			ClosedOutsideWindow, time.Date(2027, 3, 13, 15, 0, 0, 0, time.UTC)},
		{"US fall DST: Monday 09:00 EST", nil, []string{ny}, at(t, ny, "2027-11-06 17:00"),
			ClosedOutsideWindow, time.Date(2027, 11, 8, 14, 0, 0, 0, time.UTC)},
		{"Sunday closed", nil, []string{sp}, at(t, sp, "2027-03-07 12:00"), ClosedOutsideWindow, at(t, sp, "2027-03-08 09:00")},
		{"Good Friday 2027 is 26 March", nil, []string{sp}, at(t, sp, "2027-03-26 10:00"), ClosedHoliday, at(t, sp, "2027-03-27 10:00")},
		{"Carnival Monday 2027 is open without the switch", nil, []string{sp}, at(t, sp, "2027-02-08 10:00"), Open, time.Time{}},
		{"Carnival 2027 is 8–9 Feb with the switch", optional, []string{sp}, at(t, sp, "2027-02-08 10:00"),
			ClosedHoliday, at(t, sp, "2027-02-10 09:00")},
		{"Corpus Christi 2027 (27 May) with the switch", optional, []string{sp}, at(t, sp, "2027-05-27 10:00"),
			ClosedHoliday, at(t, sp, "2027-05-28 09:00")},
		{"20 November is national from 2024", nil, []string{sp}, at(t, sp, "2026-11-20 10:00"), ClosedHoliday, at(t, sp, "2026-11-21 10:00")},
		{"7 September", nil, []string{sp}, at(t, sp, "2027-09-07 10:00"), ClosedHoliday, at(t, sp, "2027-09-08 09:00")},
		{"national holidays switched off", off, []string{sp}, at(t, sp, "2027-09-07 10:00"), Open, time.Time{}},
		{"the campaign's own date", own, []string{sp}, at(t, sp, "2027-01-25 10:00"), ClosedHoliday, at(t, sp, "2027-01-26 09:00")},
		{"a BR holiday is not a US one", nil, []string{ny}, at(t, ny, "2027-09-07 10:00"), Open, time.Time{}},
		{"US Independence Day 2027 observed Monday 5 July", nil, []string{ny}, at(t, ny, "2027-07-05 12:00"),
			ClosedHoliday, at(t, ny, "2027-07-06 09:00")},
		{"a holiday in one zone and not the other", nil, []string{sp, ny}, at(t, ny, "2027-07-05 12:00"),
			ClosedHoliday, at(t, ny, "2027-07-06 09:00")},
		{"the same instant for the São Paulo zone alone", nil, []string{sp}, at(t, ny, "2027-07-05 12:00"), Open, time.Time{}},
		{"Christmas 2027 (Saturday) observed Friday 24 Dec", nil, []string{ny}, at(t, ny, "2027-12-24 12:00"),
			ClosedHoliday, at(t, ny, "2027-12-27 09:00")},
		{"New Year 2028 (Saturday) observed Friday 31 Dec 2027", nil, []string{ny}, at(t, ny, "2027-12-31 12:00"),
			ClosedHoliday, at(t, ny, "2028-01-03 09:00")},
		{"two zones: open only when both are", nil, []string{ny, chi}, at(t, chi, "2027-03-03 08:30"),
			ClosedOutsideWindow, at(t, chi, "2027-03-03 09:00")},
		{"two zones: the eastern one closes first", nil, []string{ny, chi}, at(t, chi, "2027-03-03 20:00"),
			ClosedOutsideWindow, at(t, chi, "2027-03-04 09:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := weekHoursCampaign(t)
			if tt.change != nil {
				tt.change(c)
			}
			got, next := c.Hours(tt.at, zonesOf(t, tt.zones...))
			if got != tt.want {
				t.Fatalf("Hours(%s) = %q, want %q", tt.at, got, tt.want)
			}
			if got == Open {
				if !next.IsZero() {
					t.Errorf("open with next %s", next)
				}
				return
			}
			if !next.Equal(tt.next) {
				t.Errorf("next open %s, want %s", next.UTC(), tt.next.UTC())
			}
			if closed, _ := c.Hours(next, zonesOf(t, tt.zones...)); closed != Open {
				t.Errorf("next open %s is %q", next, closed)
			}
			if closed, _ := c.Hours(next.Add(-time.Minute), zonesOf(t, tt.zones...)); closed == Open {
				t.Errorf("a minute before next open %s is already open", next)
			}
		})
	}
}

// TestHoursSplitAreaCodes: numbers whose area spans zones are refused at 21:30
// Central even where part of the area is still in its window.
func TestHoursSplitAreaCodes(t *testing.T) {
	c := weekHoursCampaign(t)
	chi := mustZone(t, "America/Chicago")
	late := time.Date(2027, 3, 3, 21, 30, 0, 0, chi)
	for _, num := range []string{"+16055550100", "+18505550100", "+12705550100", "+18005550100"} {
		t.Run(num, func(t *testing.T) {
			ct := Contact{Phone: num, Zones: ZonesForNumber(num)}
			zones := c.ContactZones(ct)
			if len(zones) < 2 {
				t.Fatalf("zones %v: want several", zones)
			}
			if !slices.ContainsFunc(zones, func(l *time.Location) bool { return l.String() == "America/Chicago" }) {
				t.Errorf("zones %v lack America/Chicago", zones)
			}
			if got, next := c.Hours(late, zones); got != ClosedOutsideWindow {
				t.Errorf("21:30 Central: %q, want outside_window", got)
			} else if next.IsZero() {
				t.Error("no next opening")
			}
			// Read back as the engine does, from the stored columns only.
			if got, _ := c.Hours(late, c.ContactZones(Contact{Phone: num})); got != ClosedOutsideWindow {
				t.Errorf("without stored zones: %q", got)
			}
		})
	}
	// 605 (Sioux Falls, Central; the west, Mountain) at 20:30 Central is open in both.
	if got, _ := c.Hours(time.Date(2027, 3, 3, 20, 30, 0, 0, chi), c.ContactZones(Contact{Phone: "+16055550100"})); got != Open {
		t.Errorf("605 at 20:30 Central: %q, want open", got)
	}
	// 850 (Pensacola Central, Tallahassee Eastern) at 20:30 Central is 21:30 Eastern.
	if got, _ := c.Hours(time.Date(2027, 3, 3, 20, 30, 0, 0, chi), c.ContactZones(Contact{Phone: "+18505550100"})); got != ClosedOutsideWindow {
		t.Errorf("850 at 20:30 Central: %q, want outside_window", got)
	}
}

func TestEaster(t *testing.T) {
	for year, want := range map[int]string{2024: "2024-03-31", 2025: "2025-04-20", 2026: "2026-04-05", 2027: "2027-03-28", 2038: "2038-04-25"} {
		if got := Easter(year).Format(time.DateOnly); got != want {
			t.Errorf("Easter(%d) = %s, want %s", year, got, want)
		}
	}
}

func TestZonesTables(t *testing.T) {
	ufs := []string{"AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
		"PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO"}
	if len(brazilZonesByUF) != 27 {
		t.Errorf("%d UFs in the table, Brazil has 27", len(brazilZonesByUF))
	}
	for _, uf := range ufs {
		zs, err := ZonesForRegion("BR", strings.ToLower(uf))
		if err != nil || len(zs) == 0 {
			t.Errorf("UF %s: %v %v", uf, zs, err)
		}
	}
	for _, tbl := range []map[string][]string{brazilZonesByUF, usZonesByState, nanpSplitAreaCodes, brazilDDDSplit} {
		for k, zs := range tbl {
			for _, z := range zs {
				if _, err := time.LoadLocation(z); err != nil {
					t.Errorf("%s: %v", k, err)
				}
			}
		}
	}
	if len(usZonesByState) != 51+5 {
		t.Errorf("%d US states and territories, want 50 + DC + 5 territories", len(usZonesByState))
	}
	tests := []struct {
		country, code string
		postal        bool
		want          []string
		err           string
	}{
		{"BR", "AM", false, []string{"America/Manaus", "America/Eirunepe"}, ""},
		{"BR", "XX", false, nil, `"XX" is not a BR state`},
		{"US", "TX", false, []string{"America/Chicago", "America/Denver"}, ""},
		{"BR", "01310-100", true, []string{"America/Sao_Paulo"}, ""},
		{"BR", "69980-000", true, []string{"America/Rio_Branco"}, ""},
		{"BR", "53990-000", true, []string{"America/Noronha"}, ""},
		{"BR", "50000-000", true, []string{"America/Recife"}, ""},
		{"BR", "0131", true, nil, "not a CEP"},
		{"BR", "abc", true, nil, "not a postal code"},
		{"US", "57101", true, []string{"America/Chicago", "America/Denver"}, ""},
		{"US", "10001", true, []string{"America/New_York"}, ""},
		{"US", "90210-1234", true, []string{"America/Los_Angeles"}, ""},
	}
	for _, tt := range tests {
		var zs []string
		var err error
		if tt.postal {
			zs, err = ZonesForPostalCode(tt.country, tt.code)
		} else {
			zs, err = ZonesForRegion(tt.country, tt.code)
		}
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %s: error %v, want %q", tt.country, tt.code, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(zs, tt.want) {
			t.Errorf("%s %s: %v %v, want %v", tt.country, tt.code, zs, err, tt.want)
		}
	}
}

func TestContactZonesAndDefaults(t *testing.T) {
	names := func(ls []*time.Location) []string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = l.String()
		}
		return out
	}
	us := Campaign{Name: "x", CallerID: "+12125550100", DefaultCountry: "US"}
	us.ApplyDefaults()
	if us.Schedule.Timezone != "America/New_York" {
		t.Errorf("US campaign schedule zone %q", us.Schedule.Timezone)
	}
	br := Campaign{Name: "x", CallerID: "+5511987654321"}
	br.ApplyDefaults()
	chicago := us
	chicago.Schedule.Timezone = "America/Chicago"
	tests := []struct {
		name string
		c    Campaign
		ct   Contact
		want []string
	}{
		{"stored zones win", us, Contact{Phone: "+12125550100", Timezone: "America/Denver", Zones: []string{"America/Chicago"}}, []string{"America/Chicago"}},
		{"own timezone", us, Contact{Phone: "+12125550100", Timezone: "America/Denver"}, []string{"America/Denver"}},
		{"UF attribute", br, Contact{Phone: "+5511987654321", Attributes: map[string]string{"UF": "AC"}}, []string{"America/Rio_Branco"}},
		{"CEP beats UF", br, Contact{Phone: "+5511987654321", Attributes: map[string]string{"UF": "PE", "CEP": "53990-000"}}, []string{"America/Noronha"}},
		{"number", br, Contact{Phone: "+5597987654321"}, []string{"America/Manaus", "America/Eirunepe"}},
		{"US contact with no zone: every contiguous zone", us, Contact{Phone: "+999"}, usContiguousZones},
		{"a schedule zone set by hand is the default", chicago, Contact{Phone: "+999"}, []string{"America/Chicago"}},
		{"BR default", br, Contact{Phone: "+999"}, []string{"America/Sao_Paulo"}},
	}
	for _, tt := range tests {
		if got := names(tt.c.ContactZones(tt.ct)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHoursValidation(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		limit Limits
		field string
		msg   string
	}{
		{"weekday end before start", `{"calling_hours":{"mon":{"start":"21:00","end":"09:00"}}}`, Limits{}, "calling_hours.mon", "not after start"},
		{"weekday end equal to start", `{"calling_hours":{"sat":{"start":"10:00","end":"10:00"}}}`, Limits{}, "calling_hours.sat", "not after start"},
		{"no open day", `{"calling_hours":{}}`, Limits{}, "calling_hours", "never call"},
		{"holiday not a date", `{"holidays":{"dates":["2027-02-30"]}}`, Limits{}, "holidays.dates[0]", "not a date"},
		{"target_abandon above the cap", `{"pacing":{"target_abandon":0.05}}`, Limits{}, "pacing.target_abandon", "above the engine's max_abandon 0.03"},
		{"target_abandon above a raised cap", `{"pacing":{"target_abandon":0.06}}`, Limits{MaxAbandon: 0.05}, "pacing.target_abandon", "max_abandon 0.05"},
		{"target_abandon out of range", `{"pacing":{"target_abandon":1.5}}`, Limits{MaxAbandon: 0.05}, "pacing.target_abandon", "must be in (0, 0.2]"},
		{"schedule zone unknown", `{"schedule":{"timezone":"Mars/Olympus"}}`, Limits{}, "schedule.timezone", "unknown time zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Campaign{Name: "x", CallerID: "+5511987654321"}
			if err := json.Unmarshal([]byte(tt.json), &c); err != nil {
				t.Fatal(err)
			}
			c.ApplyDefaults()
			err := tt.limit.Check(&c)
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			if msg := ve.Fields[tt.field]; !strings.Contains(msg, tt.msg) {
				t.Errorf("%s: %q, want it to say %q (all: %v)", tt.field, msg, tt.msg, ve.Fields)
			}
		})
	}
	var c Campaign
	if err := json.Unmarshal([]byte(`{"calling_hours":{"monday":{"start":"09:00","end":"10:00"}}}`), &c); err == nil ||
		!strings.Contains(err.Error(), `"monday" is not a day`) {
		t.Errorf("unknown day: %v", err)
	}
	for _, v := range []float64{0, -0.01, 0.21} {
		if err := ValidateMaxAbandon("engine.max_abandon", v); err == nil || !strings.Contains(err.Error(), "engine.max_abandon") {
			t.Errorf("max_abandon %g: %v", v, err)
		}
	}
	if err := ValidateMaxAbandon("engine.max_abandon", 0.03); err != nil {
		t.Error(err)
	}
	ok := Campaign{Name: "x", CallerID: "+5511987654321"}
	ok.ApplyDefaults()
	if err := (Limits{}).Check(&ok); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// TestHoursNeverOpen: zones whose windows never overlap get the end of the
// bounded search as next time, never zero (the engine defers to it).
func TestHoursNeverOpen(t *testing.T) {
	c := weekHoursCampaign(t)
	sat := Window{Start: 10 * 60, End: 11 * 60}
	c.WeekHours = &WeeklyHours{}
	c.WeekHours[time.Saturday] = &sat
	now := at(t, "Pacific/Kiritimati", "2027-03-03 12:00")
	got, next := c.Hours(now, zonesOf(t, "Pacific/Kiritimati", "Pacific/Pago_Pago"))
	if got != ClosedOutsideWindow || !next.Equal(now.AddDate(0, 0, maxSearchDays)) {
		t.Errorf("%q next %s, want outside_window until %s", got, next, now.AddDate(0, 0, maxSearchDays))
	}
}

// TestWeeklyHoursJSON: the object round-trips, and a stored campaign without
// calling_hours keeps its legacy window every day, past midnight included.
func TestWeeklyHoursJSON(t *testing.T) {
	c := weekHoursCampaign(t)
	b, err := json.Marshal(c.WeekHours)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mon":{"start":"09:00","end":"21:00"},"tue":{"start":"09:00","end":"21:00"},"wed":{"start":"09:00","end":"21:00"},"thu":{"start":"09:00","end":"21:00"},"fri":{"start":"09:00","end":"21:00"},"sat":{"start":"10:00","end":"16:00"}}`
	if string(b) != want {
		t.Errorf("got %s", b)
	}
	legacy := Campaign{Name: "x", CallerID: "+5511987654321", Window: Window{Start: 22 * 60, End: 2 * 60}}
	legacy.ApplyDefaults()
	sp := zonesOf(t, "America/Sao_Paulo")
	if got, _ := legacy.Hours(at(t, "America/Sao_Paulo", "2027-03-07 01:00"), sp); got != Open {
		t.Errorf("legacy window past midnight at 01:00: %q", got)
	}
	if got, next := legacy.Hours(at(t, "America/Sao_Paulo", "2027-03-07 12:00"), sp); got != ClosedOutsideWindow ||
		!next.Equal(at(t, "America/Sao_Paulo", "2027-03-07 22:00")) {
		t.Errorf("legacy window at noon: %q next %s", got, next)
	}
}

// memSink keeps what Load gives it.
type memSink struct {
	added    []Contact
	rejected []Rejection
}

func (m *memSink) Add(_ context.Context, c Contact) (RejectReason, error) {
	m.added = append(m.added, c)
	return "", nil
}
func (m *memSink) Reject(_ context.Context, r Rejection) error {
	m.rejected = append(m.rejected, r)
	return nil
}
func (m *memSink) Flush(context.Context) error { return nil }

// TestImportZones: the state/UF and postal-code columns place a contact before
// its number does, a bad one is refused naming the column, and the result
// counts the contacts left with several zones.
func TestImportZones(t *testing.T) {
	csv := "phone,UF,CEP\n" +
		"11987654321,AC,\n" + // UF beats the number (São Paulo)
		"11987654322,,53990-000\n" + // Noronha's CEP
		"11987654323,XX,\n" + // unknown UF
		"11987654324,,123\n" + // not a CEP
		"81987654325,,\n" + // DDD 81: Recife or Noronha
		"97987654326,AM,\n" + // Amazonas: two zones
		"+16055550100,SD,\n" + // South Dakota: two zones
		"+12125550101,,10001\n" // ZIP: New York
	ir, err := NewImportReader(strings.NewReader(csv), ImportOptions{DefaultCountry: "BR"})
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	res, err := Load(context.Background(), ir, &sink, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 6 || res.Rejected != 2 || res.AmbiguousZones != 3 {
		t.Errorf("result %+v, want 6 imported, 2 rejected, 3 ambiguous", res)
	}
	want := map[string][]string{
		"+5511987654321": {"America/Rio_Branco"},
		"+5511987654322": {"America/Noronha"},
		"+5581987654325": {"America/Recife", "America/Noronha"},
		"+5597987654326": {"America/Manaus", "America/Eirunepe"},
		"+16055550100":   {"America/Chicago", "America/Denver"},
		"+12125550101":   {"America/New_York"},
	}
	for _, c := range sink.added {
		if !slices.Equal(c.Zones, want[c.Phone]) {
			t.Errorf("%s: zones %v, want %v", c.Phone, c.Zones, want[c.Phone])
		}
		if (len(c.Zones) == 1) != (c.Timezone != "") {
			t.Errorf("%s: timezone %q with zones %v", c.Phone, c.Timezone, c.Zones)
		}
	}
	for i, detail := range []string{`state/UF column: "XX" is not a BR state`, `postal-code column: "123" is not a CEP`} {
		if i >= len(sink.rejected) || sink.rejected[i].Reason != RejectInvalidRegion || !strings.Contains(sink.rejected[i].Detail, detail) {
			t.Errorf("rejection %d: %+v, want invalid_region %q", i, sink.rejected, detail)
		}
	}
}
