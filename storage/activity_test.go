package storage

import (
	"context"
	"testing"
	"time"
)

// TestActivityHistory: the wallboard's history from the attempts table: what
// happened before the hour is the base, each later dial and answer counts from
// the first step at or after it, and channel refusals and templates do not count.
func TestActivityHistory(t *testing.T) { eachBackend(t, testActivityHistory) }

func testActivityHistory(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	since := now.Add(-time.Minute)
	ms := func(d time.Duration) int64 { return since.Add(d).UnixMilli() }
	contact, err := insertID(ctx, d.w, `INSERT INTO contacts(campaign_id, phone, created_at, updated_at) VALUES (?, '+5511987650001', 0, 0)`, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		channel, outcome  string
		created, answered int64
	}{
		{"sip", "connected", ms(-time.Hour), ms(-time.Hour + 5*time.Second)},       // before: dial and answer in the base
		{"sip", "abandoned", ms(-2 * time.Second), ms(5 * time.Second)},            // dialled before, answered at +5 s
		{"sip", "no_answer", ms(15 * time.Second), 0},                              // a dial at +15 s
		{"whatsapp_call", "connected", ms(25 * time.Second), ms(30 * time.Second)}, // dial +25 s, answer +30 s
		{"sip", "channel_down", ms(20 * time.Second), 0},                           // not a dial
		{"whatsapp_template", "delivered", ms(20 * time.Second), 0},                // not a dial
		{"sip", "connected", ms(2 * time.Minute), ms(2 * time.Minute)},             // after until
	} {
		var answered any
		if a.answered != 0 {
			answered = a.answered
		}
		if _, err := d.w.ExecContext(ctx, `INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, outcome, created_at, answer_at)
			VALUES (?, ?, ?, 0, 'ended', ?, ?, ?)`, contact, c.ID, a.channel, a.outcome, a.created, answered); err != nil {
			t.Fatal(err)
		}
	}
	times, got, err := d.ActivityHistory(ctx, since, now, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 7 || !times[0].Equal(since) || !times[6].Equal(now) {
		t.Fatalf("times %v", times)
	}
	want := []Activity{
		{Dials: 2, Answered: 1, Connected: 1},               // at since: the base
		{Dials: 2, Answered: 2, Connected: 1, Abandoned: 1}, // +10 s: the abandon answered at +5 s
		{Dials: 3, Answered: 2, Connected: 1, Abandoned: 1}, // +20 s: the dial at +15 s
		{Dials: 4, Answered: 3, Connected: 2, Abandoned: 1}, // +30 s: the WhatsApp call and its answer
		{Dials: 4, Answered: 3, Connected: 2, Abandoned: 1},
		{Dials: 4, Answered: 3, Connected: 2, Abandoned: 1},
		{Dials: 4, Answered: 3, Connected: 2, Abandoned: 1},
	}
	s := got[c.ID]
	for i := range want {
		if s[i] != want[i] {
			t.Errorf("step %d (%s): %+v, want %+v", i, times[i].Sub(since), s[i], want[i])
		}
	}
	if _, _, err := d.ActivityHistory(ctx, now, since, time.Second); err == nil {
		t.Error("a reversed range was accepted")
	}
}
