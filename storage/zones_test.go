package storage

import (
	"context"
	"slices"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestContactZonesAndHoursStored: a contact's zones and the import's count of
// ambiguous ones are kept, and a campaign's weekly hours and holidays survive a
// round trip through the file.
func TestContactZonesAndHoursStored(t *testing.T) { eachBackend(t, testContactZonesAndHoursStored) }

func testContactZonesAndHoursStored(t *testing.T, be backend) {
	ctx := context.Background()
	d, _ := be.open(t, Options{})
	c := newCampaign(t, d)
	b, err := d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	contacts := []campaigns.Contact{
		{Phone: "+16055550100", Zones: []string{"America/Chicago", "America/Denver"}, Line: 2},
		{Phone: "+5511987650001", Timezone: "America/Sao_Paulo", Zones: []string{"America/Sao_Paulo"}, Line: 3},
		{Phone: "+5511987650002", Line: 4},
	}
	for _, ct := range contacts {
		if _, err := b.Add(ctx, ct); err != nil {
			t.Fatal(err)
		}
	}
	im, err := b.Finish(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if im.AmbiguousZones != 1 || im.Imported != 3 {
		t.Errorf("import %+v, want 3 imported, 1 ambiguous", im)
	}
	if again, err := d.GetImport(ctx, im.ID); err != nil || again.AmbiguousZones != 1 {
		t.Errorf("import read back: %+v %v", again, err)
	}
	list, _, err := d.ListContacts(ctx, c.ID, ContactFilter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("contacts %v %v", list, err)
	}
	for i, got := range list {
		if !slices.Equal(got.Zones, contacts[i].Zones) || got.Timezone != contacts[i].Timezone {
			t.Errorf("contact %d: zones %v tz %q, want %v %q", i, got.Zones, got.Timezone, contacts[i].Zones, contacts[i].Timezone)
		}
	}
	if one, err := d.GetContact(ctx, list[0].ID); err != nil || len(one.Zones) != 2 {
		t.Errorf("GetContact zones %v %v", one.Zones, err)
	}

	sat := campaigns.Window{Start: 10 * 60, End: 16 * 60}
	after, err := d.UpdateCampaign(ctx, tester, c.ID, "campaign.update", func(c *campaigns.Campaign) error {
		c.WeekHours = &campaigns.WeeklyHours{}
		c.WeekHours[6] = &sat
		c.Holidays.Dates = []string{"2027-01-25"}
		c.Holidays.Optional = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.GetCampaign(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.WeekHours == nil || got.WeekHours[6] == nil || *got.WeekHours[6] != sat || got.WeekHours[1] != nil {
		t.Errorf("weekly hours read back %+v (stored %+v)", got.WeekHours, after.WeekHours)
	}
	if !got.Holidays.Optional || !slices.Equal(got.Holidays.Dates, []string{"2027-01-25"}) ||
		got.Holidays.National == nil || !*got.Holidays.National {
		t.Errorf("holidays read back %+v", got.Holidays)
	}
}

// TestMigrationWidensAmbiguousZones: contacts imported before migration 10 with
// the first zone of a number whose area spans several get them all; a zone the
// file set, which the number does not give, stays.
func TestMigrationWidensAmbiguousZones(t *testing.T) {
	eachBackend(t, testMigrationWidensAmbiguousZones)
}

func testMigrationWidensAmbiguousZones(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.dsn(t)
	old, err := open(ctx, path, Options{}, 8)
	if err != nil {
		t.Fatal(err)
	}
	// The campaign as that version's schema held it: today's CreateCampaign
	// writes tables made later.
	c := campaigns.Campaign{}
	if c.ID, err = old.execID(ctx, `INSERT INTO campaigns(name, caller_id, default_country, state, schedule, window_start, window_end, ladder, pacing, created_at, updated_at)
		VALUES ('c', '+551130000000', 'BR', 'draft', '{}', 0, 1439, '[]', '{}', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	for _, row := range [][2]string{
		{"+16055550100", "America/Denver"},   // the old guess for Sioux Falls
		{"+18505550100", "America/New_York"}, // the old guess for Pensacola
		{"+12125550100", "America/New_York"}, // one zone: unchanged
		{"+16055550101", "America/Phoenix"},  // set by the file: kept
		{"+5581987650001", "America/Recife"}, // DDD 81: Recife or Noronha
	} {
		if _, err := old.exec(ctx, `INSERT INTO contacts(campaign_id, phone, timezone, status, created_at, updated_at)
			VALUES (?,?,?,'pending',0,0)`, c.ID, row[0], row[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := Open(ctx, path, be.options(path, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	list, _, err := d.ListContacts(ctx, c.ID, ContactFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		tz    string
		zones []string
	}{
		"+16055550100":   {"", []string{"America/Chicago", "America/Denver", "America/North_Dakota/Center"}},
		"+18505550100":   {"", []string{"America/New_York", "America/Chicago"}},
		"+12125550100":   {"America/New_York", nil},
		"+16055550101":   {"America/Phoenix", nil},
		"+5581987650001": {"", []string{"America/Recife", "America/Noronha"}},
	}
	for _, ct := range list {
		w := want[ct.Phone]
		got := slices.Clone(ct.Zones)
		slices.Sort(got)
		wz := slices.Clone(w.zones)
		slices.Sort(wz)
		if ct.Timezone != w.tz || !slices.Equal(got, wz) {
			t.Errorf("%s: timezone %q zones %v, want %q %v", ct.Phone, ct.Timezone, ct.Zones, w.tz, w.zones)
		}
	}
}
