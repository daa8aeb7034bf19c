package storage

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestBusyDatabaseFailsClearlyAndRecovers: another process holds the write lock
// longer than the busy timeout; a change fails with a clear error, changes nothing,
// and goes through once the lock is released.
func TestBusyDatabaseFailsClearlyAndRecovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "turbina.db")
	ctx := context.Background()
	d, err := Open(ctx, path, Options{BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=100")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	c := campaigns.Campaign{Name: "busy", CallerID: "+551130000000"}
	c.ApplyDefaults()
	err = d.CreateCampaign(ctx, tester, &c)
	// Refused either by SQLite's lock or by the bounded wait for it, whichever
	// a loaded machine reaches first: both are the store saying unavailable.
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("create while another process writes: %v, want the store unavailable", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if list, _ := d.ListCampaigns(ctx, nil); len(list) != 0 {
		t.Fatalf("a failed change left %d campaigns", len(list))
	}
	c.ID = 0
	if err := d.CreateCampaign(ctx, tester, &c); err != nil {
		t.Fatalf("create after the lock was released: %v", err)
	}
	if err := d.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFullDiskFailsClearlyAndRecovers: the database cannot grow (SQLite reports
// "database or disk is full", as on a full disk) in the middle of an import; the
// import fails with that error, keeps only whole batches, and once there is room
// again the same file imports the rest.
func TestFullDiskFailsClearlyAndRecovers(t *testing.T) {
	d, _ := openTestDB(t)
	ctx := context.Background()
	// One connection, so the page limit below binds every statement.
	d.w.SetMaxOpenConns(1)
	c := newCampaign(t, d)
	var pages int
	if err := d.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := d.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages+40)); err != nil {
		t.Fatal(err)
	}
	b, err := d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	committed := 0
	for i := range 20000 {
		ct := campaigns.Contact{Phone: fmt.Sprintf("+55119%08d", 85000000+i), Name: strings.Repeat("x", 200), Line: i + 2}
		if _, failed = b.Add(ctx, ct); failed != nil {
			break
		}
		if (i+1)%100 == 0 {
			if failed = b.Flush(ctx); failed != nil {
				break
			}
			committed = i + 1
		}
	}
	if committed == 0 {
		t.Fatal("the database was full before a single batch: the drill proves nothing")
	}
	if failed == nil || !strings.Contains(failed.Error(), "full") {
		t.Fatalf("import into a full database: %v, want a 'database or disk is full' error", failed)
	}
	im, err := b.Finish(ctx, failed)
	if err != nil {
		// Closing the record needs room too; it is closed at the next start.
		if !strings.Contains(err.Error(), "full") {
			t.Fatalf("finish: %v", err)
		}
	} else if im.State != "failed" || im.Imported != committed {
		t.Errorf("import record %+v, want failed with the %d committed rows", im, committed)
	}
	if _, total, err := d.ListContacts(ctx, c.ID, ContactFilter{}); err != nil || total != committed {
		t.Errorf("%d contacts kept, want the %d of whole batches (%v)", total, committed, err)
	}
	if err := d.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	// Room again: the rest goes in.
	if _, err := d.w.ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	b, err = d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, campaigns.Contact{Phone: "+5511999999999", Line: 2}); err != nil {
		t.Fatal(err)
	}
	if im, err := b.Finish(ctx, nil); err != nil || im.Imported != 1 {
		t.Fatalf("import after room came back: %+v %v", im, err)
	}
}
