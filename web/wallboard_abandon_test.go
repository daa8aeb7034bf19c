package web

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// abandonCounter is a Store that counts the abandonment reads per campaign.
type abandonCounter struct {
	storage.Store
	mu    sync.Mutex
	reads map[int64]int
}

func (s *abandonCounter) Abandonment(ctx context.Context, campaignID int64, now time.Time, loc *time.Location) (storage.Abandonment, error) {
	s.mu.Lock()
	s.reads[campaignID]++
	s.mu.Unlock()
	return s.Store.Abandonment(ctx, campaignID, now, loc)
}

func (s *abandonCounter) count(campaignID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[campaignID]
}

// wallboardDB is a database file with n running campaigns, each with one contact
// and answered calls spread over the last 30 days before now, every tenth abandoned.
func wallboardDB(tb testing.TB, n, answered int, now time.Time) (*storage.DB, string, []int64) {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "turbina.db")
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	raw, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	actor := storage.Actor{Username: "test"}
	var ids []int64
	for i := range n {
		c := campaigns.Campaign{Name: fmt.Sprintf("wall %d", i), CallerID: "+551130000000"}
		c.ApplyDefaults()
		if err := db.CreateCampaign(ctx, actor, &c); err != nil {
			tb.Fatal(err)
		}
		b, err := db.BeginImport(ctx, actor, c.ID)
		if err != nil {
			tb.Fatal(err)
		}
		if reject, err := b.Add(ctx, campaigns.Contact{Phone: fmt.Sprintf("+55119876%05d", i), Timezone: "UTC", Line: 2}); err != nil || reject != "" {
			tb.Fatal(reject, err)
		}
		if _, err := b.Finish(ctx, nil); err != nil {
			tb.Fatal(err)
		}
		if _, err := db.UpdateCampaign(ctx, actor, c.ID, "test", func(c *campaigns.Campaign) error {
			c.State = campaigns.StateRunning
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
		var contactID int64
		if err := raw.QueryRow(`SELECT id FROM contacts WHERE campaign_id = ?`, c.ID).Scan(&contactID); err != nil {
			tb.Fatal(err)
		}
		tx, err := raw.Begin()
		if err != nil {
			tb.Fatal(err)
		}
		for k := range answered {
			at := now.Add(-time.Duration(k+1) * 30 * 24 * time.Hour / time.Duration(answered+1))
			addAttempt(tb, tx, contactID, c.ID, k%10 == 0, at)
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	return db, path, ids
}

// addAttempt writes one answered SIP call, abandoned or connected, answered at at.
func addAttempt(tb testing.TB, tx interface {
	Exec(string, ...any) (sql.Result, error)
}, contactID, campaignID int64, abandoned bool, at time.Time) {
	tb.Helper()
	outcome := campaigns.OutcomeConnected
	if abandoned {
		outcome = campaigns.OutcomeAbandoned
	}
	if _, err := tx.Exec(`INSERT INTO attempts(contact_id, campaign_id, channel, rung, state, outcome, created_at, answer_at, end_at)
		VALUES (?, ?, 'sip', 0, 'ended', ?, ?, ?, ?)`, contactID, campaignID, string(outcome),
		at.Add(-10*time.Second).UnixMilli(), at.UnixMilli(), at.Add(time.Minute).UnixMilli()); err != nil {
		tb.Fatal(err)
	}
}

// wallboardServer is a server over db whose abandonment reads are counted and
// whose wallboard reads the clock now returns.
func wallboardServer(db *storage.DB, now func() time.Time) (*Server, *abandonCounter) {
	counter := &abandonCounter{Store: db, reads: map[int64]int{}}
	s := New(counter, slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Version: "test"})
	s.ui.now = now
	return s, counter
}

func TestWallboardReadsAbandonmentOncePerWindow(t *testing.T) {
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Second)
	db, path, ids := wallboardDB(t, 3, 20, start)
	var mu sync.Mutex
	clock := start
	s, counter := wallboardServer(db, func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	setClock := func(at time.Time) { mu.Lock(); clock = at; mu.Unlock() }
	read := func() WallboardSnapshot {
		t.Helper()
		snap, err := s.ui.wall.snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	abandonment := func(snap WallboardSnapshot, id int64) WallboardAbandonment {
		t.Helper()
		for _, c := range snap.Campaigns {
			if c.ID == id && c.Abandonment != nil {
				return *c.Abandonment
			}
		}
		t.Fatalf("campaign %d has no abandonment on the wallboard", id)
		return WallboardAbandonment{}
	}
	wantReads := func(step string, want int) {
		t.Helper()
		for _, id := range ids {
			if got := counter.count(id); got != want {
				t.Errorf("%s: campaign %d's abandonment read %d times, want %d", step, id, got, want)
			}
		}
	}

	// A wallboard read every second for 14 s: one read of each campaign's 30 days.
	first := read()
	for i := 1; i < 15; i++ {
		setClock(start.Add(time.Duration(i) * time.Second))
		if got := abandonment(read(), ids[0]); got != abandonment(first, ids[0]) {
			t.Errorf("at %d s the figures are %+v, want those read first %+v", i, got, abandonment(first, ids[0]))
		}
	}
	wantReads("within 15 s", 1)
	if a := abandonment(first, ids[0]); a.Days30.Answered != 20 || a.Days30.Abandoned != 2 {
		t.Errorf("30 days %+v, want 20 answered and 2 abandoned", a.Days30)
	}

	// The window over: read again.
	setClock(start.Add(15 * time.Second))
	read()
	wantReads("at 15 s", 2)

	// A new abandon in one campaign: its figures are read again at once, the
	// others' stay.
	raw, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	var contactID int64
	if err := raw.QueryRow(`SELECT id FROM contacts WHERE campaign_id = ?`, ids[1]).Scan(&contactID); err != nil {
		t.Fatal(err)
	}
	now := start.Add(16 * time.Second)
	addAttempt(t, raw, contactID, ids[1], true, now.Add(-time.Second))
	setClock(now)
	if a := abandonment(read(), ids[1]); a.Days30.Abandoned != 3 || a.Today.Abandoned == 0 {
		t.Errorf("after a new abandon: %+v, want 3 abandoned in 30 days, one today", a)
	}
	if got := counter.count(ids[1]); got != 3 {
		t.Errorf("campaign with a new abandon: read %d times, want 3", got)
	}
	for _, id := range []int64{ids[0], ids[2]} {
		if got := counter.count(id); got != 2 {
			t.Errorf("campaign %d with no new call: read %d times, want 2", id, got)
		}
	}
}

// BenchmarkWallboardSnapshot computes the wallboard with running campaigns of
// 2,000 answered calls each over 30 days, with the abandonment kept 15 s (cached)
// and read every time (uncached, as before the cache).
func BenchmarkWallboardSnapshot(b *testing.B) {
	for _, n := range []int{5, 20} {
		db, _, _ := wallboardDB(b, n, 2000, time.Now())
		for _, mode := range []struct {
			name string
			ttl  time.Duration
		}{{"uncached", 0}, {"cached", abandonTTL}} {
			b.Run(fmt.Sprintf("campaigns=%d/%s", n, mode.name), func(b *testing.B) {
				s, _ := wallboardServer(db, time.Now)
				s.ui.wall.abandon.ttl = mode.ttl
				ctx := context.Background()
				for b.Loop() {
					if _, err := s.ui.wall.snapshot(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
