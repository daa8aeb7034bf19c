package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestWallboardMemoryFlatUnderReads: the wallboard's history is sampled once per
// interval on the server's clock, however many supervisors read it. 100k GETs over
// 5,000 s of the server's clock (so the hour's window is crossed) leave at most one
// sample per second of the last hour, and the heap where it was.
func TestWallboardMemoryFlatUnderReads(t *testing.T) {
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Second)
	db, _, _ := wallboardDB(t, 1, 5, start)
	var mu sync.Mutex
	clock := start
	s, _ := wallboardServer(db, func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	token, err := EnsureAdmin(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	get := func() {
		t.Helper()
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/wallboard", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /api/v1/wallboard: %d %s", rec.Code, rec.Body)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const reads, step = 100_000, 50 * time.Millisecond
	// Bounded in time too: a machine too loaded to finish fails, it does not hang.
	deadline := time.Now().Add(4 * time.Minute)
	get() // the first read allocates what every read shares
	before := heap()
	for i := range reads {
		mu.Lock()
		clock = clock.Add(step)
		mu.Unlock()
		get()
		if i%1000 == 0 && time.Now().After(deadline) {
			t.Fatalf("only %d reads before the deadline", i)
		}
	}
	after := heap()

	s.ui.wall.mu.Lock()
	n := len(s.ui.wall.samples)
	s.ui.wall.mu.Unlock()
	if limit := int(historyWindow/sampleInterval) + 1; n > limit {
		t.Errorf("history holds %d samples after %d reads, want at most %d (one per %s of the last hour)", n, reads, limit, sampleInterval)
	}
	if n < int(historyWindow/sampleInterval)/2 {
		t.Errorf("history holds %d samples, want about one per %s of the last hour", n, sampleInterval)
	}
	const allowed = 8 << 20
	if after > before+allowed {
		t.Errorf("heap grew from %.1f MiB to %.1f MiB over %d reads, want at most %d MiB more", float64(before)/(1<<20), float64(after)/(1<<20), reads, allowed>>20)
	}
	t.Logf("%d samples; heap %.1f → %.1f MiB", n, float64(before)/(1<<20), float64(after)/(1<<20))
}
