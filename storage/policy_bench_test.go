package storage

import (
	"context"
	"testing"
	"time"
)

// BenchmarkPolicyFacts reads the gate's facts of one contact, as the engine does
// before every dial, over 100,000 contacts whose numbers had 300,000 attempts in
// the week before, with the per-number index (attempts_number) and, as the
// baseline in the same run, without it. A contact's DueContacts page of 50 is the
// yardstick the engine already pays per decision.
func BenchmarkPolicyFacts(b *testing.B) {
	ctx := context.Background()
	d, _ := openTestDB(b)
	c := newCampaign(b, d).ID
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	week := (7 * 24 * time.Hour).Milliseconds()
	if _, err := d.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100000)
		INSERT INTO contacts(campaign_id, phone, status, rung, next_attempt_at, created_at, updated_at)
		SELECT ?, '+55119' || (80000000 + i), 'pending', 0, i, 0, 0 FROM n`, c); err != nil {
		b.Fatal(err)
	}
	if _, err := d.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300000)
		INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, outcome, number, created_at)
		SELECT 1 + (i % 100000), ?, 'sip', 0, 'ended', 'no_answer', '+55119' || (80000001 + (i % 100000)), ?2 - (i * 7919 % ?3)
		FROM n`, c, at.UnixMilli(), week); err != nil {
		b.Fatal(err)
	}
	for _, withIndex := range []bool{true, false} {
		if !withIndex {
			if _, err := d.w.ExecContext(ctx, "DROP INDEX attempts_number"); err != nil {
				b.Fatal(err)
			}
		}
		name := map[bool]string{true: "number-index", false: "baseline"}[withIndex]
		b.Run(name+"/policy-facts", func(b *testing.B) {
			i := int64(0)
			for b.Loop() {
				id := 1 + i%100000
				i += 7
				f, err := d.PolicyFacts(ctx, id, "", at)
				if err != nil || len(f.NumberAttempts) != 3 {
					b.Fatalf("contact %d: %d attempts, %v", id, len(f.NumberAttempts), err)
				}
			}
		})
		b.Run(name+"/due-contacts-50", func(b *testing.B) {
			for b.Loop() {
				if due, err := d.DueContacts(ctx, c, []int{0}, at, 50); err != nil || len(due) != 50 {
					b.Fatalf("%d due, %v", len(due), err)
				}
			}
		})
	}
}
