package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// complianceFixture stores, in the env's SQLite file, a day of a campaign's life
// yesterday in São Paulo: four people answered at noon (one abandoned), one call placed
// at 03:00 (outside the 09:00–21:00 window), three refusals by the policy gate and an
// opt-out on the DNC list. It returns the campaign's ID and the stray call's attempt ID.
func complianceFixture(t *testing.T, e *apiEnv) (string, int64) {
	t.Helper()
	ctx := context.Background()
	c := e.createCampaign(t, "Compliance")
	e.importCSV(t, c.ID, "phone\n+5511987650001\n+5511987650002\n")
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	// The latest day whose noon is inside the campaign's hours (not a closed
	// weekday, not a holiday), and its 03:00 outside, and whose noon is more than a
	// day ago: the report's rolling 24 h must not hold it, whatever the time of day
	// the test runs at (yesterday's noon is inside it until today's noon).
	stored, err := e.db.GetCampaign(ctx, mustID(t, c.ID))
	if err != nil {
		t.Fatal(err)
	}
	zones := []*time.Location{sp}
	var noon, night time.Time
	for back := 1; noon.IsZero(); back++ {
		if back > 20 {
			t.Fatal("no open day in the last 20 days")
		}
		y := time.Now().In(sp).AddDate(0, 0, -back)
		n := time.Date(y.Year(), y.Month(), y.Day(), 12, 0, 0, 0, sp)
		m := time.Date(y.Year(), y.Month(), y.Day(), 3, 0, 0, 0, sp)
		if time.Since(n) <= 25*time.Hour {
			continue
		}
		if open, _ := stored.Hours(n, zones); open == campaigns.Open {
			if closed, _ := stored.Hours(m, zones); closed != campaigns.Open {
				noon, night = n, m
			}
		}
	}
	ct := e.contacts(t, c.ID, "")
	if len(ct.Contacts) != 2 {
		t.Fatalf("contacts %+v", ct)
	}
	place := func(at time.Time, contactID string, outcome campaigns.Outcome) int64 {
		t.Helper()
		// The attempt is placed with the database's clock at the instant wanted.
		db, err := storage.Open(ctx, e.dbPath, storage.Options{Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		id := mustID(t, contactID)
		if err := db.MoveContact(ctx, id, pendingAgain); err != nil {
			t.Fatal(err)
		}
		a, err := db.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		answer, end := at.Add(5*time.Second), at.Add(time.Minute)
		a.State, a.Outcome, a.EndAt = "ended", string(outcome), &end
		if outcome.Answered() {
			a.AnswerAt = &answer
		}
		if err := db.UpdateAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	for i, o := range []campaigns.Outcome{campaigns.OutcomeConnected, campaigns.OutcomeAbandoned, campaigns.OutcomeConnected, campaigns.OutcomeConnected} {
		place(noon.Add(time.Duration(i)*time.Minute), ct.Contacts[i%2].ID, o)
	}
	stray := place(night, ct.Contacts[0].ID, campaigns.OutcomeNoAnswer)

	raw, err := sql.Open("sqlite3", "file:"+e.dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, r := range []struct{ action, reasons string }{
		{"sip_call", "do_not_call"},
		{"whatsapp_template", "do_not_call,outside_window"},
		{"whatsapp_text", "opted_out"},
	} {
		if _, err := raw.Exec(`INSERT INTO policy_refusals(contact_id, campaign_id, action, reasons, at) VALUES (?,?,?,?,?)`,
			mustID(t, ct.Contacts[1].ID), mustID(t, c.ID), r.action, r.reasons, noon.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO dnc(phone, reason, created_at) VALUES ('+5511987650002', 'opt_out', ?)`, noon.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	return c.ID, stray
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return id
}

// TestComplianceReport reads the report of the fixture's day through the API, as
// supervisors and admins may and sales and agents may not.
func TestComplianceReport(t *testing.T) {
	e := newEnv(t, Config{})
	id, stray := complianceFixture(t, e)
	path := "/api/v1/campaigns/" + id + "/compliance"
	for _, role := range []storage.Role{storage.RoleSales, storage.RoleAgent} {
		wantError(t, e.get(t, path, e.tokens[role]), http.StatusForbidden, "forbidden")
	}
	rep := decode[ComplianceReport](t, e.get(t, path, e.tokens[storage.RoleSupervisor]), http.StatusOK)
	if rep.Cap != campaigns.DefaultTargetAbandon || rep.Timezone != "America/Sao_Paulo" {
		t.Errorf("cap %v in %s, want the default %v in America/Sao_Paulo", rep.Cap, rep.Timezone, campaigns.DefaultTargetAbandon)
	}
	if a := rep.Abandonment.Days30; a.Answered != 4 || a.Abandoned != 1 || a.Rate != 0.25 {
		t.Errorf("30 days %+v, want 4 answered, 1 abandoned", a)
	}
	var day string
	for _, d := range rep.Abandonment.Days {
		if d.Answered > 0 {
			day = d.Day
			if d.Answered != 4 || d.Abandoned != 1 {
				t.Errorf("day %+v, want 4 answered, 1 abandoned", d)
			}
		}
	}
	if len(rep.Abandonment.Days) != 30 || day == "" {
		t.Errorf("days %+v: want 30, one with the calls", rep.Abandonment.Days)
	}
	if !slices.Contains(rep.OverCap, "days_30") || !slices.Contains(rep.OverCap, day) {
		t.Errorf("over cap %v, want days_30 and %s", rep.OverCap, day)
	}
	if r := rep.Refusals; r.Total != 3 || r.DNCHits != 2 || r.OptOuts != 2 || r.ByReason["outside_window"] != 1 || r.ByAction["whatsapp_text"] != 1 {
		t.Errorf("refusals %+v", r)
	}
	if rep.AmbiguousZoneContacts != 0 {
		t.Errorf("ambiguous zones %d, want 0 of São Paulo numbers", rep.AmbiguousZoneContacts)
	}
	if rep.DialsPlaced != 5 || rep.DialsOutsideWindow != 1 || !slices.Equal(rep.OutsideWindowAttempts, []string{idString(stray)}) {
		t.Errorf("dials %d, outside the window %d %v; want 5, 1 [%d]", rep.DialsPlaced, rep.DialsOutsideWindow, rep.OutsideWindowAttempts, stray)
	}
	decode[ComplianceReport](t, e.get(t, path, testAdminToken), http.StatusOK)
	wantError(t, e.get(t, "/api/v1/campaigns/999999/compliance", testAdminToken), http.StatusNotFound, "not_found")
}

// TestComplianceCSV checks the export opens as Excel in Brazil expects: a BOM, ';',
// decimal commas (points on request), and the same figures as the JSON.
func TestComplianceCSV(t *testing.T) {
	e := newEnv(t, Config{})
	id, _ := complianceFixture(t, e)
	path := "/api/v1/campaigns/" + id + "/compliance.csv"
	wantError(t, e.get(t, path+"?decimal=dot", testAdminToken), http.StatusBadRequest, "bad_request")
	for _, tc := range []struct {
		query, rate, cap string
	}{
		{"", "0,2500", "0,0300"},
		{"?decimal=point", "0.2500", "0.0300"},
	} {
		r := e.get(t, path+tc.query, e.tokens[storage.RoleSupervisor])
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("%v: want 200 text/csv", r)
		}
		if !bytes.HasPrefix(r.body, []byte("\ufeff")) {
			t.Fatalf("no byte-order mark: %q", r.body[:min(20, len(r.body))])
		}
		cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(r.body, []byte("\ufeff"))))
		cr.Comma, cr.FieldsPerRecord = ';', 6
		rows, err := cr.ReadAll()
		if err != nil {
			t.Fatalf("csv: %v\n%s", err, r.body)
		}
		find := func(section, item string) []string {
			for _, row := range rows {
				if row[0] == section && row[1] == item {
					return row
				}
			}
			t.Fatalf("no row %s;%s in\n%s", section, item, r.body)
			return nil
		}
		if row := find("abandonment", "days_30"); row[2] != "4" || row[3] != "1" || row[4] != tc.rate || row[5] != tc.cap {
			t.Errorf("30 days row %q, want 4;1;%s;%s", row, tc.rate, tc.cap)
		}
		for _, want := range [][3]string{
			{"dials", "outside_window", "1"}, {"dnc", "hits", "2"}, {"opt_outs", "total", "2"},
			{"refusals_by_reason", "do_not_call", "2"}, {"ambiguous_zone_contacts", "total", "0"},
		} {
			if row := find(want[0], want[1]); row[2] != want[2] {
				t.Errorf("row %q, want %s", row, want[2])
			}
		}
	}
}

// pendingAgain puts a contact back in the list after a stored attempt, so the next
// one can claim it, as a retry would.
func pendingAgain(_ campaigns.Contact, p campaigns.Position) (campaigns.Position, error) {
	p.Status = campaigns.ContactPending
	return p, nil
}
