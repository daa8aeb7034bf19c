package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"
)

// Parts of a webhook kept in quarantine.
const (
	// QuarantineBatch is a whole signed body that did not parse.
	QuarantineBatch = "batch"
	// QuarantineChange is one entry[].changes[] item that did not parse; the
	// batch's other changes were applied.
	QuarantineChange = "change"
)

// QuarantinedWebhook is a signed webhook body, or one change of it, that could
// not be parsed, kept whole with the parse error.
type QuarantinedWebhook struct {
	ID         int64
	Part       string
	Reason     string
	Body       []byte
	ReceivedAt time.Time
}

// QuarantineStore keeps the webhooks that could not be parsed.
type QuarantineStore interface {
	// QuarantineWebhook keeps body (a whole batch or one change, as part says)
	// with the reason it could not be parsed; the same body is kept once.
	QuarantineWebhook(ctx context.Context, part, reason string, body []byte) error
	// QuarantinedWebhooks lists kept bodies newest first, those with an id
	// below beforeID when it is not 0.
	QuarantinedWebhooks(ctx context.Context, beforeID int64, limit int) ([]QuarantinedWebhook, error)
	// CountQuarantinedWebhooks counts the kept bodies.
	CountQuarantinedWebhooks(ctx context.Context) (int, error)
}

var _ QuarantineStore = (*DB)(nil)

// QuarantineWebhook implements QuarantineStore.
func (d *DB) QuarantineWebhook(ctx context.Context, part, reason string, body []byte) error {
	if part != QuarantineBatch && part != QuarantineChange {
		return fmt.Errorf("quarantine webhook: part %q is neither %s nor %s", part, QuarantineBatch, QuarantineChange)
	}
	sum := sha256.Sum256(append([]byte(part+"\x00"), body...))
	_, err := d.exec(ctx, `INSERT INTO webhook_quarantine(digest, part, reason, body, received_at) VALUES (?,?,?,?,?)
		ON CONFLICT(digest) DO NOTHING`, hex.EncodeToString(sum[:]), part, reason, body, d.nowMs())
	if err != nil {
		return fmt.Errorf("quarantine webhook: %w", err)
	}
	return nil
}

// QuarantinedWebhooks implements QuarantineStore.
func (d *DB) QuarantinedWebhooks(ctx context.Context, beforeID int64, limit int) ([]QuarantinedWebhook, error) {
	if limit <= 0 {
		limit = 50
	}
	before := sql.NullInt64{Int64: beforeID, Valid: beforeID > 0}
	rows, err := d.db.QueryContext(ctx, `SELECT id, part, reason, body, received_at FROM webhook_quarantine
		WHERE CAST(?1 AS BIGINT) IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("quarantined webhooks: %w", err)
	}
	defer rows.Close()
	var out []QuarantinedWebhook
	for rows.Next() {
		var q QuarantinedWebhook
		var at int64
		if err := rows.Scan(&q.ID, &q.Part, &q.Reason, &q.Body, &at); err != nil {
			return nil, fmt.Errorf("quarantined webhooks: %w", err)
		}
		q.ReceivedAt = msToTime(at)
		out = append(out, q)
	}
	return out, rows.Err()
}

// CountQuarantinedWebhooks implements QuarantineStore.
func (d *DB) CountQuarantinedWebhooks(ctx context.Context) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM webhook_quarantine").Scan(&n); err != nil {
		return 0, fmt.Errorf("count quarantined webhooks: %w", err)
	}
	return n, nil
}

// PermissionReply is a contact's call permission with the event time of the
// reply it comes from (zero when no reply was applied).
type PermissionReply struct {
	State string
	Until time.Time
	At    time.Time
}

// WhatsAppPermissionReply reads a contact's call permission and the event time
// of the reply it comes from.
func (d *DB) WhatsAppPermissionReply(ctx context.Context, contactID int64) (PermissionReply, error) {
	var p PermissionReply
	var until, at sql.NullInt64
	err := d.db.QueryRowContext(ctx, "SELECT wa_permission, wa_permission_until, wa_permission_at FROM contacts WHERE id = ?", contactID).
		Scan(&p.State, &until, &at)
	if err != nil {
		return p, notFoundIfNoRows(err, fmt.Sprintf("contact %d", contactID))
	}
	if until.Valid {
		p.Until = msToTime(until.Int64)
	}
	if at.Valid {
		p.At = msToTime(at.Int64)
	}
	return p, nil
}

// SetWhatsAppPermissionReply records a contact's call permission as a reply
// given at p.At decided it. A reply older than the one recorded (or than a
// request recorded since) changes nothing: the check and the write are one
// statement, so a request recorded meanwhile is not overwritten by the reply
// the caller read before it. It reports whether the reply was written.
func (d *DB) SetWhatsAppPermissionReply(ctx context.Context, contactID int64, p PermissionReply) (bool, error) {
	var until, at sql.NullInt64
	if !p.Until.IsZero() {
		until = sql.NullInt64{Int64: p.Until.UnixMilli(), Valid: true}
	}
	if !p.At.IsZero() {
		at = sql.NullInt64{Int64: p.At.UnixMilli(), Valid: true}
	}
	// PostgreSQL types ?3 from its first use, and reads WHERE before SET: the
	// comparison comes before the IS NULL.
	res, err := d.exec(ctx, `UPDATE contacts SET wa_permission=?1, wa_permission_until=?2, wa_permission_at=?3, updated_at=?4
		WHERE id=?5 AND (wa_permission_at IS NULL OR wa_permission_at <= ?3 OR ?3 IS NULL)`,
		p.State, until, at, d.nowMs(), contactID)
	return d.permissionWritten(ctx, contactID, res, err)
}

// SetWhatsAppPermissionRequested records a request sent at at as of at's whole
// second: Meta stamps a reply in whole seconds, so the reply to this request
// may carry that very second, and a reply recorded at or after it (or Meta's
// state read since) answered this request already and is kept. The request's
// time is then the permission's, so a late reply to an earlier request does
// not undo it.
func (d *DB) SetWhatsAppPermissionRequested(ctx context.Context, contactID int64, at time.Time) (bool, error) {
	sec := at.Truncate(time.Second).UnixMilli()
	res, err := d.exec(ctx, `UPDATE contacts SET wa_permission=?1, wa_permission_until=NULL, wa_permission_at=?2, updated_at=?3
		WHERE id=?4 AND (wa_permission_at IS NULL OR wa_permission_at < ?2)`, PermissionRequested, sec, d.nowMs(), contactID)
	return d.permissionWritten(ctx, contactID, res, err)
}

// permissionWritten reports whether a conditional write of a contact's
// permission wrote it: not when a newer record kept it from it; an error when
// the write failed or there is no such contact.
func (d *DB) permissionWritten(ctx context.Context, contactID int64, res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("update permission: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	var one int
	err = d.db.QueryRowContext(ctx, "SELECT 1 FROM contacts WHERE id = ?", contactID).Scan(&one)
	return false, notFoundIfNoRows(err, fmt.Sprintf("contact %d", contactID))
}
