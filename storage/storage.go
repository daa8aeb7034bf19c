// Package storage persists Turbina's state in SQLite (github.com/mattn/go-sqlite3, WAL
// mode), the embedded default, or in PostgreSQL (github.com/jackc/pgx/v5), behind
// repository interfaces. Each query is written once, in SQL both engines accept; the
// few clauses that differ are the dialect's, and placeholders are rebound for
// PostgreSQL where its connections are made (dialect.go).
//
// No SQL leaves this package. Every change a person makes is written together with its
// audit-log entry in one transaction, and side effects toward the outside world go
// through the outbox so that a crash never loses or repeats one.
package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
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

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// Errors callers can test with errors.Is.
var (
	// ErrNotFound means the object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the change collides with existing data (a duplicate name, …).
	ErrConflict = errors.New("conflict")
	// ErrDisposed means the attempt has a disposition already: it is kept.
	ErrDisposed = errors.New("the call has a disposition already")
)

// migrationFiles are the schema's versions: SQLite's in migrations, PostgreSQL's
// twins, with the same numbers and names, in migrations/postgres.
//
//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// DB implements every repository in this package on SQLite or PostgreSQL.
type DB struct {
	// db is the pool readers use: read-only connections (query_only on SQLite,
	// default_transaction_read_only on PostgreSQL); on SQLite they never take the
	// write lock, so in WAL mode no writer (ours or another process's) holds a
	// read up.
	db *sql.DB
	// w is the pool every write goes through: one connection on SQLite.
	w       *sql.DB
	dialect dialect
	now     func() time.Time
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
	// tokenKey is the HMAC key API token hashes are stored under, from outside
	// the database (tokenkeys.go); tokenPepper is the key an older version kept
	// in the database, which the tokens of a database upgraded from it go
	// through first (nil on a database made since).
	tokenKey, tokenPepper []byte
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
	// TokenKey is the secret API token hashes are keyed with (HMAC-SHA256),
	// kept out of the database so that a copy of the database alone cannot check
	// guessed tokens; at least MinTokenKeyLen bytes, the same for every process
	// on one database. When nil: on SQLite the key in the file TokenKeyFile
	// beside the database, made on the first start; on PostgreSQL Open fails
	// with ErrNoTokenKey.
	TokenKey []byte
}

// busyPoll is SQLite's own busy timeout on the writer: how long one try at the lock
// polls before control comes back to Go, which checks the context and the bound
// and tries again. sqlite3_interrupt does not end a busy wait, so a long SQLite
// timeout would hold a cancelled request as long as it lasts.
const busyPoll = 50 * time.Millisecond

// Open opens the database dsn names and applies every pending migration. A
// postgres:// (or postgresql://) URL is a PostgreSQL database, which must exist;
// anything else is the path of a SQLite file, created if needed, switched to WAL
// and with foreign keys on.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	return open(ctx, dsn, opts, 0)
}

// open is Open applying migrations up to version upTo (0: all).
func open(ctx context.Context, dsn string, opts Options, upTo int) (*DB, error) {
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
	open, dia := openSQLite, sqliteDialect
	if isPostgresURL(dsn) {
		open, dia = openPostgresPools, postgresDialect
	}
	r, w, err := open(dsn, opts)
	if err != nil {
		return nil, err
	}
	d := &DB{db: r, w: w, dialect: dia, now: opts.Now, gate: make(chan struct{}, dia.writers), writeWait: opts.BusyTimeout, probeEvery: opts.ProbeEvery,
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
		if err := d.loadTokenKey(ctx, opts.TokenKey, dsn); err != nil {
			r.Close()
			w.Close()
			return nil, err
		}
	}
	go d.background(opts.ProbeEvery, opts.FlushEvery)
	return d, nil
}

// openSQLite opens the SQLite file at path: its reader pool and its one writer.
func openSQLite(path string, opts Options) (r, w *sql.DB, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.FormatInt(min(opts.BusyTimeout, busyPoll).Milliseconds(), 10))
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	w, err = sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
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
	r, err = sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetConnMaxIdleTime(time.Minute)
	return r, w, nil
}

// openPostgresPools opens the PostgreSQL database at dsn: a read-only pool and the
// writers' pool. A write that waits for a row lock longer than BusyTimeout fails
// as unavailable, as a SQLite write waiting for the file's lock does.
func openPostgresPools(dsn string, opts Options) (r, w *sql.DB, err error) {
	w, err = openPostgres(dsn, map[string]string{"lock_timeout": strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)})
	if err != nil {
		return nil, nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	r, err = openPostgres(dsn, map[string]string{"default_transaction_read_only": "on"})
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	// One connection for each writer the gate admits.
	w.SetMaxOpenConns(postgresDialect.writers)
	r.SetMaxOpenConns(8)
	r.SetConnMaxIdleTime(time.Minute)
	w.SetConnMaxIdleTime(time.Minute)
	if err := w.PingContext(context.Background()); err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return r, w, nil
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
	err := d.db.QueryRowContext(ctx, "SELECT coalesce(max(version),0) FROM schema_migrations").Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrationDir is where the dialect's migrations are.
func (d *DB) migrationDir() string {
	if d.dialect == postgresDialect {
		return "migrations/postgres"
	}
	return "migrations"
}

// migrationLock is the PostgreSQL advisory lock a migration holds: processes
// started together on one database apply each migration once.
const migrationLock = 0x7475726269 // "turbi"

// migrate applies the pending migrations up to version upTo (0: all of them).
func (d *DB) migrate(ctx context.Context, upTo int) error {
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if err := d.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrationFiles, d.migrationDir()+"/*.sql")
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
			if err := d.lockMigrations(ctx, tx); err != nil {
				return err
			}
			// Another process may have applied it while this one waited.
			var done bool
			if err := tx.QueryRowContext(ctx, "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?)", version).Scan(&done); err != nil || done {
				return err
			}
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
	if vacuum && d.dialect == sqliteDialect {
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

// lockMigrations holds, on PostgreSQL, the migration lock until tx ends; SQLite's
// write transaction holds the whole file already.
func (d *DB) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if d.dialect != postgresDialect {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(migrationLock))
	return err
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
// locked by another writer beyond the busy timeout, out of room (disk full), or
// (PostgreSQL) unreachable or shutting down. Nothing of that write was kept, and
// the same write may succeed later.
func IsUnavailable(err error) bool {
	if errors.Is(err, errWriteWait) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked || se.Code == sqlite3.ErrFull
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return pe.Code != "57014" // a cancelled statement is the caller's doing
		}
		switch pe.Code {
		case pgLockNotAvailable, pgDeadlockDetected, pgSerializationFailure:
			// Rolled back whole: the same write may go through when tried again.
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, driver.ErrBadConn)
}

// PostgreSQL's error codes this package tells apart.
const (
	pgUniqueViolation      = "23505"
	pgForeignKeyViolation  = "23503"
	pgLockNotAvailable     = "55P03"
	pgDeadlockDetected     = "40P01"
	pgSerializationFailure = "40001"
	pgDiskFull             = "53100"
)

// isUniqueViolation reports whether err is the database refusing a duplicate key.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgUniqueViolation
}

// isForeignKeyViolation reports whether err is the database refusing a dangling reference.
func isForeignKeyViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintForeignKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgForeignKeyViolation
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
