package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// hoursView is the part of a campaign the calling hours are.
type hoursView struct {
	ID       string `json:"id"`
	Schedule struct {
		Timezone string `json:"timezone"`
	} `json:"schedule"`
	Window struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"calling_window"`
	CallingHours map[string]struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"calling_hours"`
	Holidays struct {
		National *bool    `json:"national"`
		Optional bool     `json:"optional"`
		Dates    []string `json:"dates"`
	} `json:"holidays"`
	Pacing pacingView `json:"pacing"`
}

// TestCampaignCallingHoursAPI: weekly hours and holidays are set and read back,
// the legacy calling_window means every day, the schedule zone follows the
// country, and bad input is refused naming the field with nothing changed.
func TestCampaignCallingHoursAPI(t *testing.T) {
	e := newEnv(t, Config{})
	sales := e.tokens[storage.RoleSales]

	us := decode[hoursView](t, e.send(t, "POST", "/api/v1/campaigns", sales,
		`{"name":"US","default_country":"US","caller_id":"+12125550100"}`), http.StatusCreated)
	if us.Schedule.Timezone != "America/New_York" {
		t.Errorf("US campaign schedule zone %q, want America/New_York", us.Schedule.Timezone)
	}
	if us.Holidays.National == nil || !*us.Holidays.National || us.CallingHours != nil {
		t.Errorf("defaults: holidays %+v, hours %v", us.Holidays, us.CallingHours)
	}

	c := decode[hoursView](t, e.send(t, "POST", "/api/v1/campaigns", sales,
		`{"name":"BR","caller_id":"+551130000000","calling_hours":{"mon":{"start":"09:00","end":"21:00"},
		"sat":{"start":"10:00","end":"16:00"}},"holidays":{"optional":true,"dates":["2027-01-25"]}}`), http.StatusCreated)
	path := "/api/v1/campaigns/" + c.ID
	got := decode[hoursView](t, e.get(t, path, sales), http.StatusOK)
	if got.CallingHours["sat"].Start != "10:00" || got.CallingHours["sat"].End != "16:00" || len(got.CallingHours) != 2 {
		t.Errorf("hours read back %+v", got.CallingHours)
	}
	if !got.Holidays.Optional || !slices.Equal(got.Holidays.Dates, []string{"2027-01-25"}) || !*got.Holidays.National {
		t.Errorf("holidays read back %+v", got.Holidays)
	}

	bad := []struct {
		body, field, says string
	}{
		{`{"calling_hours":{"sat":{"start":"16:00","end":"10:00"}}}`, "calling_hours.sat", "not after start"},
		{`{"holidays":{"dates":["25/01/2027"]}}`, "holidays.dates[0]", "not a date"},
		{`{"schedule":{"timezone":"America/Nowhere"}}`, "schedule.timezone", "unknown time zone"},
		{`{"pacing":{"target_abandon":0.05}}`, "pacing.target_abandon", "max_abandon 0.03"},
	}
	for _, tt := range bad {
		who := sales
		if strings.Contains(tt.body, "pacing") {
			who = e.tokens[storage.RoleAdmin]
		}
		r := wantError(t, e.send(t, "PATCH", path, who, tt.body), 422, "validation_failed")
		if !strings.Contains(r.Fields[tt.field], tt.says) {
			t.Errorf("PATCH %s: fields %v, want %s saying %q", tt.body, r.Fields, tt.field, tt.says)
		}
	}
	wantError(t, e.send(t, "PATCH", path, sales, `{"calling_hours":{"sabado":{"start":"10:00","end":"16:00"}}}`), 400, "bad_request")
	sup := e.tokens[storage.RoleSupervisor]
	r := wantError(t, e.send(t, "PATCH", path+"/pacing", sup, `{"target_abandon":0.04}`), 422, "validation_failed")
	if !strings.Contains(r.Fields["pacing.target_abandon"], "above the engine's max_abandon 0.03") {
		t.Errorf("pacing PATCH: %v", r.Fields)
	}
	after := decode[hoursView](t, e.get(t, path, sales), http.StatusOK)
	a, _ := json.Marshal(after)
	g, _ := json.Marshal(got)
	if string(a) != string(g) {
		t.Errorf("refused changes changed the campaign:\n%s\nwas\n%s", a, g)
	}

	// An old client's calling_window is every day again, past midnight allowed.
	old := decode[hoursView](t, e.send(t, "PATCH", path, sales, `{"calling_window":{"start":"22:00","end":"02:00"}}`), http.StatusOK)
	if old.CallingHours != nil || old.Window.Start != "22:00" || old.Window.End != "02:00" {
		t.Errorf("legacy window: %+v %v", old.Window, old.CallingHours)
	}
	// Country change moves a schedule zone nobody set.
	moved := decode[hoursView](t, e.send(t, "PATCH", path, sales, `{"default_country":"US","caller_id":"+12125550100"}`), http.StatusOK)
	if moved.Schedule.Timezone != "America/New_York" {
		t.Errorf("schedule zone after the country changed: %q", moved.Schedule.Timezone)
	}
}

// TestMaxAbandonConfigured: a raised engine cap lets a campaign ask for more,
// not beyond it.
func TestMaxAbandonConfigured(t *testing.T) {
	e := newEnv(t, Config{MaxAbandon: 0.05})
	// As admin: sales may not set pacing at all.
	admin := testAdminToken
	c := decode[hoursView](t, e.send(t, "POST", "/api/v1/campaigns", admin,
		`{"name":"x","caller_id":"+551130000000","pacing":{"target_abandon":0.05}}`), http.StatusCreated)
	if c.Pacing.TargetAbandon != 0.05 {
		t.Errorf("target_abandon %g", c.Pacing.TargetAbandon)
	}
	r := wantError(t, e.send(t, "POST", "/api/v1/campaigns", admin,
		`{"name":"x","caller_id":"+551130000000","pacing":{"target_abandon":0.051}}`), 422, "validation_failed")
	if !strings.Contains(r.Fields["pacing.target_abandon"], "max_abandon 0.05") {
		t.Errorf("fields %v", r.Fields)
	}
}

// TestImportReportsAmbiguousZones: the import's answer counts the contacts that
// may be in several zones, and each contact shows its zones.
func TestImportReportsAmbiguousZones(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "zones")
	rep := decode[struct {
		importReport
		AmbiguousZones int `json:"ambiguous_zones"`
	}](t, e.upload(t, "/api/v1/campaigns/"+c.ID+"/contacts", e.tokens[storage.RoleSales],
		"phone,uf\n11987654321,\n81987654322,\n97987654323,\n11987654324,AM\n11987654325,ZZ\n"), http.StatusOK)
	if rep.Imported != 4 || rep.AmbiguousZones != 3 || !slices.Equal(rep.rejections(), []string{"6:invalid_region"}) {
		t.Errorf("report %+v", rep)
	}
	list := decode[struct {
		Contacts []struct {
			Phone string   `json:"phone"`
			Zones []string `json:"zones"`
		} `json:"contacts"`
	}](t, e.get(t, "/api/v1/campaigns/"+c.ID+"/contacts", e.tokens[storage.RoleSales]), http.StatusOK)
	want := map[string][]string{
		"+5511987654321": {"America/Sao_Paulo"},
		"+5581987654322": {"America/Recife", "America/Noronha"},
		"+5597987654323": {"America/Manaus", "America/Eirunepe"},
		"+5511987654324": {"America/Manaus", "America/Eirunepe"},
	}
	for _, ct := range list.Contacts {
		if !slices.Equal(ct.Zones, want[ct.Phone]) {
			t.Errorf("%s: zones %v, want %v", ct.Phone, ct.Zones, want[ct.Phone])
		}
	}
}
