package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestWallboardMemoryFlatUnderReads: the wallboard's history is sampled once per
// interval on the server's clock, however many supervisors read it. 5k GETs (100k
// with TURBINA_WALLBOARD_READS=100000; make test runs with -race, where each GET
// costs milliseconds), a thousand per second of the server's clock, leave one
// sample per second, and the heap where it was; an hour later the window has let
// them all go.
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
	reads, step := 5_000, time.Millisecond
	if n, err := strconv.Atoi(os.Getenv("TURBINA_WALLBOARD_READS")); err == nil && n > 0 {
		reads = n
	}
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

	samples := func() int {
		s.ui.wall.mu.Lock()
		defer s.ui.wall.mu.Unlock()
		return len(s.ui.wall.samples)
	}
	n := samples()
	span := time.Duration(reads) * step
	if limit := int(span/sampleInterval) + 2; n > limit {
		t.Errorf("history holds %d samples after %d reads over %s, want at most %d (one per %s)", n, reads, span, limit, sampleInterval)
	}
	if n < int(span/sampleInterval)/2 {
		t.Errorf("history holds %d samples over %s, want about one per %s", n, span, sampleInterval)
	}
	const allowed = 2 << 20
	if after > before+allowed {
		t.Errorf("heap grew from %.1f MiB to %.1f MiB over %d reads, want at most %d MiB more", float64(before)/(1<<20), float64(after)/(1<<20), reads, allowed>>20)
	}
	mu.Lock()
	clock = clock.Add(historyWindow)
	mu.Unlock()
	get()
	if n := samples(); n > 2 {
		t.Errorf("an hour later the history still holds %d samples, want the window to have let them go", n)
	}
	t.Logf("%d samples; heap %.1f → %.1f MiB", n, float64(before)/(1<<20), float64(after)/(1<<20))
}

// TestWallboardHistorySampledOncePerSecondHoweverOftenComputed: the history's
// one-sample-per-second rule holds for every computation of a snapshot, not only
// for GETs (which share one snapshot a second anyway): the stream and a trunk's
// change compute theirs at once, and 200 of them within two seconds of the
// server's clock add at most three samples.
func TestWallboardHistorySampledOncePerSecondHoweverOftenComputed(t *testing.T) {
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Second)
	db, _, _ := wallboardDB(t, 1, 5, start)
	var mu sync.Mutex
	clock := start
	s, _ := wallboardServer(db, func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	for range 200 {
		if _, err := s.ui.wall.snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		clock = clock.Add(10 * time.Millisecond)
		mu.Unlock()
	}
	s.ui.wall.mu.Lock()
	n := len(s.ui.wall.samples)
	s.ui.wall.mu.Unlock()
	if n > 3 {
		t.Errorf("200 snapshots over 2 s of the server's clock left %d samples, want one a second", n)
	}
}
