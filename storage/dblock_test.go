package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// lockFromOutside takes the database's write lock from a connection of its own, as
// another process would, and returns what lets it go.
func lockFromOutside(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	ctx := context.Background()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "UPDATE heartbeat SET at = at + 1"); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Errorf("release the lock: %v", err)
			}
			conn.Close()
		}
	}
	t.Cleanup(release)
	return release
}

func openWith(t *testing.T, opts Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "turbina.db")
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

// TestWriteWaitIsBoundedAndFollowsTheContext: while another process holds the
// lock, a write fails as unavailable after the bound, or sooner when its context
// ends; the same while a write of this process (an import's batch) holds it.
// Reads, policy reads in a transaction included, do not wait at all.
func TestWriteWaitIsBoundedAndFollowsTheContext(t *testing.T) {
	const bound = 2 * time.Second
	d, path := openWith(t, Options{BusyTimeout: bound})
	c := newCampaign(t, d)
	ctx := context.Background()

	b, err := d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, campaigns.Contact{Phone: "+5511987650001", Line: 2}); err != nil {
		t.Fatal(err)
	}
	held := func(name string) {
		t.Helper()
		for _, tc := range []struct {
			name    string
			timeout time.Duration
			want    func(error) bool
		}{
			{"context ends first", 300 * time.Millisecond, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
			{"bound first", time.Minute, IsUnavailable},
		} {
			cctx, cancel := context.WithTimeout(ctx, tc.timeout)
			start := time.Now()
			err := d.DeleteSession(cctx, "x")
			took := time.Since(start)
			cancel()
			limit := min(tc.timeout, bound)
			if !tc.want(err) || took < limit-50*time.Millisecond || took > limit+time.Second {
				t.Errorf("%s, %s: write took %s and failed with %v, want to fail after about %s", name, tc.name, took, err, limit)
			}
		}
		start := time.Now()
		if _, err := d.GetCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := d.PolicyFacts(ctx, 1, "+5511987650001", time.Now()); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: reads took %s", name, took)
		}
	}
	held("an import holds the lock")
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	release := lockFromOutside(t, path)
	held("another process holds the lock")
	release()
	if err := d.DeleteSession(ctx, "x"); err != nil {
		t.Fatalf("write after the lock: %v", err)
	}
}

// TestBookkeepingDoesNotWaitForTheLock: signing in by token or session while
// another process holds the lock answers at once; the last uses are written once
// it is gone, coalesced; and the set waiting is bounded.
func TestBookkeepingDoesNotWaitForTheLock(t *testing.T) {
	d, path := openWith(t, Options{BusyTimeout: 2 * time.Second, FlushEvery: 100 * time.Millisecond})
	ctx := context.Background()
	u := User{Username: "sup", DisplayName: "Sup", Role: RoleSupervisor}
	if err := d.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	tok := Token{UserID: u.ID, Name: "t", Prefix: "p"}
	if err := d.CreateToken(ctx, tester, &tok, "hash"); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Hour)
	if err := d.CreateSession(ctx, Session{IDHash: "s", UserID: u.ID, CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	release := lockFromOutside(t, path)
	start := time.Now()
	for range 50 {
		if _, err := d.UserByToken(ctx, "hash"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.UserBySession(ctx, "s", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("100 sign-ins during the lock took %s", took)
	}
	release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		toks, err := d.ListTokens(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, s, err := d.UserBySession(ctx, "s", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if toks[0].LastUsedAt != nil && !toks[0].LastUsedAt.Before(start.Truncate(time.Millisecond)) && s.LastSeenAt.After(created) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last uses not written after the lock: token %v, session %v", toks[0].LastUsedAt, s.LastSeenAt)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var tc touches
	tc.init()
	for i := range maxTouches + 100 {
		tc.session(fmt.Sprint(i), 1)
		tc.token(int64(i), 1)
	}
	tc.session("0", 5)
	s, k := tc.take()
	if len(s) != maxTouches || len(k) != maxTouches || s["0"] != 5 {
		t.Errorf("%d sessions and %d tokens waiting, session 0 at %d; want %d each, the latest use kept", len(s), len(k), s["0"], maxTouches)
	}
}

// waitReady waits until d's Ready says ready (nil) or not, as want, and returns
// what it said; the test fails when it has not within the given time.
func waitReady(t *testing.T, d *DB, want bool, within time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := d.Ready(context.Background())
		if (err == nil) == want {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready: %v, want ready %v", err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadyFollowsRefusedWrites: Ready is nil while writes go through, an error
// while another process holds the lock or the database is full, and nil again
// after; each outage is logged once when it starts and once when it ends.
func TestReadyFollowsRefusedWrites(t *testing.T) {
	logs := &syncWriter{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	d, path := openWith(t, Options{BusyTimeout: 200 * time.Millisecond, ProbeEvery: 100 * time.Millisecond, Log: log})
	ctx := context.Background()
	waitReady(t, d, true, 5*time.Second)
	release := lockFromOutside(t, path)
	if err := waitReady(t, d, false, 5*time.Second); !strings.Contains(err.Error(), "locked") {
		t.Errorf("Ready during the lock: %v, want it to say the database is locked", err)
	}
	time.Sleep(500 * time.Millisecond) // several refused probes: still one line
	release()
	waitReady(t, d, true, 5*time.Second)

	// Full: the database may not grow. The probe's one-row write still fits, so
	// only the refused writes of others tell.
	var pages int
	if err := d.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := d.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	c := newCampaign(t, d)
	var err error
	for i := 0; err == nil && i < 1000; i++ {
		err = d.RecordEvent(ctx, tester, "test.fill", "campaign", fmt.Sprint(c.ID), strings.Repeat("x", 4000))
	}
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "full") {
		t.Fatalf("writes into a full database: %v, want 'database or disk is full'", err)
	}
	if err := d.Ready(ctx); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("Ready with the disk full: %v, want it to say so", err)
	}
	if _, err := d.w.ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordEvent(ctx, tester, "test.fill", "campaign", fmt.Sprint(c.ID), "room again"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, true, 5*time.Second)
	out := logs.String()
	if n := strings.Count(out, "refuses writes"); n != 2 {
		t.Errorf("%d lines for outages starting, want 2 (lock, full):\n%s", n, out)
	}
	if n := strings.Count(out, "takes writes again"); n != 2 {
		t.Errorf("%d lines for outages ending, want 2:\n%s", n, out)
	}
}

// syncWriter is a log sink for the storage's goroutines and the test.
type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
