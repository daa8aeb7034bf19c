package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// gatedStore holds every campaign list (the start of a wallboard snapshot) until
// the test opens the gate, and counts them.
type gatedStore struct {
	storage.Store
	lists atomic.Int32
	gate  chan struct{}
}

func (g *gatedStore) ListCampaigns(ctx context.Context, ids []int64) ([]campaigns.Campaign, error) {
	g.lists.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.ListCampaigns(ctx, ids)
}

// TestWallboardGETSharesOneSnapshotPerSecond: readers of GET /api/v1/wallboard
// in the same second of the server's clock get one snapshot, computed once even
// when they arrive while it is being computed; the first reader going away does
// not fail the others; the next second, or a trunk's change, brings a new one.
func TestWallboardGETSharesOneSnapshotPerSecond(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	db, _, _ := wallboardDB(t, 2, 20, start)
	store := &gatedStore{Store: db, gate: make(chan struct{})}
	var mu sync.Mutex
	clock := start
	s := New(store, slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Version: "test"})
	s.ui.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	token, err := EnsureAdmin(context.Background(), db, "")
	if err != nil {
		t.Fatal(err)
	}
	get := func(ctx context.Context) (int, []byte) {
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/wallboard", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	waitLists := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); store.lists.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d snapshots began, want %d", store.lists.Load(), n)
			}
		}
	}

	// The first reader starts the snapshot, then goes away while it is computed.
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstDone := make(chan int, 1)
	go func() { code, _ := get(firstCtx); firstDone <- code }()
	waitLists(1)
	cancelFirst()
	// Twenty more arrive while it is being computed, and wait for it.
	const readers = 20
	var wg sync.WaitGroup
	codes, bodies := make([]int, readers), make([][]byte, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i] = get(context.Background())
		}()
	}
	time.Sleep(200 * time.Millisecond) // let them all reach the wait
	close(store.gate)
	wg.Wait()
	if code := <-firstDone; code == http.StatusOK {
		t.Errorf("the reader that went away got %d", code)
	}
	if n := store.lists.Load(); n != 1 {
		t.Errorf("%d snapshots computed for %d concurrent readers, want 1", n, readers+1)
	}
	for i := range readers {
		if codes[i] != http.StatusOK || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("reader %d: %d %.200s; want 200 and the shared snapshot %.200s", i, codes[i], bodies[i], bodies[0])
		}
	}
	var first WallboardSnapshot
	if err := decodeBytes(bodies[0], &first); err != nil || !first.At.Equal(start) || len(first.Campaigns) != 2 {
		t.Fatalf("snapshot %+v (%v), want the two campaigns at %s", first, err, start)
	}

	// Later in the same second: the same snapshot, nothing computed.
	advance(900 * time.Millisecond)
	if code, body := get(context.Background()); code != http.StatusOK || !bytes.Equal(body, bodies[0]) {
		t.Errorf("900 ms later: %d, a new snapshot %t; want the shared one", code, !bytes.Equal(body, bodies[0]))
	}
	// The next second: a new one.
	advance(100 * time.Millisecond)
	_, body := get(context.Background())
	var next WallboardSnapshot
	if err := decodeBytes(body, &next); err != nil || !next.At.Equal(start.Add(time.Second)) {
		t.Errorf("a second later: snapshot at %s (%v), want %s", next.At, err, start.Add(time.Second))
	}
	// A trunk's change is shown at once, in the same second.
	s.ui.wall.poke()
	get(context.Background())
	if n := store.lists.Load(); n != 3 {
		t.Errorf("%d snapshots computed, want 3 (the first, the next second's, the one after the trunk's change)", n)
	}
}

// decodeBytes decodes a JSON answer.
func decodeBytes(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %.200s: %w", b, err)
	}
	return nil
}

// BenchmarkWallboard is GET /api/v1/wallboard's cost as readers see it, 20
// running campaigns: computed for every request (as before the shared snapshot)
// against shared per second of the server's clock, both on parallel readers,
// and the whole GET (authentication and the answer's copy included).
func BenchmarkWallboard(b *testing.B) {
	db, _, _ := wallboardDB(b, 20, 2000, time.Now())
	s, _ := wallboardServer(db, time.Now)
	ctx := context.Background()
	b.Run("per_request", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				snap, err := s.ui.wall.snapshot(ctx)
				if err == nil {
					_, err = encodeSnapshot(snap)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("shared", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.ui.wall.current(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	token, err := EnsureAdmin(ctx, db, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("GET", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/wallboard", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Error(errors.New(rec.Body.String()))
					return
				}
			}
		})
	})
}
