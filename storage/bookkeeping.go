package storage

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// maxTouches bounds the sessions (and, apart, the tokens) whose last use waits in
// memory to be written. Last use is informational: past the bound, uses of other
// sessions are not noted until the next flush, rather than memory growing while
// the database refuses writes.
const maxTouches = 10_000

// touches are the last uses of sessions and tokens not yet written, coalesced: a
// session used a thousand times between two flushes is one UPDATE.
type touches struct {
	mu       sync.Mutex
	sessions map[string]int64
	tokens   map[int64]int64
}

func (t *touches) init() {
	t.sessions = make(map[string]int64)
	t.tokens = make(map[int64]int64)
}

func (t *touches) session(idHash string, at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sessions[idHash]; ok || len(t.sessions) < maxTouches {
		t.sessions[idHash] = max(t.sessions[idHash], at)
	}
}

func (t *touches) token(id, at int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.tokens[id]; ok || len(t.tokens) < maxTouches {
		t.tokens[id] = max(t.tokens[id], at)
	}
}

// take empties the set and returns what it held.
func (t *touches) take() (map[string]int64, map[int64]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, k := t.sessions, t.tokens
	t.init()
	return s, k
}

// putBack returns a set whose write failed; uses noted since stay when newer.
func (t *touches) putBack(s map[string]int64, k map[int64]int64) {
	for id, at := range s {
		t.session(id, at)
	}
	for id, at := range k {
		t.token(id, at)
	}
}

// flushTouches writes the last uses noted since the previous flush, in one
// transaction; a refused write keeps them for the next.
func (d *DB) flushTouches(ctx context.Context) error {
	s, k := d.touches.take()
	if len(s) == 0 && len(k) == 0 {
		return nil
	}
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		for id, at := range s {
			if _, err := tx.ExecContext(ctx, "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?", at, id, at); err != nil {
				return err
			}
		}
		for id, at := range k {
			if _, err := tx.ExecContext(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND coalesce(last_used_at,0) < ?", at, id, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.touches.putBack(s, k)
		return fmt.Errorf("write last use of sessions and tokens: %w", err)
	}
	return nil
}

// probe writes the heartbeat row: the cheapest write that proves the database
// takes writes.
func (d *DB) probe(ctx context.Context) error {
	_, err := d.execWith(ctx, true, "UPDATE heartbeat SET at = ? WHERE id = 1", time.Now().UnixMilli())
	return err
}

// background flushes bookkeeping and probes writes until Close, then flushes once
// more. Each write gets at most the bound, so a locked database delays the loop,
// never stops it.
func (d *DB) background(probeEvery, flushEvery time.Duration) {
	defer close(d.stopped)
	ctx := context.Background()
	d.probe(ctx)
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	for {
		select {
		case <-d.stop:
			// A short last try: Close must not wait out a locked database.
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			d.flushTouches(ctx)
			cancel()
			return
		case <-probe.C:
			d.probe(ctx)
		case <-flush.C:
			d.flushTouches(ctx)
		}
	}
}

// Ready is nil when the database answers reads and takes writes: the last write
// probe succeeded recently and no write was refused (locked, disk full) within
// the last two probe intervals.
func (d *DB) Ready(ctx context.Context) error {
	if err := d.Ping(ctx); err != nil {
		return err
	}
	return d.health.ready(time.Now(), 3*d.probeEvery+d.writeWait, 2*d.probeEvery)
}
