package storage

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDueContacts asks for due contacts of a rung that holds every pending
// contact (the call rung) and of one that holds none (the template rung of a fresh
// campaign), over 100,000 pending contacts, with the rung index and, as the
// baseline in the same run, without it.
func BenchmarkDueContacts(b *testing.B) {
	ctx := context.Background()
	d, _ := openTestDB(b)
	c := newCampaign(b, d).ID
	if _, err := d.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100000)
		INSERT INTO contacts(campaign_id, phone, status, rung, next_attempt_at, created_at, updated_at)
		SELECT ?, '+55119' || (80000000 + i), 'pending', 0, i, 0, 0 FROM n`, c); err != nil {
		b.Fatal(err)
	}
	now := time.UnixMilli(200000)
	for _, withIndex := range []bool{true, false} {
		if !withIndex {
			if _, err := d.w.ExecContext(ctx, "DROP INDEX contacts_due_rung"); err != nil {
				b.Fatal(err)
			}
		}
		name := map[bool]string{true: "rung-index", false: "baseline"}[withIndex]
		for _, tc := range []struct {
			rung  string
			rungs []int
			want  int
		}{{"call-rung", []int{0}, 50}, {"empty-template-rung", []int{2}, 0}} {
			b.Run(name+"/"+tc.rung, func(b *testing.B) {
				for b.Loop() {
					due, err := d.DueContacts(ctx, c, tc.rungs, now, 50)
					if err != nil || len(due) != tc.want {
						b.Fatalf("%d due, %v", len(due), err)
					}
				}
			})
		}
	}
}
