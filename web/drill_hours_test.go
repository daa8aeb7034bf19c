package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

// clockChannel records the engine's clock at every call it is asked to place, and
// says no one answered.
type clockChannel struct {
	now   func() time.Time
	mu    sync.Mutex
	dials map[int64][]time.Time
}

func (c *clockChannel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	c.mu.Lock()
	c.dials[req.Contact.ID] = append(c.dials[req.Contact.ID], c.now())
	c.mu.Unlock()
	l := &endedAttempt{events: make(chan channel.AttemptEvent, 1)}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: c.now(), Outcome: campaigns.OutcomeNoAnswer}
	close(l.events)
	return l, nil
}

func (c *clockChannel) of(id int64) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.dials[id]...)
}

// drillContact is a contact of the drill and, written out by hand from the tz
// database and the area-code maps (not from Turbina's tables), zones the person
// may be in: every dial must fall in the calling hours in each of them.
type drillContact struct {
	row      string // phone,uf,cep
	country  string // whose national holidays apply
	zones    []string
	openDays int // local days (of the drill) it must be dialled on; 0: not checked
}

// TestDrillNoDialOutsideTheHours runs the engine on a fake clock, in 20-minute
// steps, across the edges of a week's calling hours (Mon–Fri 09–21, Sat 10–16,
// Sun closed), Brazil's Good Friday, a campaign's own closed day, and contacts
// whose zone is ambiguous (US area codes split between zones, a toll-free number,
// Brazilian area codes spanning zones) or given by a UF or CEP column. No call may
// be placed outside the hours in any zone the person may be in, and each contact
// is called on the days its hours open.
func TestDrillNoDialOutsideTheHours(t *testing.T) {
	var clock atomic.Int64
	now := func() time.Time { return time.UnixMilli(clock.Load()).UTC() }
	ch := &clockChannel{now: now, dials: map[int64][]time.Time{}}
	slot := &engineSlot{}
	e := newEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}, func(c *dialer.Config) {
		c.Now = now
		c.NumberLimits = &campaigns.NumberLimits{} // the drill is about hours, not limits
	}))
	ctx := context.Background()

	start := time.Date(2027, 3, 24, 18, 0, 0, 0, time.UTC) // Wednesday
	end := time.Date(2027, 3, 28, 12, 0, 0, 0, time.UTC)   // Sunday
	clock.Store(start.UnixMilli())

	weekday := map[string]string{"start": "09:00", "end": "21:00"}
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "drill", "default_country": "BR", "caller_id": "+551130000000",
		"ladder": []map[string]any{{"channel": "sip", "max_attempts": 20, "retry_delay": "2h"}},
		"calling_hours": map[string]any{"mon": weekday, "tue": weekday, "wed": weekday, "thu": weekday, "fri": weekday,
			"sat": map[string]string{"start": "10:00", "end": "16:00"}},
		"holidays": map[string]any{"dates": []string{"2027-03-25"}},
		"schedule": map[string]string{"timezone": "America/Sao_Paulo"},
	}), http.StatusCreated)
	decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor], map[string]any{"mode": "progressive"}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)

	contacts := []drillContact{
		// Sioux Falls is Central, Rapid City Mountain.
		{row: "+1 605 336 0100,,", country: "US", zones: []string{"America/Chicago", "America/Denver"}, openDays: 3},
		// Pensacola is Central, Tallahassee Eastern.
		{row: "+1 850 434 0100,,", country: "US", zones: []string{"America/Chicago", "America/New_York"}, openDays: 3},
		// Western Kentucky is Central, the east Eastern.
		{row: "+1 270 745 0100,,", country: "US", zones: []string{"America/Chicago", "America/New_York"}, openDays: 3},
		// Toll-free: anywhere the plan reaches, Guam to American Samoa.
		{row: "+1 800 555 0199,,", country: "US", zones: []string{"Pacific/Guam", "Pacific/Pago_Pago", "America/St_Johns", "America/New_York"}},
		// DDD 97: Manaus and the far west of Amazonas (Eirunepé, UTC−5).
		{row: "+55 97 98401 0000,,", country: "BR", zones: []string{"America/Manaus", "America/Eirunepe"}, openDays: 2},
		// DDD 81: Recife and Fernando de Noronha (UTC−2).
		{row: "+55 81 98888 0000,,", country: "BR", zones: []string{"America/Recife", "America/Noronha"}, openDays: 2},
		// A São Paulo number whose UF column says Acre, and one whose CEP is Rio Branco's.
		{row: "+55 11 98765 0000,AC,", country: "BR", zones: []string{"America/Rio_Branco"}, openDays: 2},
		{row: "+55 11 98765 0001,,69900-000", country: "BR", zones: []string{"America/Rio_Branco"}, openDays: 2},
		{row: "+55 11 98765 0002,,", country: "BR", zones: []string{"America/Sao_Paulo"}, openDays: 2},
	}
	var csv strings.Builder
	csv.WriteString("phone,uf,cep\n")
	for _, dc := range contacts {
		csv.WriteString(dc.row + "\n")
	}
	e.importCSV(t, c.ID, csv.String())
	list := e.contacts(t, c.ID, "?limit=100")
	if len(list.Contacts) != len(contacts) {
		t.Fatalf("%d contacts imported, want %d", len(list.Contacts), len(contacts))
	}
	byPhone := map[string]int64{}
	for _, ct := range list.Contacts {
		byPhone[ct.Phone] = policyID(t, ct.ID)
	}
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)

	campaignID := policyID(t, c.ID)
	for at := start; !at.After(end); at = at.Add(20 * time.Minute) {
		clock.Store(at.UnixMilli())
		slot.get().CampaignChanged()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			due, err := e.db.DueContacts(ctx, campaignID, []int{0}, at, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(due) == 0 && e.contacts(t, c.ID, "?status=in_progress").Total == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("at %s: %d contacts still due", at, len(due))
			}
		}
	}

	total := 0
	for _, dc := range contacts {
		e164, err := campaigns.NormalizePhone(strings.Split(dc.row, ",")[0], "BR")
		if err != nil {
			t.Fatal(err)
		}
		dials := ch.of(byPhone[e164])
		total += len(dials)
		days := map[string]bool{}
		for _, at := range dials {
			for _, z := range dc.zones {
				if why := outsideHours(t, at, z, dc.country); why != "" {
					t.Errorf("%s called at %s: %s in %s", e164, at.Format(time.RFC3339), why, z)
				}
			}
			days[at.In(mustZone(t, dc.zones[0])).Format("Mon")] = true
		}
		if dc.openDays > 0 && len(days) != dc.openDays {
			t.Errorf("%s called on %v (%d dials), want %d days", e164, days, len(dials), dc.openDays)
		}
	}
	if total < 30 {
		t.Fatalf("only %d dials in the drill: it tests too little", total)
	}
}

// outsideHours says why at is outside the drill's calling hours in zone, read as a
// person there would: "" when inside.
func outsideHours(t *testing.T, at time.Time, zone, country string) string {
	t.Helper()
	local := at.In(mustZone(t, zone))
	minute := local.Hour()*60 + local.Minute()
	date := local.Format("2006-01-02")
	switch {
	case date == "2027-03-25":
		return "the campaign's closed day"
	case date == "2027-03-26" && country == "BR":
		return "Good Friday"
	case local.Weekday() == time.Sunday:
		return "Sunday"
	case local.Weekday() == time.Saturday && (minute < 10*60 || minute >= 16*60):
		return fmt.Sprintf("Saturday %s", local.Format("15:04"))
	case local.Weekday() != time.Saturday && (minute < 9*60 || minute >= 21*60):
		return fmt.Sprintf("%s %s", local.Weekday(), local.Format("15:04"))
	}
	return ""
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
