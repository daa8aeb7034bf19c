package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// addAttempt stores an ended attempt answered at the given instant, as the engine
// leaves it, straight in the file: the figures must come from what is kept.
func addAttempt(t *testing.T, d *DB, campaignID, contactID int64, channel campaigns.Channel, outcome campaigns.Outcome, at time.Time) int64 {
	t.Helper()
	id, err := insertID(context.Background(), d.w, `INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, outcome, created_at, answer_at, end_at)
		VALUES (?,?,?,0,'ended',?,?,?,?)`, contactID, campaignID, channel, outcome,
		at.Add(-20*time.Second).UnixMilli(), at.UnixMilli(), at.Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatalf("insert attempt: %v", err)
	}
	return id
}

func addContact(t *testing.T, d *DB, campaignID int64, phone, tz string) int64 {
	t.Helper()
	id, err := insertID(context.Background(), d.w, `INSERT INTO contacts(campaign_id, phone, timezone, created_at, updated_at) VALUES (?,?,?,0,0)`,
		campaignID, phone, tz)
	if err != nil {
		t.Fatalf("insert contact: %v", err)
	}
	return id
}

// TestAbandonmentPeriods checks the rolling 30 days, the rolling 24 h, the clock hour and
// the calendar days (in the campaign's zone, across a day boundary that UTC puts elsewhere)
// against attempts placed at known instants; templates and unanswered calls do not count.
func TestAbandonmentPeriods(t *testing.T) { eachBackend(t, testAbandonmentPeriods) }

func testAbandonmentPeriods(t *testing.T, be backend) {
	ctx := context.Background()
	d, _ := be.open(t, Options{})
	c := newCampaign(t, d)
	other := newCampaign(t, d)
	ct := addContact(t, d, c.ID, "+5511999990001", "")
	oc := addContact(t, d, other.ID, "+5511999990002", "")
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	// 01:30 on 7 December in São Paulo: 04:30 UTC.
	now := time.Date(2026, 12, 7, 1, 30, 0, 0, sp)
	for _, a := range []struct {
		ch      campaigns.Channel
		outcome campaigns.Outcome
		ago     time.Duration
	}{
		{campaigns.ChannelSIP, campaigns.OutcomeConnected, 10 * time.Minute},    // hour, 24 h, 30 d, 7 Dec
		{campaigns.ChannelSIP, campaigns.OutcomeAbandoned, 20 * time.Minute},    // hour, 24 h, 30 d, 7 Dec
		{campaigns.ChannelWhatsAppCall, campaigns.OutcomeAbandoned, time.Hour},  // 24 h, 30 d, 7 Dec (00:30)
		{campaigns.ChannelSIP, campaigns.OutcomeConnected, 2 * time.Hour},       // 24 h, 30 d, 6 Dec (23:30)
		{campaigns.ChannelSIP, campaigns.OutcomeAbandoned, 25 * time.Hour},      // 30 d, 6 Dec (00:30)
		{campaigns.ChannelSIP, campaigns.OutcomeConnected, 29 * 24 * time.Hour}, // 30 d, 8 Nov
		{campaigns.ChannelSIP, campaigns.OutcomeAbandoned, 31 * 24 * time.Hour}, // none
		{campaigns.ChannelSIP, campaigns.OutcomeNoAnswer, 5 * time.Minute},      // not answered
		{campaigns.ChannelWhatsAppTemplate, campaigns.OutcomeRead, time.Minute}, // a message
		{campaigns.ChannelSIP, campaigns.OutcomeMachine, 3 * time.Minute},       // a machine
	} {
		addAttempt(t, d, c.ID, ct, a.ch, a.outcome, now.Add(-a.ago))
	}
	addAttempt(t, d, other.ID, oc, campaigns.ChannelSIP, campaigns.OutcomeAbandoned, now.Add(-time.Minute))

	got, err := d.Abandonment(ctx, c.ID, now, sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name      string
		got       AbandonFigures
		ans, aban int
	}{
		{"hour", got.Hour, 2, 1},
		{"24 h", got.Hours24, 4, 2},
		{"30 d", got.Days30, 6, 3},
	} {
		if f.got.Answered != f.ans || f.got.Abandoned != f.aban || f.got.Rate != float64(f.aban)/float64(f.ans) {
			t.Errorf("%s: %+v, want %d answered, %d abandoned", f.name, f.got, f.ans, f.aban)
		}
	}
	if !got.HourStart.Equal(now.Truncate(time.Hour)) {
		t.Errorf("hour starts %s, want %s", got.HourStart, now.Truncate(time.Hour))
	}
	if len(got.Days) != 30 || got.Days[29].Day != "2026-12-07" || got.Days[0].Day != "2026-11-08" {
		t.Fatalf("days %v…: want 30 days from 2026-11-08 to 2026-12-07", got.Days[:1])
	}
	days := map[string][2]int{}
	for _, day := range got.Days {
		if day.Answered > 0 {
			days[day.Day] = [2]int{day.Answered, day.Abandoned}
		}
	}
	want := map[string][2]int{"2026-12-07": {3, 2}, "2026-12-06": {2, 1}, "2026-11-08": {1, 0}}
	if len(days) != len(want) {
		t.Errorf("days with answers %v, want %v", days, want)
	}
	for k, v := range want {
		if days[k] != v {
			t.Errorf("day %s: %v, want %v", k, days[k], v)
		}
	}
}

// TestRefusalsAndDials checks the refusal counts by reason and action, DNC hits and
// opt-outs (refusals and DNC entries), and the dials placed with their contacts.
func TestRefusalsAndDials(t *testing.T) { eachBackend(t, testRefusalsAndDials) }

func testRefusalsAndDials(t *testing.T, be backend) {
	ctx := context.Background()
	d, _ := be.open(t, Options{})
	c := newCampaign(t, d)
	ct := addContact(t, d, c.ID, "+5511999990001", "America/Manaus")
	addContact(t, d, c.ID, "+5511999990003", "") // on the DNC list for an opt-out, below
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		action, reasons string
		at              time.Time
	}{
		{"sip_call", "do_not_call", now.Add(-time.Hour)},
		{"whatsapp_template", "do_not_call,outside_window", now.Add(-time.Hour)},
		{"sip_call", "opted_out", now.Add(-time.Minute)},
		{"sip_call", "outside_window", now.Add(-40 * 24 * time.Hour)}, // before since
	} {
		if _, err := d.w.Exec(`INSERT INTO policy_refusals(contact_id, campaign_id, action, reasons, at) VALUES (?,?,?,?,?)`,
			ct, c.ID, r.action, r.reasons, r.at.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.w.Exec(`INSERT INTO dnc(phone, reason, created_at) VALUES ('+5511999990003', 'opt_out', ?)`, now.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	r, err := d.Refusals(ctx, c.ID, now.Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 3 || r.DNCHits != 2 || r.OptOuts != 2 || r.ByReason["outside_window"] != 1 || r.ByAction["sip_call"] != 2 || r.ByAction["whatsapp_template"] != 1 {
		t.Errorf("refusals %+v", r)
	}

	addAttempt(t, d, c.ID, ct, campaigns.ChannelSIP, campaigns.OutcomeConnected, now.Add(-time.Hour))
	addAttempt(t, d, c.ID, ct, campaigns.ChannelSIP, campaigns.OutcomeChannelDown, now.Add(-time.Hour))
	addAttempt(t, d, c.ID, ct, campaigns.ChannelWhatsAppTemplate, campaigns.OutcomeSent, now.Add(-time.Hour))
	addAttempt(t, d, c.ID, ct, campaigns.ChannelWhatsAppCall, campaigns.OutcomeNoAnswer, now.Add(-time.Minute))
	dials, err := d.DialsPlaced(ctx, c.ID, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(dials) != 2 || dials[0].Contact.Timezone != "America/Manaus" || dials[0].Contact.ID != ct || !dials[1].At.After(dials[0].At) {
		t.Errorf("dials %+v, want the SIP call and the WhatsApp call, oldest first, with the contact's zone", dials)
	}
	if _, err := d.w.Exec(`UPDATE contacts SET zones = 'America/Manaus America/Rio_Branco' WHERE id = ?`, ct); err != nil {
		t.Fatal(err)
	}
	if dials, err = d.DialsPlaced(ctx, c.ID, now.Add(-24*time.Hour)); err != nil || len(dials[0].Contact.Zones) != 2 {
		t.Errorf("dials %+v %v, want the contact's two zones", dials, err)
	}

	if n, err := d.AmbiguousZoneContacts(ctx, c.ID); err != nil || n != 1 {
		t.Errorf("ambiguous zones with one Acre/Amazonas contact: %d %v, want 1", n, err)
	}
	if _, err := d.w.Exec(`UPDATE contacts SET zones = NULL`); err != nil {
		t.Fatal(err)
	}
	if n, err := d.AmbiguousZoneContacts(ctx, c.ID); err != nil || n != 0 {
		t.Errorf("ambiguous zones without zones: %d %v, want 0", n, err)
	}
	if _, err := d.w.Exec(`UPDATE contacts SET zones = CASE id WHEN ? THEN 'America/New_York America/Chicago' ELSE 'America/Sao_Paulo' END`, ct); err != nil {
		t.Fatal(err)
	}
	if n, err := d.AmbiguousZoneContacts(ctx, c.ID); err != nil || n != 1 {
		t.Errorf("ambiguous zones: %d %v, want 1", n, err)
	}
}

// TestSafeHarbourPlayed checks the attempt's record of the message it played, and that a
// name outside the two is refused naming it.
func TestSafeHarbourPlayed(t *testing.T) { eachBackend(t, testSafeHarbourPlayed) }

func testSafeHarbourPlayed(t *testing.T, be backend) {
	ctx := context.Background()
	d, _ := be.open(t, Options{})
	c := newCampaign(t, d)
	ct := addContact(t, d, c.ID, "+5511999990001", "")
	id := addAttempt(t, d, c.ID, ct, campaigns.ChannelSIP, campaigns.OutcomeAbandoned, time.Now())
	if err := d.SetSafeHarbourPlayed(ctx, id, "music"); err == nil {
		t.Error("an unknown message was recorded")
	}
	if err := d.SetSafeHarbourPlayed(ctx, id+1, SafeHarbourBuiltin); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing attempt: %v, want not found", err)
	}
	if err := d.SetSafeHarbourPlayed(ctx, id, SafeHarbourCampaign); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := d.db.QueryRow(`SELECT safe_harbour FROM attempts WHERE id = ?`, id).Scan(&got); err != nil || got != SafeHarbourCampaign {
		t.Errorf("recorded %q (%v), want %q", got, err, SafeHarbourCampaign)
	}
}
