package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/turbina-dialer/turbina/internal/pgtest"
)

// pg is the PostgreSQL server the tests of this binary share, started by the
// first test that runs on PostgreSQL.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// backend is one database engine the behavioural tests run on.
type backend struct {
	name string
	// dsn makes a new empty database for t and returns what Open takes.
	dsn func(t testing.TB) string
}

var (
	sqliteBackend = backend{name: "sqlite", dsn: func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "data", "turbina.db")
	}}
	postgresBackend = backend{name: "postgres", dsn: func(t testing.TB) string { return pg.Database(t) }}
)

// migrated returns the DSN of a new database of b at the latest schema
// version: on PostgreSQL a copy of one migrated once, since applying every
// migration takes a second or two there.
func (b backend) migrated(t testing.TB) string {
	t.Helper()
	if b.name != "postgres" {
		return b.dsn(t)
	}
	return pg.DatabaseFrom(t, "turbina_migrated", func(url string) error {
		ctx := context.Background()
		d, err := Open(ctx, url, postgresBackend.options(url, Options{}))
		if err != nil {
			return err
		}
		// Each copy is checked against its own token key when it is opened, as
		// a new server's database is.
		_, err = d.exec(ctx, "DELETE FROM server_secrets")
		return errors.Join(err, d.Close())
	})
}

// options is opts with, on PostgreSQL, the token key a deployment there must
// configure: one per database (made from its DSN), so that two databases key
// one token apart as two deployments' keys do. On SQLite the key file beside
// the database stands in, as it does for a server.
func (b backend) options(dsn string, opts Options) Options {
	if b.name == "postgres" && opts.TokenKey == nil {
		opts.TokenKey = []byte(sha256Hex("token key of " + dsn))
	}
	return opts
}

// eachBackend runs test once on each engine, as subtests named after them: one
// set of behavioural tests holds both to the same contract.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// open opens a new database on b with opts, closed when t ends, and returns it
// with the DSN that opens it again.
func (b backend) open(t testing.TB, opts Options) (*DB, string) {
	t.Helper()
	dsn := b.migrated(t)
	d, err := Open(context.Background(), dsn, b.options(dsn, opts))
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dsn
}

// openTestDB opens a new SQLite database, for the tests of what only SQLite
// has (its file, its lock, its pragmas) and the benchmarks.
func openTestDB(t testing.TB) (*DB, string) {
	t.Helper()
	return sqliteBackend.open(t, Options{})
}
