package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// dialect is what differs between the two engines once the SQL is written in the
// forms both accept (coalesce, ON CONFLICT, RETURNING, CASE sums): the few
// clauses one of them lacks.
type dialect struct {
	// name is "sqlite" or "postgres".
	name string
	// lockRow ends a SELECT that reads a row a transaction is about to change on
	// the strength of what it read (a contact's place on its ladder): PostgreSQL
	// lets another process change it meanwhile unless the row is locked; SQLite's
	// single writer has it locked already.
	lockRow string
	// claimRows ends a SELECT that picks rows to claim (due outbox messages): rows
	// another process is claiming are skipped, not waited for and claimed twice.
	claimRows string
	// shareRow ends a SELECT that reads a row whose value a write depends on
	// (a campaign's lease, for a fenced write): PostgreSQL keeps others from
	// changing the row until the transaction ends; SQLite's single writer has it
	// locked already.
	shareRow string
	// leaseTx begins a transaction that locks a campaign's lease row (a fenced
	// write, a lease's own change): PostgreSQL ends it, and frees the row, if
	// it stays idle for leaseIdle, so that a node frozen mid-transaction (a
	// stopped process, a paused VM) does not hold the campaign's take-over
	// back after its lease expired. SQLite's single host has no such node.
	leaseTx string
	// leaseTxColumn is leaseTx as an SQL expression, for a SELECT that locks
	// the lease's row to return it (the fence's check: no extra round trip).
	leaseTxColumn string
	// clockMs is the database's clock as an SQL expression in Unix milliseconds:
	// the one clock every node on one database agrees on (see leases.go).
	// PostgreSQL's clock_timestamp, not now(), which stands still at the start of
	// a transaction that may have waited on a lock since.
	clockMs string
	// writers is how many write transactions of this process run at once. SQLite
	// takes one writer at a time anyway. On PostgreSQL a write is a few round
	// trips to the server, and one at a time would cap the process at a few
	// hundred writes a second: concurrent writers are kept apart by the rows
	// they lock (lockRow, claimRows, conditional UPDATEs).
	writers int
}

// leaseIdle is how long a transaction holding a campaign's lease row may stay
// idle before PostgreSQL ends it (dialect.leaseTx): well below any lease's
// life, and far above the milliseconds between a write's statements.
const leaseIdle = 2 * time.Second

var (
	sqliteDialect = dialect{name: "sqlite", writers: 1, leaseTxColumn: "1",
		clockMs: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"}
	postgresDialect = dialect{name: "postgres", lockRow: " FOR UPDATE", claimRows: " FOR UPDATE SKIP LOCKED", shareRow: " FOR SHARE", writers: 8,
		leaseTx:       fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", leaseIdle.Milliseconds()),
		leaseTxColumn: fmt.Sprintf("set_config('idle_in_transaction_session_timeout', '%d', true)", leaseIdle.Milliseconds()),
		clockMs:       "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"}
)

// isPostgresURL reports whether dsn names a PostgreSQL database rather than a
// SQLite file.
func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openPostgres opens a pool on the PostgreSQL database at dsn whose connections
// take this package's SQL: SQLite's placeholders (? and ?N) are rebound to $N,
// and booleans, which the schema keeps as integers on both engines, are sent as
// 0 and 1. params are run-time parameters every connection sets.
func openPostgres(dsn string, params map[string]string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	return sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)}), nil
}

// pgConnector makes pgConns.
type pgConnector struct{ driver.Connector }

// Connect opens one connection.
func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return pgConn{conn.(*stdlib.Conn)}, nil
}

// pgConn is pgx's database/sql connection with its queries rebound: the one
// place where this package's SQL becomes PostgreSQL's.
type pgConn struct{ *stdlib.Conn }

// Prepare rebinds query and prepares it.
func (c pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

// PrepareContext rebinds query and prepares it.
func (c pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

// ExecContext rebinds query and runs it.
func (c pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

// QueryContext rebinds query and runs it.
func (c pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

// CheckNamedValue sends a bool as the integer the column holds.
func (c pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if b, ok := nv.Value.(bool); ok {
		nv.Value = int64(0)
		if b {
			nv.Value = int64(1)
		}
	}
	return c.Conn.CheckNamedValue(nv)
}

// rebind turns SQLite's placeholders into PostgreSQL's: ?N becomes $N, and a bare
// ? the next number after the highest so far, as SQLite numbers them. Quoted
// strings, quoted names and comments are left alone.
func rebind(q string) string {
	if !strings.ContainsRune(q, '?') {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	highest := 0
	for i := 0; i < len(q); i++ {
		ch := q[i]
		switch {
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(q[i+1:], ch)
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+end+2])
			i += end + 1
		case ch == '-' && i+1 < len(q) && q[i+1] == '-':
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+end+1])
			i += end
		case ch == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := highest + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			highest = max(highest, n)
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// rowQueryer runs a statement that returns one row: a transaction or a pool.
type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// insertID runs an INSERT and returns the id of the row it made, through
// RETURNING, which both engines have (PostgreSQL has no last insert id). An
// INSERT that made none (ON CONFLICT DO NOTHING) is sql.ErrNoRows.
func insertID(ctx context.Context, q rowQueryer, query string, args ...any) (id int64, err error) {
	err = q.QueryRowContext(ctx, query+" RETURNING id", args...).Scan(&id)
	return id, err
}

// jsonInt is the SQL for the integer under key in the JSON object in column col
// (NULL when absent).
func (d dialect) jsonInt(col, key string) string {
	if d.name == "postgres" {
		return "CAST(CAST(" + col + " AS jsonb)->>'" + key + "' AS BIGINT)"
	}
	return "json_extract(" + col + ", '$." + key + "')"
}

// jsonKeys is a FROM item named alias with a row for each key of the JSON
// object in column col, in its column key.
func (d dialect) jsonKeys(col, alias string) string {
	if d.name == "postgres" {
		return "jsonb_object_keys(CAST(" + col + " AS jsonb)) AS " + alias + "(key)"
	}
	return "json_each(" + col + ") " + alias
}

// inList is an IN list of placeholders for vals, with its arguments. An empty
// list is (SELECT NULL WHERE 1=0), which IN never matches and NOT IN always does.
func inList(vals []string) (string, []any) {
	if len(vals) == 0 {
		return "(SELECT NULL WHERE 1=0)", nil
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "(?" + strings.Repeat(",?", len(vals)-1) + ")", args
}

// prefixEnd is the least string above every string starting with p, for a
// range scan: p with its last byte raised (p is ASCII).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0x7f {
			b[i]++
			return string(b[:i+1])
		}
	}
	return p + "\U0010FFFF"
}
