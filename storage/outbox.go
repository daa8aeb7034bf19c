package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OutboxMessage is a side effect decided and stored, waiting to be sent.
type OutboxMessage struct {
	ID             int64
	Kind           string // e.g. "whatsapp.template", "whatsapp.call"
	IdempotencyKey string
	Payload        []byte
	State          string
	Tries          int
	LastError      string
}

// Outbox is where every side effect toward the outside world waits until it is sent.
// A message is claimed before it is sent and marked sent after, so a crash between
// the two leaves it claimed: the sender then asks the far end by idempotency key
// rather than sending again.
type Outbox interface {
	// Enqueue stores a message; a second message with the same key is ignored and
	// reported as not new.
	Enqueue(ctx context.Context, kind, key string, payload []byte) (id int64, isNew bool, err error)
	// ClaimDue marks up to limit due pending messages as sending and returns them.
	ClaimDue(ctx context.Context, now time.Time, limit int) ([]OutboxMessage, error)
	MarkSent(ctx context.Context, id int64) error
	// MarkFailed records an error: retried at retryAt, or failed for good when retryAt is zero.
	MarkFailed(ctx context.Context, id int64, cause error, retryAt time.Time) error
	// Requeue returns messages left claimed (by a crash) to pending.
	Requeue(ctx context.Context) (int, error)
	OutboxByKey(ctx context.Context, key string) (OutboxMessage, error)
	ClaimKey(ctx context.Context, key string) (bool, error)
	MarkSentByKey(ctx context.Context, key string) error
	OutboxHealth(ctx context.Context, prefix string, since time.Time) (sent, failed int, err error)
}

// Enqueue stores a new outbox message unless its key was seen before.
func (d *DB) Enqueue(ctx context.Context, kind, key string, payload []byte) (int64, bool, error) {
	now := d.nowMs()
	res, err := d.exec(ctx, `INSERT INTO outbox(kind, idempotency_key, payload, next_try_at, created_at)
		VALUES (?,?,?,?,?) ON CONFLICT(idempotency_key) DO NOTHING`, kind, key, string(payload), now, now)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue %s: %w", kind, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		id, err := res.LastInsertId()
		return id, true, err
	}
	var id int64
	if err := d.db.QueryRowContext(ctx, "SELECT id FROM outbox WHERE idempotency_key = ?", key).Scan(&id); err != nil {
		return 0, false, fmt.Errorf("enqueue %s: %w", kind, err)
	}
	return id, false, nil
}

// ClaimDue claims due messages in one transaction so two senders never take the same one.
func (d *DB) ClaimDue(ctx context.Context, now time.Time, limit int) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, kind, idempotency_key, payload, tries, ifnull(last_error,'') FROM outbox
			WHERE state = 'pending' AND next_try_at <= ? ORDER BY next_try_at, id LIMIT ?`, now.UnixMilli(), limit)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		for rows.Next() {
			var m OutboxMessage
			var payload string
			if err := rows.Scan(&m.ID, &m.Kind, &m.IdempotencyKey, &payload, &m.Tries, &m.LastError); err != nil {
				rows.Close()
				return fmt.Errorf("claim outbox: %w", err)
			}
			m.Payload, m.State = []byte(payload), "sending"
			m.Tries++
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		for _, m := range out {
			if _, err := tx.ExecContext(ctx, "UPDATE outbox SET state='sending', tries=tries+1 WHERE id=?", m.ID); err != nil {
				return fmt.Errorf("claim outbox: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// MarkSent records that a message reached its destination.
func (d *DB) MarkSent(ctx context.Context, id int64) error {
	return d.execOne(ctx, "UPDATE outbox SET state='sent', sent_at=?, last_error=NULL WHERE id=?", d.nowMs(), id)
}

// MarkFailed records a failed send, to retry or to give up on.
func (d *DB) MarkFailed(ctx context.Context, id int64, cause error, retryAt time.Time) error {
	if retryAt.IsZero() {
		return d.execOne(ctx, "UPDATE outbox SET state='failed', last_error=? WHERE id=?", cause.Error(), id)
	}
	return d.execOne(ctx, "UPDATE outbox SET state='pending', last_error=?, next_try_at=? WHERE id=?",
		cause.Error(), retryAt.UnixMilli(), id)
}

// execOne runs a statement that must change exactly one row, else ErrNotFound.
func (d *DB) execOne(ctx context.Context, q string, args ...any) error {
	res, err := d.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("row to update: %w", ErrNotFound)
	}
	return nil
}

// Requeue puts messages a crashed sender had claimed back in the queue.
func (d *DB) Requeue(ctx context.Context) (int, error) {
	res, err := d.exec(ctx, "UPDATE outbox SET state='pending' WHERE state='sending'")
	if err != nil {
		return 0, fmt.Errorf("requeue outbox: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// OutboxByKey returns the message stored under an idempotency key.
func (d *DB) OutboxByKey(ctx context.Context, key string) (OutboxMessage, error) {
	var m OutboxMessage
	var payload string
	err := d.db.QueryRowContext(ctx, `SELECT id, kind, idempotency_key, payload, state, tries, ifnull(last_error,'')
		FROM outbox WHERE idempotency_key = ?`, key).Scan(&m.ID, &m.Kind, &m.IdempotencyKey, &payload, &m.State, &m.Tries, &m.LastError)
	if err != nil {
		return m, notFoundIfNoRows(err, "outbox "+key)
	}
	m.Payload = []byte(payload)
	return m, nil
}

// ClaimKey marks the pending message under key as being sent and reports whether
// this caller claimed it; a message already claimed, sent or failed is not claimed
// again, so a send is never made twice.
func (d *DB) ClaimKey(ctx context.Context, key string) (bool, error) {
	res, err := d.exec(ctx, "UPDATE outbox SET state='sending', tries=tries+1 WHERE idempotency_key=? AND state='pending'", key)
	if err != nil {
		return false, fmt.Errorf("claim outbox %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// MarkSentByKey records that the far end has the message under key (its webhook
// arrived), settling a send left in doubt by a crash.
func (d *DB) MarkSentByKey(ctx context.Context, key string) error {
	_, err := d.exec(ctx, "UPDATE outbox SET state='sent', sent_at=ifnull(sent_at, ?), last_error=NULL WHERE idempotency_key=? AND state <> 'sent'",
		d.nowMs(), key)
	if err != nil {
		return fmt.Errorf("mark outbox %s sent: %w", key, err)
	}
	return nil
}

// OutboxHealth counts the messages of kinds starting with prefix sent and failed
// since a time: how a destination (the WhatsApp API) has been doing lately.
func (d *DB) OutboxHealth(ctx context.Context, prefix string, since time.Time) (sent, failed int, err error) {
	err = d.db.QueryRowContext(ctx, `SELECT ifnull(sum(state='sent'),0), ifnull(sum(state='failed' OR (state='pending' AND tries>0)),0)
		FROM outbox WHERE kind LIKE ? || '%' AND created_at >= ?`, prefix, since.UnixMilli()).Scan(&sent, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox health: %w", err)
	}
	return sent, failed, nil
}
