// Package storage persists Turbina's state in SQLite (github.com/mattn/go-sqlite3, WAL
// mode) behind repository interfaces that a PostgreSQL backend can also satisfy.
//
// No SQL leaves this package. Every change a person makes is written together with its
// audit-log entry in one transaction, and side effects toward the outside world go
// through the outbox so that a crash never loses or repeats one.
package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Errors callers can test with errors.Is.
var (
	// ErrNotFound means the object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the change collides with existing data (a duplicate name, …).
	ErrConflict = errors.New("conflict")
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is the SQLite implementation of every repository in this package.
type DB struct {
	// db is the pool readers use: query_only connections that never take the
	// write lock, so in WAL mode no writer (ours or another process's) holds a
	// read up.
	db *sql.DB
	// w is the single connection every write goes through.
	w   *sql.DB
	now func() time.Time
	// gate admits one writer at a time. SQLite allows one anyway, but its busy
	// handler only polls: a writer that commits and begins again at once (an import,
	// batch after batch) would starve the others until their busy timeout. Goroutines
	// waiting on a channel are served in order, so engine writes go through during a
	// million-row import; and unlike a mutex, the wait ends with the caller's context.
	gate chan struct{}
	// writeWait bounds how long a write waits for the lock, ours and SQLite's.
	writeWait time.Duration
	// probeEvery is the write probe's interval, which Ready's limits follow.
	probeEvery time.Duration
	log        *slog.Logger
	health     writeHealth
	touches    touches
	// tokenKey is the HMAC key API token hashes are stored under, read (or made)
	// once at Open.
	tokenKey []byte
	// stop ends the background loop (bookkeeping flushes and the write probe);
	// stopped is closed when it has.
	stop    chan struct{}
	stopped chan struct{}
	closing sync.Once
}

// Options tune how the database is opened.
type Options struct {
	// BusyTimeout is how long a write waits for the lock (held by another write of
	// this process or by another process) before failing with an error that
	// IsUnavailable recognises; the caller's context may end the wait sooner.
	// 5 s when zero.
	BusyTimeout time.Duration
	// Now is the clock used for timestamps; time.Now when nil.
	Now func() time.Time
	// ProbeEvery is how often a one-row write checks that the database takes
	// writes, for Ready; 5 s when zero.
	ProbeEvery time.Duration
	// FlushEvery is how often the last use of sessions and tokens is written;
	// 5 s when zero.
	FlushEvery time.Duration
	// Log receives one line when the database starts refusing writes and one when
	// it takes them again; slog.Default() when nil.
	Log *slog.Logger
}

// busyPoll is SQLite's own busy timeout on the writer: how long one try at the lock
// polls before control comes back to Go, which checks the context and the bound
// and tries again. sqlite3_interrupt does not end a busy wait, so a long SQLite
// timeout would hold a cancelled request as long as it lasts.
const busyPoll = 50 * time.Millisecond

// Open opens (creating if needed) the SQLite database at path, switches it to WAL,
// turns foreign keys on and applies every pending migration.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	return open(ctx, path, opts, 0)
}

// open is Open applying migrations up to version upTo (0: all).
func open(ctx context.Context, path string, opts Options, upTo int) (*DB, error) {
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProbeEvery == 0 {
		opts.ProbeEvery = 5 * time.Second
	}
	if opts.FlushEvery == 0 {
		opts.FlushEvery = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.FormatInt(min(opts.BusyTimeout, busyPoll).Milliseconds(), 10))
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	// Readers: the file is in WAL mode already (the writer's first connection
	// switched it), deferred transactions are read snapshots, and query_only
	// makes a write sent here by mistake fail instead of taking the lock.
	q = url.Values{}
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10))
	q.Set("_txlock", "deferred")
	q.Set("_query_only", "true")
	r, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetConnMaxIdleTime(time.Minute)
	d := &DB{db: r, w: w, now: opts.Now, gate: make(chan struct{}, 1), writeWait: opts.BusyTimeout, probeEvery: opts.ProbeEvery,
		log: opts.Log, stop: make(chan struct{}), stopped: make(chan struct{})}
	d.touches.init()
	// The writer's connection first: it creates the file and turns WAL on, which
	// a query_only reader could not.
	if err := d.migrate(ctx, upTo); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if upTo == 0 || upTo >= tokenKeyVersion {
		if err := d.loadTokenKey(ctx); err != nil {
			r.Close()
			w.Close()
			return nil, err
		}
	}
	go d.background(opts.ProbeEvery, opts.FlushEvery)
	return d, nil
}

// Close writes the bookkeeping still in memory (briefly: a locked database does
// not hold the stop up) and closes the database.
func (d *DB) Close() error {
	d.closing.Do(func() { close(d.stop) })
	<-d.stopped
	return errors.Join(d.db.Close(), d.w.Close())
}

// Ping checks that the database answers; readiness probes use it.
func (d *DB) Ping(ctx context.Context) error {
	var one int
	if err := d.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// SchemaVersion is the highest migration applied.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := d.db.QueryRowContext(ctx, "SELECT ifnull(max(version),0) FROM schema_migrations").Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrate applies the pending migrations up to version upTo (0: all of them).
func (d *DB) migrate(ctx context.Context, upTo int) error {
	if _, err := d.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	current, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	vacuum := false
	for _, name := range names {
		base := filepath.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its version number", base)
		}
		if version <= current || (upTo > 0 && version > upTo) {
			continue
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", base, err)
		}
		err = d.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			if step := migrationStep(version); step != nil {
				v, err := step(ctx, tx)
				if err != nil {
					return err
				}
				vacuum = vacuum || v
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?,?,?)",
				version, base, d.now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", base, err)
		}
	}
	if vacuum {
		// What a migration removed (secrets in clear) lingers in free space and
		// old WAL frames: rebuilt, and the WAL emptied, the file holds none of it.
		if _, err := d.exec(ctx, "VACUUM"); err != nil {
			return fmt.Errorf("vacuum after migrations: %w", err)
		}
		if _, err := d.exec(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return fmt.Errorf("checkpoint after migrations: %w", err)
		}
	}
	return nil
}

// migrationStep returns the Go part of a migration, run after its SQL in the same
// transaction, for what SQL alone cannot do; nil for most. A step that removed
// data that must not stay in the file asks for a VACUUM.
func migrationStep(version int) func(context.Context, *sql.Tx) (vacuum bool, err error) {
	switch version {
	case 8:
		return hashPhoneSecrets
	case 10:
		return widenAmbiguousZones
	}
	return nil
}

func (d *DB) nowMs() int64 { return d.now().UnixMilli() }

// IsUnavailable reports whether err is the database refusing a write for now:
// locked by another writer beyond the busy timeout, or out of room (disk full).
// Nothing of that write was kept, and the same write may succeed later.
func IsUnavailable(err error) bool {
	if errors.Is(err, errWriteWait) {
		return true
	}
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked || se.Code == sqlite3.ErrFull)
}

// isUniqueViolation reports whether err is SQLite refusing a duplicate key.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique
}

// isForeignKeyViolation reports whether err is SQLite refusing a dangling reference.
func isForeignKeyViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}

func notFoundIfNoRows(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

func msToTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nullMsToTime(ms sql.NullInt64) *time.Time {
	if !ms.Valid {
		return nil
	}
	t := msToTime(ms.Int64)
	return &t
}
