package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// snapshotTTL is how long, on the server's clock, one computed wallboard snapshot
// answers GET /api/v1/wallboard: the figures move once a second (the history's
// sampleInterval), and a snapshot reads every running campaign's stats, agents
// and the audit list, so computing one per request would make the readers' number
// the server's load.
const snapshotTTL = sampleInterval

// snapshotComputeLimit bounds one shared computation. It is not the first
// reader's context: that reader going away must not fail the others waiting.
const snapshotComputeLimit = 10 * time.Second

// sharedSnapshot is the encoded snapshot readers share, and the computation in
// flight, if any, that readers arriving meanwhile wait for instead of starting
// their own (singleflight).
type sharedSnapshot struct {
	mu       sync.Mutex
	at       time.Time // the server's clock when body was computed
	body     []byte
	inFlight *snapshotFlight
	// gen counts forgets: a computation begun before one is not kept, as it may
	// predate the news that made it.
	gen int
}

// snapshotFlight is one computation readers wait for.
type snapshotFlight struct {
	done chan struct{}
	gen  int
	body []byte
	err  error
}

// current returns the encoded snapshot of the last snapshotTTL, computing it when
// there is none; concurrent callers share one computation.
func (wb *wallboard) current(ctx context.Context) ([]byte, error) {
	now := wb.s.ui.now()
	sh := &wb.shared
	sh.mu.Lock()
	if sh.body != nil && !now.Before(sh.at) && now.Sub(sh.at) < snapshotTTL {
		body := sh.body
		sh.mu.Unlock()
		return body, nil
	}
	f := sh.inFlight
	if f == nil {
		f = &snapshotFlight{done: make(chan struct{}), gen: sh.gen}
		sh.inFlight = f
		go wb.compute(f)
	}
	sh.mu.Unlock()
	select {
	case <-f.done:
		return f.body, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// compute runs one shared computation and hands its result to its readers; a
// failed one is not kept, so the next reader tries again.
func (wb *wallboard) compute(f *snapshotFlight) {
	ctx, cancel := context.WithTimeout(context.Background(), snapshotComputeLimit)
	defer cancel()
	snap, err := wb.snapshot(ctx)
	if err == nil {
		f.body, err = encodeSnapshot(snap)
	}
	f.err = err
	sh := &wb.shared
	sh.mu.Lock()
	if sh.inFlight == f {
		sh.inFlight = nil
	}
	if err == nil && f.gen == sh.gen && (sh.body == nil || !snap.At.Before(sh.at)) {
		sh.at, sh.body = snap.At, f.body
	}
	sh.mu.Unlock()
	close(f.done)
}

// generation is the count of forgets so far, taken before a computation begins.
func (sh *sharedSnapshot) generation() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.gen
}

// offer keeps a snapshot computed elsewhere (the stream's once a second), begun
// at generation gen, for the readers, unless a newer one is kept.
func (sh *sharedSnapshot) offer(gen int, at time.Time, body []byte) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if gen == sh.gen && (sh.body == nil || !at.Before(sh.at)) {
		sh.at, sh.body = at, body
	}
}

// forget drops the kept snapshot: the next reader computes a new one. A
// computation in flight still answers those waiting for it.
func (sh *sharedSnapshot) forget() {
	sh.mu.Lock()
	sh.body = nil
	sh.gen++
	sh.mu.Unlock()
}

// encodeSnapshot is the snapshot as writeJSON writes an answer.
func encodeSnapshot(snap WallboardSnapshot) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(snap); err != nil {
		return nil, fmt.Errorf("encode the wallboard: %w", err)
	}
	return b.Bytes(), nil
}
