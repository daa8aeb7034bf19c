package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Outbox states. A message is pending until the request that makes it is about
// to leave, sending only while that request is in flight, then sent (with the
// far end's answer as evidence) or failed. A crash during a request leaves it
// in doubt: only the far end's own report (a status webhook) settles it.
const (
	OutboxPending = "pending"
	OutboxSending = "sending"
	OutboxInDoubt = "in_doubt"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// OutboxKindTemplate is the kind of a template rung's send: the one kind whose
// message a campaign attempt records (its wamid, or its key while in doubt).
const OutboxKindTemplate = "whatsapp.template"

// OutboxMessage is a side effect decided and stored, waiting to be sent.
type OutboxMessage struct {
	ID             int64
	Kind           string // e.g. "whatsapp.template", "whatsapp.call"
	IdempotencyKey string
	Payload        []byte
	State          string
	Tries          int
	LastError      string
	// ResultID is the far end's ID of the effect (a wamid), once it is known.
	ResultID  string
	CreatedAt time.Time
	// InDoubtSince is when a crash was found to have left the message in doubt.
	InDoubtSince time.Time
}

// OutboxRecovery is what RecoverOutbox found a crash had left claimed.
type OutboxRecovery struct {
	// Requeued were claimed but their request was never started: they are
	// pending again, as they provably never left.
	Requeued int
	// InDoubt had their request started: it may or may not have reached the far end.
	InDoubt int
	// NotSent never left and are of kinds nothing sends again: recorded failed.
	NotSent int
}

// Outbox is where every side effect toward the outside world waits until it is sent.
// A message is claimed only right before its request leaves, and the start of the
// request is recorded before it is written: a crash then leaves either a request
// that provably never left (sent again) or one in doubt (settled by evidence).
type Outbox interface {
	// Enqueue stores a message; a second message with the same key is ignored and
	// reported as not new.
	Enqueue(ctx context.Context, kind, key string, payload []byte) (id int64, isNew bool, err error)
	// ClaimDue marks up to limit due pending messages as sending and returns them.
	ClaimDue(ctx context.Context, now time.Time, limit int) ([]OutboxMessage, error)
	// MarkRequestStarted records that the claimed message's request is about to be
	// written: from then on a crash leaves it in doubt.
	MarkRequestStarted(ctx context.Context, id int64) error
	// MarkSent records the far end's acceptance of a message, with its ID for it.
	MarkSent(ctx context.Context, id int64, resultID string) error
	// MarkFailed records an error: retried at retryAt, or failed for good when retryAt is zero.
	MarkFailed(ctx context.Context, id int64, cause error, retryAt time.Time) error
	// MarkInDoubt records that a claimed message's request may have reached the
	// far end without an answer: only evidence settles it.
	MarkInDoubt(ctx context.Context, id int64, cause error) error
	// RecoverOutbox settles what a crash left claimed: in doubt when its request
	// started; else back to pending for the resumed kinds (sent again under their
	// key), and failed, not sent, for the others, pending ones included, which
	// nothing would send. It runs before anything is sent.
	// Only the messages of scope are settled: a live node's are its own.
	RecoverOutbox(ctx context.Context, scope OutboxScope, resumed []string) (OutboxRecovery, error)
	OutboxByKey(ctx context.Context, key string) (OutboxMessage, error)
	// ClaimKey marks the pending message under key as sending and reports whether
	// this caller claimed it.
	ClaimKey(ctx context.Context, key string) (bool, error)
	// SettleByKey records the far end's evidence (a status webhook) that the
	// message under key was accepted, with its ID; it reports whether a message
	// not yet known sent (pending, sending or in doubt) was settled by it.
	SettleByKey(ctx context.Context, key, resultID string) (bool, error)
	// InDoubtSince lists the messages in doubt since before a time and not yet
	// reported, oldest first.
	InDoubtSince(ctx context.Context, before time.Time, limit int) ([]OutboxMessage, error)
	// InDoubtBefore lists the messages in doubt since before a time, reported or
	// not, oldest first: those whose settle window has passed.
	InDoubtBefore(ctx context.Context, before time.Time, limit int) ([]OutboxMessage, error)
	// RecordNotSent records a message still in doubt as not sent (failed, with
	// cause): no evidence came within the settle window. It reports false when
	// the message is no longer in doubt (evidence settled it meanwhile).
	RecordNotSent(ctx context.Context, id int64, cause string) (bool, error)
	// MarkReported records that messages in doubt were reported to a supervisor.
	MarkReported(ctx context.Context, ids []int64) error
	// PendingOutbox lists the pending messages of kind whose id is above
	// afterID, in id order.
	PendingOutbox(ctx context.Context, kind string, afterID int64, limit int) ([]OutboxMessage, error)
	// DropPending records a pending message not sent (failed, with cause), as
	// nothing will send it. It reports false when the message is no longer
	// pending (claimed meanwhile).
	DropPending(ctx context.Context, id int64, cause string) (bool, error)
	OutboxHealth(ctx context.Context, prefix string, since time.Time) (sent, failed int, err error)
}

// Enqueue stores a new outbox message unless its key was seen before.
func (d *DB) Enqueue(ctx context.Context, kind, key string, payload []byte) (int64, bool, error) {
	now := d.nowMs()
	// A run's message belongs to its campaign (the fence's): whoever takes the
	// campaign over settles it.
	var campaign any
	if f := fenceFrom(ctx); f != nil {
		campaign = f.CampaignID
	}
	id, err := d.execID(ctx, `INSERT INTO outbox(kind, idempotency_key, payload, next_try_at, created_at, campaign_id, node_id)
		VALUES (?,?,?,?,?,?,nullif(?,'')) ON CONFLICT(idempotency_key) DO NOTHING`, kind, key, string(payload), now, now, campaign, nodeFrom(ctx))
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("enqueue %s: %w", kind, err)
	}
	if err := d.db.QueryRowContext(ctx, "SELECT id FROM outbox WHERE idempotency_key = ?", key).Scan(&id); err != nil {
		return 0, false, fmt.Errorf("enqueue %s: %w", kind, err)
	}
	return id, false, nil
}

// ClaimDue claims due messages in one transaction so two senders never take the same one.
func (d *DB) ClaimDue(ctx context.Context, now time.Time, limit int) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, kind, idempotency_key, payload, tries, coalesce(last_error,'') FROM outbox
			WHERE state = 'pending' AND next_try_at <= ? ORDER BY next_try_at, id LIMIT ?`+d.dialect.claimRows, now.UnixMilli(), limit)
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
			if _, err := tx.ExecContext(ctx, "UPDATE outbox SET state='sending', tries=tries+1, request_started_at=NULL, node_id=coalesce(nullif(?,''), node_id) WHERE id=?",
				nodeFrom(ctx), m.ID); err != nil {
				return fmt.Errorf("claim outbox: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// MarkRequestStarted records that a claimed message's request is about to leave.
func (d *DB) MarkRequestStarted(ctx context.Context, id int64) error {
	return d.execOne(ctx, "UPDATE outbox SET request_started_at=? WHERE id=? AND state='sending'", d.nowMs(), id)
}

// MarkSent records that a message reached its destination, which answered resultID.
func (d *DB) MarkSent(ctx context.Context, id int64, resultID string) error {
	return d.execOne(ctx, "UPDATE outbox SET state='sent', sent_at=?, result_id=nullif(?,''), last_error=NULL WHERE id=?",
		d.nowMs(), resultID, id)
}

// MarkInDoubt records a request that may have left without an answer.
func (d *DB) MarkInDoubt(ctx context.Context, id int64, cause error) error {
	return d.execOne(ctx, "UPDATE outbox SET state='in_doubt', in_doubt_since=?, last_error=? WHERE id=? AND state='sending'",
		d.nowMs(), cause.Error(), id)
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

// OutboxScope is which messages RecoverOutbox settles: those that a node which
// stopped left claimed, and that no live node will settle. The zero scope is
// every message (the one node of its database, starting).
type OutboxScope struct {
	// Campaign, when not 0, is a campaign whose lease the caller has just
	// taken: the messages its runs enqueued (under their fence), whichever
	// node they were.
	Campaign int64
	// Live, with Campaign 0 and not empty, are the live nodes: the messages of
	// no campaign that another node enqueued or claimed are settled.
	Live []string
}

// where is the scope's condition on outbox rows and its arguments.
func (s OutboxScope) where() (string, []any) {
	switch {
	case s.Campaign != 0:
		return "campaign_id = ?", []any{s.Campaign}
	case len(s.Live) > 0:
		in, args := inList(s.Live)
		// A message of no node (enqueued before nodes were recorded, or by a
		// path that names none) is left alone: it may be a live node's.
		return "campaign_id IS NULL AND node_id NOT IN " + in, args
	default:
		return "1=1", nil
	}
}

// RecoverOutbox puts back in the queue the messages of scope a stopped sender
// had claimed without starting their request, records not sent those nothing
// will send, and leaves in doubt those whose request started.
func (d *DB) RecoverOutbox(ctx context.Context, scope OutboxScope, resumed []string) (OutboxRecovery, error) {
	var r OutboxRecovery
	resumedIn, kinds := inList(resumed)
	in, args := scope.where()
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET state='in_doubt', in_doubt_since=?,
			last_error='the process stopped while the request was in flight' WHERE state='sending' AND request_started_at IS NOT NULL AND `+in,
			append([]any{d.nowMs()}, args...)...)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		r.InDoubt = int(n)
		res, err = tx.ExecContext(ctx, `UPDATE outbox SET state='pending' WHERE state='sending'
			AND kind IN `+resumedIn+` AND `+in, append(kinds, args...)...)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		r.Requeued = int(n)
		res, err = tx.ExecContext(ctx, `UPDATE outbox SET state='failed',
			last_error='not sent: the process stopped before its request left, and nothing sends it again'
			WHERE state IN ('sending','pending') AND kind NOT IN `+resumedIn+` AND `+in, append(kinds, args...)...)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		r.NotSent = int(n)
		return nil
	})
	if err != nil {
		return OutboxRecovery{}, fmt.Errorf("recover outbox: %w", err)
	}
	return r, nil
}

// InDoubtSince lists unreported messages in doubt since before a time.
func (d *DB) InDoubtSince(ctx context.Context, before time.Time, limit int) ([]OutboxMessage, error) {
	return d.listOutbox(ctx, "outbox in doubt", `WHERE state='in_doubt' AND reported_at IS NULL AND in_doubt_since <= ?
		ORDER BY in_doubt_since, id LIMIT ?`, before.UnixMilli(), limit)
}

// listOutbox lists the outbox rows that where (a WHERE clause and what follows) selects.
func (d *DB) listOutbox(ctx context.Context, what, where string, args ...any) ([]OutboxMessage, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+outboxColumns+" FROM outbox "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// InDoubtBefore lists messages in doubt since before a time.
func (d *DB) InDoubtBefore(ctx context.Context, before time.Time, limit int) ([]OutboxMessage, error) {
	return d.listOutbox(ctx, "in doubt before", `WHERE state='in_doubt' AND in_doubt_since <= ? ORDER BY in_doubt_since, id LIMIT ?`,
		before.UnixMilli(), limit)
}

// RecordNotSent turns a message in doubt into a failed one.
func (d *DB) RecordNotSent(ctx context.Context, id int64, cause string) (bool, error) {
	res, err := d.exec(ctx, "UPDATE outbox SET state='failed', last_error=? WHERE id=? AND state='in_doubt'", cause, id)
	if err != nil {
		return false, fmt.Errorf("record outbox %d not sent: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PendingOutbox lists pending messages of kind above afterID.
func (d *DB) PendingOutbox(ctx context.Context, kind string, afterID int64, limit int) ([]OutboxMessage, error) {
	return d.listOutbox(ctx, "pending outbox", `WHERE state='pending' AND kind=? AND id > ? ORDER BY id LIMIT ?`, kind, afterID, limit)
}

// DropPending turns a pending message into a failed one.
func (d *DB) DropPending(ctx context.Context, id int64, cause string) (bool, error) {
	res, err := d.exec(ctx, "UPDATE outbox SET state='failed', last_error=? WHERE id=? AND state='pending'", cause, id)
	if err != nil {
		return false, fmt.Errorf("record outbox %d not sent: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// MarkReported records that the messages were reported in doubt.
func (d *DB) MarkReported(ctx context.Context, ids []int64) error {
	now := d.nowMs()
	return d.inTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, "UPDATE outbox SET reported_at=? WHERE id=?", now, id); err != nil {
				return fmt.Errorf("mark outbox %d reported: %w", id, err)
			}
		}
		return nil
	})
}

// outboxColumns are the columns scanOutbox reads.
const outboxColumns = `id, kind, idempotency_key, payload, state, tries, coalesce(last_error,''), coalesce(result_id,''),
	created_at, coalesce(in_doubt_since,0)`

func scanOutbox(s interface{ Scan(...any) error }) (OutboxMessage, error) {
	var m OutboxMessage
	var payload string
	var created, doubt int64
	if err := s.Scan(&m.ID, &m.Kind, &m.IdempotencyKey, &payload, &m.State, &m.Tries, &m.LastError, &m.ResultID,
		&created, &doubt); err != nil {
		return m, err
	}
	m.Payload, m.CreatedAt = []byte(payload), time.UnixMilli(created)
	if doubt > 0 {
		m.InDoubtSince = time.UnixMilli(doubt)
	}
	return m, nil
}

// OutboxByKey returns the message stored under an idempotency key.
func (d *DB) OutboxByKey(ctx context.Context, key string) (OutboxMessage, error) {
	m, err := scanOutbox(d.db.QueryRowContext(ctx, "SELECT "+outboxColumns+" FROM outbox WHERE idempotency_key = ?", key))
	if err != nil {
		return m, notFoundIfNoRows(err, "outbox "+key)
	}
	return m, nil
}

// ClaimKey marks the pending message under key as being sent and reports whether
// this caller claimed it; a message already claimed, sent or failed is not claimed
// again, so a send is never made twice.
func (d *DB) ClaimKey(ctx context.Context, key string) (bool, error) {
	res, err := d.exec(ctx, `UPDATE outbox SET state='sending', tries=tries+1, request_started_at=NULL, node_id=coalesce(nullif(?,''), node_id)
		WHERE idempotency_key=? AND state='pending'`, nodeFrom(ctx), key)
	if err != nil {
		return false, fmt.Errorf("claim outbox %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SettleByKey records that the far end has the message under key (its status
// webhook arrived), settling a send left in doubt by a crash. A message the
// far end reports is sent whatever was recorded of it before, failed included:
// its request took effect.
func (d *DB) SettleByKey(ctx context.Context, key, resultID string) (bool, error) {
	res, err := d.exec(ctx, `UPDATE outbox SET state='sent', sent_at=coalesce(sent_at, ?), result_id=coalesce(result_id, nullif(?,'')),
		last_error=NULL WHERE idempotency_key=? AND state <> 'sent'`, d.nowMs(), resultID, key)
	if err != nil {
		return false, fmt.Errorf("settle outbox %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// OutboxHealth counts the messages of kinds starting with prefix sent and failed
// since a time: how a destination (the WhatsApp API) has been doing lately.
func (d *DB) OutboxHealth(ctx context.Context, prefix string, since time.Time) (sent, failed int, err error) {
	err = d.db.QueryRowContext(ctx, `SELECT count(CASE WHEN state='sent' THEN 1 END), count(CASE WHEN state='failed' OR (state='pending' AND tries>0) THEN 1 END)
		FROM outbox WHERE kind LIKE CAST(? AS TEXT) || '%' AND created_at >= ?`, prefix, since.UnixMilli()).Scan(&sent, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox health: %w", err)
	}
	return sent, failed, nil
}

// OutboxCounts counts the outbox's messages by kind and state: what an
// operator (or a crash drill) reads to see that every side effect is settled.
func (d *DB) OutboxCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT kind, state, count(*) FROM outbox GROUP BY kind, state")
	if err != nil {
		return nil, fmt.Errorf("outbox counts: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return nil, fmt.Errorf("outbox counts: %w", err)
		}
		if out[kind] == nil {
			out[kind] = map[string]int{}
		}
		out[kind][state] = n
	}
	return out, rows.Err()
}
