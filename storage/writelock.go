package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// errWriteWait is a write that waited its bound for the lock; IsUnavailable
// recognises it.
var errWriteWait = errors.New("the database is busy with another write")

// acquire waits for the write gate until ctx ends or the bound passes. The
// returned deadline is when waits for SQLite's lock must end too.
func (d *DB) acquire(ctx context.Context) (deadline time.Time, release func(), err error) {
	deadline = time.Now().Add(d.writeWait)
	select {
	case d.gate <- struct{}{}:
		return deadline, func() { <-d.gate }, nil
	default:
	}
	t := time.NewTimer(d.writeWait)
	defer t.Stop()
	select {
	case d.gate <- struct{}{}:
		return deadline, func() { <-d.gate }, nil
	case <-ctx.Done():
		return deadline, nil, fmt.Errorf("wait for the write lock: %w", ctx.Err())
	case <-t.C:
		err := fmt.Errorf("%w for more than %s", errWriteWait, d.writeWait)
		d.health.note(d.log, err, false)
		return deadline, nil, err
	}
}

// retryBusy runs try until it succeeds, fails otherwise than with SQLite's busy
// error, ctx ends or deadline passes. try must change nothing when it is busy: it
// is a BEGIN IMMEDIATE or a single statement, which take the lock before any work.
func retryBusy(ctx context.Context, deadline time.Time, try func() error) error {
	for {
		start := time.Now()
		err := try()
		if !isBusy(err) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		// SQLite's own poll (busyPoll) has slept already, unless it was not asked
		// (a busy error it does not wait on): then a short pause, not a spin.
		pause := time.Duration(0)
		if time.Since(start) < busyPoll/2 {
			pause = 10 * time.Millisecond
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

// exec runs one write statement outside a transaction.
func (d *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.execWith(ctx, false, q, args...)
}

// execWith is exec; a probe's success does not prove that larger writes fit, so it
// ends only an episode of a busy database, not one of a full disk.
func (d *DB) execWith(ctx context.Context, probe bool, q string, args ...any) (sql.Result, error) {
	if fenceFrom(ctx) != nil {
		// The fence is checked, and its lease's row share-locked, in the
		// statement's own transaction.
		var res sql.Result
		err := d.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			res, err = tx.ExecContext(ctx, q, args...)
			return err
		})
		return res, err
	}
	deadline, release, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var res sql.Result
	err = retryBusy(ctx, deadline, func() error {
		var err error
		res, err = d.w.ExecContext(ctx, q, args...)
		return err
	})
	d.health.note(d.log, err, probe)
	return res, err
}

// execID runs one INSERT outside a transaction and returns the id of the row it
// made (insertID); one round trip to a PostgreSQL server, where BEGIN and
// COMMIT around it would be two more.
func (d *DB) execID(ctx context.Context, q string, args ...any) (int64, error) {
	if fenceFrom(ctx) != nil {
		var id int64
		err := d.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			id, err = insertID(ctx, tx, q, args...)
			return err
		})
		return id, err
	}
	deadline, release, err := d.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	var id int64
	err = retryBusy(ctx, deadline, func() error {
		var err error
		id, err = insertID(ctx, d.w, q, args...)
		return err
	})
	d.health.note(d.log, err, false)
	return id, err
}

// inTx runs fn in a write transaction, committing when it returns nil.
func (d *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	deadline, release, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	err = d.inTxLocked(ctx, deadline, fn)
	d.health.note(d.log, err, false)
	return err
}

func (d *DB) inTxLocked(ctx context.Context, deadline time.Time, fn func(*sql.Tx) error) error {
	tx, err := d.beginLocked(ctx, ctx, deadline)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// beginLocked begins the writer's transaction (BEGIN IMMEDIATE: the lock is taken
// here, so the statements after it are never busy) with txCtx, waiting for the
// lock as long as ctx and deadline allow. When ctx carries a fence (WithFence),
// the transaction's first statement checks it, and no transaction is begun when
// the fence fails.
func (d *DB) beginLocked(ctx, txCtx context.Context, deadline time.Time) (*sql.Tx, error) {
	var tx *sql.Tx
	err := retryBusy(ctx, deadline, func() error {
		var err error
		tx, err = d.w.BeginTx(txCtx, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if f := fenceFrom(ctx); f != nil {
		if err := d.checkFence(ctx, tx, *f); err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	return tx, nil
}

// writeHealth follows episodes of refused writes: it logs the first refusal and
// the first success after, with the count in between, and answers Ready.
type writeHealth struct {
	mu sync.Mutex
	// failing is an episode in progress: since when, how many refused, the last
	// refusal and whether it was a full disk.
	failing  bool
	since    time.Time
	refused  int
	lastErr  error
	full     bool
	lastFail time.Time
	// lastProbe is when the write probe last succeeded; probeErr its last failure.
	lastProbe time.Time
	probeErr  error
}

// note records the result of one write. Errors other than the database's refusal
// (a constraint, a cancelled request) say nothing about its health.
func (h *writeHealth) note(log logger, err error, probe bool) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if probe {
		h.probeErr = err
		if err == nil {
			h.lastProbe = now
		}
	}
	switch {
	case err == nil:
		if h.failing && (!probe || !h.full) {
			log.Info("storage: the database takes writes again", "refused", h.refused,
				"for", now.Sub(h.since).Round(time.Millisecond), "last_err", h.lastErr)
			h.failing, h.refused, h.full = false, 0, false
		}
	case IsUnavailable(err) && !errors.Is(err, context.Canceled):
		// A write whose caller gave up (a run stopped, its lease lost) says
		// nothing of the database either, even when the driver's connect or
		// wait was what it cut short.
		h.lastFail, h.lastErr = now, err
		h.refused++
		h.full = h.full || isFull(err)
		if !h.failing {
			h.failing, h.since = true, now
			log.Warn("storage: the database refuses writes; they fail until it takes them again", "err", err)
		}
	}
}

// logger is the part of *slog.Logger writeHealth uses.
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

func isFull(err error) bool {
	var se sqlite3.Error
	var pe *pgconn.PgError
	return errors.As(err, &se) && se.Code == sqlite3.ErrFull || errors.As(err, &pe) && pe.Code == pgDiskFull
}

// ready is nil when the last probe succeeded within stale and no write was
// refused within hold; otherwise why not.
func (h *writeHealth) ready(now time.Time, stale, hold time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.failing && now.Sub(h.lastFail) < hold:
		return fmt.Errorf("writes refused since %s (%d refused): %w", h.since.UTC().Format(time.RFC3339), h.refused, h.lastErr)
	case h.probeErr != nil:
		return fmt.Errorf("write probe: %w", h.probeErr)
	case now.Sub(h.lastProbe) > stale:
		return fmt.Errorf("no write probe succeeded since %s", h.lastProbe.UTC().Format(time.RFC3339))
	}
	return nil
}
