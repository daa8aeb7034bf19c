package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Actor is who makes a change: it is written to the audit log with the change.
type Actor struct {
	UserID   int64
	Username string
}

// AuditEntry is one recorded change: who, what, when, before and after.
type AuditEntry struct {
	ID         int64           `json:"id,string"`
	At         time.Time       `json:"at"`
	UserID     int64           `json:"user_id,string,omitempty"`
	Username   string          `json:"username"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
}

// AuditFilter narrows an audit-log listing. Zero fields do not filter.
type AuditFilter struct {
	ObjectType string
	ObjectID   string
	UserID     int64
	Limit      int
	Offset     int
}

// AuditLog reads the audit log; writes happen inside each change's own transaction.
type AuditLog interface {
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error)
}

// audit writes one entry inside tx. before and after are marshalled to JSON; nil stays NULL.
func (d *DB) audit(ctx context.Context, tx *sql.Tx, who Actor, action, objectType, objectID string, before, after any) error {
	enc := func(v any) (sql.NullString, error) {
		if v == nil {
			return sql.NullString{}, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return sql.NullString{}, fmt.Errorf("encode audit value: %w", err)
		}
		return sql.NullString{String: string(b), Valid: true}, nil
	}
	b, err := enc(before)
	if err != nil {
		return err
	}
	a, err := enc(after)
	if err != nil {
		return err
	}
	var uid sql.NullInt64
	if who.UserID != 0 {
		uid = sql.NullInt64{Int64: who.UserID, Valid: true}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_log(at, user_id, username, action, object_type, object_id, before, after)
		VALUES (?,?,?,?,?,?,?,?)`, d.nowMs(), uid, who.Username, action, objectType, objectID, b, a)
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// ListAudit returns matching entries, newest first, and the total that match.
func (d *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error) {
	var where []string
	var args []any
	if f.ObjectType != "" {
		where = append(where, "object_type = ?")
		args = append(args, f.ObjectType)
	}
	if f.ObjectID != "" {
		where = append(where, "object_id = ?")
		args = append(args, f.ObjectID)
	}
	if f.UserID != 0 {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM audit_log"+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count audit log: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT id, at, coalesce(user_id,0), username, action, object_type,
		coalesce(object_id,''), before, after FROM audit_log`+cond+" ORDER BY id DESC LIMIT ? OFFSET ?",
		append(args, limitOrDefault(f.Limit), f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		var before, after sql.NullString
		if err := rows.Scan(&e.ID, &at, &e.UserID, &e.Username, &e.Action, &e.ObjectType, &e.ObjectID, &before, &after); err != nil {
			return nil, 0, fmt.Errorf("scan audit log: %w", err)
		}
		e.At = msToTime(at)
		if before.Valid {
			e.Before = json.RawMessage(before.String)
		}
		if after.Valid {
			e.After = json.RawMessage(after.String)
		}
		out = append(out, e)
	}
	return out, total, rows.Err()
}

// limitOrDefault bounds page sizes: 100 by default, 1000 at most.
func limitOrDefault(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

func idString(id int64) string { return strconv.FormatInt(id, 10) }
