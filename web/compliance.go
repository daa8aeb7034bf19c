package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// complianceRoutes are the compliance report's API calls.
func (s *Server) complianceRoutes() []route {
	return []route{
		{"GET", "/api/v1/campaigns/{id}/compliance", supervisors, s.getCompliance},
		{"GET", "/api/v1/campaigns/{id}/compliance.csv", supervisors, s.getComplianceCSV},
	}
}

// complianceWindow is how far back the report reaches: the longest period the law
// counts abandonment over (the US TSR's 30 days).
const complianceWindow = 30 * 24 * time.Hour

// maxOutsideListed bounds the attempt IDs the report lists among dials placed
// outside the calling hours; the count is always whole.
const maxOutsideListed = 100

// ComplianceReport is what a campaign did that the law looks at, over the last 30 days.
type ComplianceReport struct {
	CampaignID  int64     `json:"campaign_id,string"`
	GeneratedAt time.Time `json:"generated_at"`
	Since       time.Time `json:"since"`
	// Timezone is the campaign's zone, in which Abandonment's days are counted.
	Timezone string `json:"timezone"`
	// Cap is the campaign's abandonment cap (pacing.target_abandon).
	Cap         float64             `json:"cap"`
	Abandonment storage.Abandonment `json:"abandonment"`
	// OverCap names the periods whose rate is above the cap: days_30, hours_24 and
	// the days (YYYY-MM-DD).
	OverCap  []string         `json:"over_cap"`
	Refusals storage.Refusals `json:"refusals"`
	// AmbiguousZoneContacts counts contacts whose number leaves more than one time zone
	// possible.
	AmbiguousZoneContacts int `json:"ambiguous_zone_contacts"`
	// DialsPlaced counts the calls placed; DialsOutsideWindow those placed outside the
	// campaign's calling hours in one of the contact's zones, which must be 0, and
	// OutsideWindowAttempts the first of their attempt IDs.
	DialsPlaced           int      `json:"dials_placed"`
	DialsOutsideWindow    int      `json:"dials_outside_window"`
	OutsideWindowAttempts []string `json:"outside_window_attempts"`
}

// compliance builds c's report at now.
func (s *Server) compliance(ctx context.Context, c campaigns.Campaign, now time.Time) (ComplianceReport, error) {
	loc, err := time.LoadLocation(c.Schedule.Timezone)
	if err != nil {
		loc = time.UTC
	}
	rep := ComplianceReport{CampaignID: c.ID, GeneratedAt: now, Since: now.Add(-complianceWindow), Timezone: loc.String(),
		Cap: c.Pacing.TargetAbandon, OverCap: []string{}, OutsideWindowAttempts: []string{}}
	if rep.Abandonment, err = s.store.Abandonment(ctx, c.ID, now, loc); err != nil {
		return rep, err
	}
	if rep.Abandonment.Days30.Rate > rep.Cap {
		rep.OverCap = append(rep.OverCap, "days_30")
	}
	if rep.Abandonment.Hours24.Rate > rep.Cap {
		rep.OverCap = append(rep.OverCap, "hours_24")
	}
	for _, d := range rep.Abandonment.Days {
		if d.Rate > rep.Cap {
			rep.OverCap = append(rep.OverCap, d.Day)
		}
	}
	if rep.Refusals, err = s.store.Refusals(ctx, c.ID, rep.Since); err != nil {
		return rep, err
	}
	if rep.AmbiguousZoneContacts, err = s.store.AmbiguousZoneContacts(ctx, c.ID); err != nil {
		return rep, err
	}
	dials, err := s.store.DialsPlaced(ctx, c.ID, rep.Since)
	if err != nil {
		return rep, err
	}
	rep.DialsPlaced = len(dials)
	// The hours are the campaign's as they stand: a window changed since is applied
	// to the dials placed before the change too.
	for _, d := range dials {
		if closed, _ := c.Hours(d.At, c.ContactZones(d.Contact)); closed != campaigns.Open {
			rep.DialsOutsideWindow++
			if len(rep.OutsideWindowAttempts) < maxOutsideListed {
				rep.OutsideWindowAttempts = append(rep.OutsideWindowAttempts, idString(d.AttemptID))
			}
		}
	}
	return rep, nil
}

func (s *Server) getCompliance(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	rep, err := s.compliance(r.Context(), c, s.ui.now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// getComplianceCSV writes the report as a CSV that Excel opens as it is in Brazil:
// ';' between fields, UTF-8 with a byte-order mark (without it Excel reads the file as
// Windows-1252) and a decimal comma. ?decimal=point writes 0.03 for tools that want it.
func (s *Server) getComplianceCSV(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	comma := true
	switch v := r.URL.Query().Get("decimal"); v {
	case "", "comma":
	case "point":
		comma = false
	default:
		return badRequest(fmt.Sprintf("decimal: %q is neither comma nor point", v))
	}
	rep, err := s.compliance(r.Context(), c, s.ui.now())
	if err != nil {
		return err
	}
	body, err := complianceCSV(rep, comma)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="compliance-%d-%s.csv"`, c.ID, rep.GeneratedAt.Format("20060102")))
	_, err = w.Write(body)
	return err
}

// complianceCSV lays the report out as rows of section;item;answered;abandoned;rate;cap
// for abandonment, and section;item;count for the rest.
func complianceCSV(rep ComplianceReport, decimalComma bool) ([]byte, error) {
	num := func(f float64) string {
		s := strconv.FormatFloat(f, 'f', 4, 64)
		if decimalComma {
			s = strings.Replace(s, ".", ",", 1)
		}
		return s
	}
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	cw := csv.NewWriter(&buf)
	cw.Comma = ';'
	cw.UseCRLF = true // what Excel writes, and reads best
	rows := [][]string{
		{"section", "item", "answered", "abandoned", "rate", "cap"},
		{"campaign", idString(rep.CampaignID), "", "", "", num(rep.Cap)},
		{"generated_at", rep.GeneratedAt.UTC().Format(time.RFC3339), "", "", "", ""},
	}
	ab := func(item string, f storage.AbandonFigures) []string {
		return []string{"abandonment", item, strconv.Itoa(f.Answered), strconv.Itoa(f.Abandoned), num(f.Rate), num(rep.Cap)}
	}
	rows = append(rows, ab("days_30", rep.Abandonment.Days30), ab("hours_24", rep.Abandonment.Hours24))
	for _, d := range rep.Abandonment.Days {
		rows = append(rows, ab(d.Day, d.AbandonFigures))
	}
	count := func(section, item string, n int) []string {
		return []string{section, item, strconv.Itoa(n), "", "", ""}
	}
	rows = append(rows, count("refusals", "total", rep.Refusals.Total))
	for _, reason := range slices.Sorted(maps.Keys(rep.Refusals.ByReason)) {
		rows = append(rows, count("refusals_by_reason", reason, rep.Refusals.ByReason[reason]))
	}
	for _, action := range slices.Sorted(maps.Keys(rep.Refusals.ByAction)) {
		rows = append(rows, count("refusals_by_action", action, rep.Refusals.ByAction[action]))
	}
	rows = append(rows,
		count("dnc", "hits", rep.Refusals.DNCHits),
		count("opt_outs", "total", rep.Refusals.OptOuts),
		count("ambiguous_zone_contacts", "total", rep.AmbiguousZoneContacts),
		count("dials", "placed", rep.DialsPlaced),
		count("dials", "outside_window", rep.DialsOutsideWindow),
	)
	if err := cw.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("compliance csv: %w", err)
	}
	return buf.Bytes(), nil
}
