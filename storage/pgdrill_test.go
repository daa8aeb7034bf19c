package storage

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/pgtest"
)

// TestPostgresReadyFollowsRefusedWrites: on PostgreSQL, Ready is nil while
// writes go through; an error while another process holds a row a write needs
// longer than the bound (the write fails as unavailable) and while the server
// is down (killed: writes fail as unavailable, nothing hangs); nil again once
// the lock goes and once the server is back, without reopening. Each outage is
// logged once when it starts and once when it ends.
func TestPostgresReadyFollowsRefusedWrites(t *testing.T) {
	srv := pgtest.Own(t)
	logs := &syncWriter{}
	dsn := srv.Database(t, "")
	d, err := Open(context.Background(), dsn, Options{BusyTimeout: 200 * time.Millisecond, ProbeEvery: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil)), TokenKey: postgresBackend.options(dsn, Options{}).TokenKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	waitReady(t, d, true, 20*time.Second)

	// Another process holds the heartbeat row the probe writes.
	other, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE heartbeat SET at = at + 1"); err != nil {
		t.Fatal(err)
	}
	if err := waitReady(t, d, false, 20*time.Second); !strings.Contains(err.Error(), "lock timeout") {
		t.Errorf("Ready during the lock: %v, want it to say a lock timed out", err)
	}
	start := time.Now()
	if err := d.probe(ctx); !IsUnavailable(err) {
		t.Errorf("a write during the lock: %v, want unavailable", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the write waited %v, beyond its bound", waited)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, true, 20*time.Second)

	// The server dies.
	srv.Kill()
	if err := waitReady(t, d, false, 20*time.Second); err == nil {
		t.Fatal("ready with the server down")
	}
	if err := d.probe(ctx); !IsUnavailable(err) {
		t.Errorf("a write with the server down: %v, want unavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, true, 20*time.Second)
	newCampaign(t, d) // writes go through again on the same *DB
	out := logs.String()
	if n := strings.Count(out, "refuses writes"); n != 2 {
		t.Errorf("%d lines for outages starting, want 2 (lock, server down):\n%s", n, out)
	}
	if n := strings.Count(out, "takes writes again"); n != 2 {
		t.Errorf("%d lines for outages ending, want 2:\n%s", n, out)
	}
}
