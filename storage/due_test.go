package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// addDue adds n pending contacts to campaign c on rung, all due at next (as an
// import leaves them: one next_attempt_at), and returns their ids in order.
func addDue(t testing.TB, d *DB, c int64, rung, n int, next int64, status string) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		id, err := insertID(context.Background(), d.w, `INSERT INTO contacts(campaign_id, phone, status, rung, next_attempt_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 0, 0)`, c, fmt.Sprintf("+55%d%d%d%s%d", c, rung, next, status[:1], i), status, rung, next)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// TestDueContactsInDueOrderAcrossRungs: the due contacts of the asked rungs, and
// only those, come in (next_attempt_at, id) order up to the limit, whether they
// share one due time (an import's) or not.
func TestDueContactsInDueOrderAcrossRungs(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		d, _ := b.open(t, Options{})
		c, other := newCampaign(t, d).ID, newCampaign(t, d).ID
		rung0 := addDue(t, d, c, 0, 3, 1000, "pending")
		rung1 := addDue(t, d, c, 1, 3, 1000, "pending")
		early := addDue(t, d, c, 1, 1, 500, "pending")
		addDue(t, d, c, 2, 2, 1000, "pending")     // a rung not asked for
		addDue(t, d, c, 0, 2, 5000, "pending")     // not due yet
		addDue(t, d, c, 0, 2, 1000, "done")        // not pending
		addDue(t, d, other, 0, 2, 1000, "pending") // another campaign's
		ids := func(rungs []int, limit int) []int64 {
			t.Helper()
			due, err := d.DueContacts(ctx, c, rungs, time.UnixMilli(2000), limit)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, dc := range due {
				out = append(out, dc.Contact.ID)
			}
			return out
		}
		all := append(append(slices.Clone(early), rung0...), rung1...)
		for _, tc := range []struct {
			name  string
			rungs []int
			limit int
			want  []int64
		}{
			{"one rung", []int{0}, 10, rung0},
			{"two rungs", []int{1, 0}, 10, all},
			{"two rungs, limited", []int{0, 1}, 4, all[:4]},
			{"a rung twice", []int{0, 0}, 10, rung0},
			{"one rung, limited", []int{1}, 2, append(slices.Clone(early), rung1[0])},
		} {
			if got := ids(tc.rungs, tc.limit); !slices.Equal(got, tc.want) {
				t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}

// TestDueContactsReadOnlyTheirPage: on PostgreSQL, a page of due contacts reads
// about the page's rows from the index, not every pending contact, when an
// import gave them all one due time (before migration 0033 the index stopped at
// next_attempt_at, and the tie was sorted by id over the whole rung).
func TestDueContactsReadOnlyTheirPage(t *testing.T) {
	ctx := context.Background()
	d, _ := postgresBackend.open(t, Options{})
	c := newCampaign(t, d).ID
	for rung := range 2 {
		if _, err := d.w.ExecContext(ctx, `INSERT INTO contacts(campaign_id, phone, status, rung, next_attempt_at, created_at, updated_at)
			SELECT ?, '+5511' || (900000000 + i + ? * 100000), 'pending', ?, 1000, 0, 0 FROM generate_series(1, 3000) AS i`, c, rung, rung); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.w.ExecContext(ctx, "ANALYZE contacts"); err != nil {
		t.Fatal(err)
	}
	const limit = 20
	for _, rungs := range [][]int{{0}, {0, 1}} {
		q, args := dueQuery(c, rungs, time.UnixMilli(2000), limit)
		var plan string
		if err := d.db.QueryRowContext(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q, args...).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var nodes []struct{ Plan planNode }
		if err := json.Unmarshal([]byte(plan), &nodes); err != nil {
			t.Fatal(err)
		}
		if read := nodes[0].Plan.scanned(); read > limit*len(rungs) {
			t.Errorf("rungs %v: a page of %d read %d contacts, want at most %d:\n%s", rungs, limit, read, limit*len(rungs), plan)
		}
	}
}

// planNode is one node of PostgreSQL's EXPLAIN (FORMAT JSON).
type planNode struct {
	Type  string     `json:"Node Type"`
	Rows  float64    `json:"Actual Rows"`
	Loops float64    `json:"Actual Loops"`
	Plans []planNode `json:"Plans"`
}

// scanned is how many rows the plan's scans of tables and indexes returned.
func (n planNode) scanned() int {
	total := 0
	switch n.Type {
	case "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan":
		total = int(n.Rows * max(n.Loops, 1))
	}
	for _, p := range n.Plans {
		total += p.scanned()
	}
	return total
}
