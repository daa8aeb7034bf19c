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
	db  *sql.DB
	now func() time.Time
	// writeMu admits one writer at a time. SQLite allows one anyway, but its busy
	// handler only polls: a writer that commits and begins again at once (an import,
	// batch after batch) would starve the others until their busy timeout. A Go
	// mutex queues them fairly (sync.Mutex hands over in FIFO order when waiters
	// starve), so engine writes go through during a million-row import.
	writeMu sync.Mutex
}

// Options tune how the database is opened.
type Options struct {
	// BusyTimeout is how long a writer waits for the lock before failing.
	BusyTimeout time.Duration
	// Now is the clock used for timestamps; time.Now when nil.
	Now func() time.Time
}

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
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10))
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer at a time is SQLite's rule; readers run beside it in WAL mode.
	sqldb.SetMaxOpenConns(8)
	sqldb.SetConnMaxIdleTime(time.Minute)
	d := &DB{db: sqldb, now: opts.Now}
	if err := d.migrate(ctx, upTo); err != nil {
		sqldb.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

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

// exec runs one write statement outside a transaction.
func (d *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	return d.db.ExecContext(ctx, q, args...)
}

// inTx runs fn in a write transaction, committing when it returns nil.
func (d *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
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

func (d *DB) nowMs() int64 { return d.now().UnixMilli() }

// IsUnavailable reports whether err is the database refusing a write for now:
// locked by another writer beyond the busy timeout, or out of room (disk full).
// Nothing of that write was kept, and the same write may succeed later.
func IsUnavailable(err error) bool {
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
