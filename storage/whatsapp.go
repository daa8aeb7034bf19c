package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// WebhookEvent is a webhook event as kept before it is applied.
type WebhookEvent struct {
	Key     string
	Type    string
	Payload json.RawMessage
	At      time.Time
	// ReceivedAt is when the event was kept (set when read back).
	ReceivedAt time.Time
	// Tries is how many times applying it was deferred (set when read back).
	Tries int
}

// WAMessage is one WhatsApp message of a contact's conversation.
type WAMessage struct {
	ContactID int64     `json:"contact_id,string,omitempty"`
	Direction string    `json:"direction"` // in, out
	WAID      string    `json:"wa_id"`
	Phone     string    `json:"phone"`
	Type      string    `json:"type"`
	Body      string    `json:"body,omitempty"`
	At        time.Time `json:"at"`
}

// Permission states of a contact's WhatsApp call permission.
const (
	PermissionUnknown   = "unknown"
	PermissionRequested = "requested"
	PermissionGranted   = "granted"
	PermissionDenied    = "denied"
)

// WhatsAppStore keeps what the WhatsApp rungs need.
type WhatsAppStore interface {
	// SaveWebhookEvents durably keeps events before they are applied, ignoring any
	// already kept; it returns the ones that were new.
	SaveWebhookEvents(ctx context.Context, events []WebhookEvent) ([]WebhookEvent, error)
	// MarkWebhookEventsApplied notes that events were applied.
	MarkWebhookEventsApplied(ctx context.Context, keys []string) error
	// PendingWebhookEvents lists kept events not yet applied, in event-time
	// order, leaving out the deferred ones until their retry is due.
	PendingWebhookEvents(ctx context.Context, limit int) ([]WebhookEvent, error)
	// DeferWebhookEvent puts off a kept event that cannot be applied yet until
	// retryAt, counting the try; the events after it are applied meanwhile.
	DeferWebhookEvent(ctx context.Context, key string, retryAt time.Time) error
	// AttemptByExternalID finds the attempt Meta knows by id (wacid, wamid).
	AttemptByExternalID(ctx context.Context, id string) (Attempt, error)
	// SetAttemptOutcome updates a finished attempt's outcome (a delivery status).
	SetAttemptOutcome(ctx context.Context, attemptID int64, outcome string) error
	// SwapAttemptOutcome changes a finished attempt's outcome from one of from
	// to to and moves its contact as move says, in one transaction; it reports
	// false, changing nothing, when the outcome is none of from.
	SwapAttemptOutcome(ctx context.Context, attemptID int64, from []string, to string, move MoveFunc) (bool, error)
	// CallbackByWhatsApp finds the contact with an open callback on a WhatsApp number.
	CallbackByWhatsApp(ctx context.Context, e164 string) (DueContact, bool, error)
	// ContactsByWhatsApp lists the contacts, in every campaign, reached on number.
	ContactsByWhatsApp(ctx context.Context, e164 string) ([]campaigns.Contact, error)
	// WhatsAppPermission returns a contact's call permission and its expiry.
	WhatsAppPermission(ctx context.Context, contactID int64) (state string, until time.Time, err error)
	SetWhatsAppPermission(ctx context.Context, contactID int64, state string, until time.Time) error
	// RecordPermissionRequest keeps that a call permission request was sent to
	// the WhatsApp number phone of a contact at at (Meta's limits count them).
	RecordPermissionRequest(ctx context.Context, contactID int64, phone string, at time.Time) error
	// SetPermissionNextRequest keeps when Meta said the next call permission
	// request to phone may be sent (zero: no bound).
	SetPermissionNextRequest(ctx context.Context, phone string, at time.Time) error
	// WhatsAppPermissionReply and SetWhatsAppPermissionReply read and record a
	// contact's call permission with the event time of the reply it comes from;
	// a reply older than the one recorded is not written (the bool says
	// whether it was).
	WhatsAppPermissionReply(ctx context.Context, contactID int64) (PermissionReply, error)
	SetWhatsAppPermissionReply(ctx context.Context, contactID int64, p PermissionReply) (bool, error)
	// SetWhatsAppPermissionRequested records that a call permission request
	// was sent to a contact at at, unless a reply as new as the request is
	// recorded already; it reports whether it recorded it.
	SetWhatsAppPermissionRequested(ctx context.Context, contactID int64, at time.Time) (bool, error)
	SaveWAMessage(ctx context.Context, m WAMessage) error
	ListWAMessages(ctx context.Context, contactID int64) ([]WAMessage, error)
}

// SaveWebhookEvents keeps new events in one transaction.
func (d *DB) SaveWebhookEvents(ctx context.Context, events []WebhookEvent) ([]WebhookEvent, error) {
	var fresh []WebhookEvent
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		fresh = fresh[:0]
		now := d.nowMs()
		for _, e := range events {
			res, err := tx.ExecContext(ctx, `INSERT INTO webhook_events(event_key, type, payload, event_time, received_at)
				VALUES (?,?,?,?,?) ON CONFLICT(event_key) DO NOTHING`, e.Key, e.Type, string(e.Payload), e.At.UnixMilli(), now)
			if err != nil {
				return fmt.Errorf("keep webhook event: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				fresh = append(fresh, e)
			}
		}
		return nil
	})
	return fresh, err
}

// MarkWebhookEventsApplied stamps events as applied.
func (d *DB) MarkWebhookEventsApplied(ctx context.Context, keys []string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		now := d.nowMs()
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, "UPDATE webhook_events SET processed_at=? WHERE event_key=?", now, k); err != nil {
				return fmt.Errorf("mark webhook event: %w", err)
			}
		}
		return nil
	})
}

// PendingWebhookEvents returns events kept but not applied (after a crash),
// those deferred only once their retry is due.
func (d *DB) PendingWebhookEvents(ctx context.Context, limit int) ([]WebhookEvent, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT event_key, type, payload, event_time, received_at, tries FROM webhook_events
		WHERE processed_at IS NULL AND (retry_at IS NULL OR retry_at <= ?) ORDER BY event_time, id LIMIT ?`,
		d.nowMs(), limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("pending webhook events: %w", err)
	}
	defer rows.Close()
	var out []WebhookEvent
	for rows.Next() {
		var e WebhookEvent
		var payload string
		var at, received int64
		if err := rows.Scan(&e.Key, &e.Type, &payload, &at, &received, &e.Tries); err != nil {
			return nil, fmt.Errorf("pending webhook events: %w", err)
		}
		e.Payload, e.At, e.ReceivedAt = json.RawMessage(payload), msToTime(at), msToTime(received)
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeferWebhookEvent sets a kept event's next try and counts the deferral.
func (d *DB) DeferWebhookEvent(ctx context.Context, key string, retryAt time.Time) error {
	if err := d.execOne(ctx, "UPDATE webhook_events SET retry_at=?, tries=tries+1 WHERE event_key=? AND processed_at IS NULL",
		retryAt.UnixMilli(), key); err != nil {
		return fmt.Errorf("defer webhook event %s: %w", key, err)
	}
	return nil
}

// AttemptByExternalID finds an attempt by Meta's id.
func (d *DB) AttemptByExternalID(ctx context.Context, id string) (Attempt, error) {
	a, err := scanAttempt(d.db.QueryRowContext(ctx, "SELECT "+attemptColumns+" FROM attempts WHERE external_id = ? ORDER BY id DESC LIMIT 1", id))
	if err != nil {
		return a, notFoundIfNoRows(err, "attempt "+id)
	}
	return a, nil
}

// SetAttemptOutcome rewrites an attempt's outcome.
func (d *DB) SetAttemptOutcome(ctx context.Context, attemptID int64, outcome string) error {
	return d.execOne(ctx, "UPDATE attempts SET outcome=? WHERE id=?", outcome, attemptID)
}

// SwapAttemptOutcome changes an attempt's outcome only from what the caller
// saw, so that evidence applied meanwhile (a status webhook) is not overwritten.
func (d *DB) SwapAttemptOutcome(ctx context.Context, attemptID int64, from []string, to string, move MoveFunc) (bool, error) {
	fromIn, froms := inList(from)
	var swapped bool
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		var contactID int64
		err := tx.QueryRowContext(ctx, `UPDATE attempts SET outcome=? WHERE id=? AND coalesce(outcome,'') IN `+fromIn+`
			RETURNING contact_id`, append([]any{to, attemptID}, froms...)...).Scan(&contactID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("swap attempt %d outcome: %w", attemptID, err)
		}
		swapped = true
		if move == nil {
			return nil
		}
		return d.moveContact(ctx, tx, contactID, move)
	})
	return swapped, err
}

// CallbackByWhatsApp returns the contact whose WhatsApp number is e164 and who
// has an open callback (an agent's disposition asked to call it back, and no
// attempt has ended since), with its ladder position; false when there is none.
func (d *DB) CallbackByWhatsApp(ctx context.Context, e164 string) (DueContact, bool, error) {
	dc, err := scanDueContact(d.db.QueryRowContext(ctx, "SELECT "+dueColumns+` FROM contacts WHERE (whatsapp = ?1 OR (phone = ?1 AND (whatsapp IS NULL OR whatsapp = '')))
		AND status = 'pending' AND callback_at IS NOT NULL ORDER BY callback_at LIMIT 1`, e164))
	if errors.Is(err, sql.ErrNoRows) {
		return dc, false, nil
	}
	if err != nil {
		return dc, false, fmt.Errorf("callback by whatsapp: %w", err)
	}
	return dc, true, nil
}

// ContactsByWhatsApp finds contacts by the number WhatsApp knows them by.
func (d *DB) ContactsByWhatsApp(ctx context.Context, e164 string) ([]campaigns.Contact, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+contactZonesColumns+` FROM contacts
		WHERE whatsapp = ?1 OR (phone = ?1 AND (whatsapp IS NULL OR whatsapp = '')) ORDER BY id`, e164)
	if err != nil {
		return nil, fmt.Errorf("contacts by whatsapp: %w", err)
	}
	defer rows.Close()
	var out []campaigns.Contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, fmt.Errorf("contacts by whatsapp: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// WhatsAppPermission reads a contact's call permission.
func (d *DB) WhatsAppPermission(ctx context.Context, contactID int64) (string, time.Time, error) {
	var state string
	var until sql.NullInt64
	err := d.db.QueryRowContext(ctx, "SELECT wa_permission, wa_permission_until FROM contacts WHERE id = ?", contactID).Scan(&state, &until)
	if err != nil {
		return "", time.Time{}, notFoundIfNoRows(err, fmt.Sprintf("contact %d", contactID))
	}
	var t time.Time
	if until.Valid {
		t = msToTime(until.Int64)
	}
	return state, t, nil
}

// SetWhatsAppPermission records a contact's call permission.
func (d *DB) SetWhatsAppPermission(ctx context.Context, contactID int64, state string, until time.Time) error {
	var u sql.NullInt64
	if !until.IsZero() {
		u = sql.NullInt64{Int64: until.UnixMilli(), Valid: true}
	}
	return d.execOne(ctx, "UPDATE contacts SET wa_permission=?, wa_permission_until=?, updated_at=? WHERE id=?", state, u, d.nowMs(), contactID)
}

// RecordPermissionRequest keeps one call permission request sent.
func (d *DB) RecordPermissionRequest(ctx context.Context, contactID int64, phone string, at time.Time) error {
	if _, err := d.exec(ctx, "INSERT INTO wa_permission_requests(contact_id, phone, at) VALUES (?,?,?)", contactID, phone, at.UnixMilli()); err != nil {
		return fmt.Errorf("record permission request: %w", err)
	}
	return nil
}

// SetPermissionNextRequest keeps Meta's bound on the next permission request.
func (d *DB) SetPermissionNextRequest(ctx context.Context, phone string, at time.Time) error {
	var next sql.NullInt64
	if !at.IsZero() {
		next = sql.NullInt64{Int64: at.UnixMilli(), Valid: true}
	}
	if _, err := d.exec(ctx, `INSERT INTO wa_permission_limits(phone, next_request_at) VALUES (?,?)
		ON CONFLICT(phone) DO UPDATE SET next_request_at = excluded.next_request_at`, phone, next); err != nil {
		return fmt.Errorf("set permission next request: %w", err)
	}
	return nil
}

// SaveWAMessage keeps a message of a conversation once.
func (d *DB) SaveWAMessage(ctx context.Context, m WAMessage) error {
	var contact sql.NullInt64
	if m.ContactID != 0 {
		contact = sql.NullInt64{Int64: m.ContactID, Valid: true}
	}
	_, err := d.exec(ctx, `INSERT INTO wa_messages(contact_id, direction, wa_id, phone, type, body, at) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(wa_id) DO NOTHING`, contact, m.Direction, m.WAID, m.Phone, m.Type, nullString(m.Body), m.At.UnixMilli())
	if err != nil {
		return fmt.Errorf("save whatsapp message: %w", err)
	}
	return nil
}

// ListWAMessages returns a contact's conversation, oldest first.
func (d *DB) ListWAMessages(ctx context.Context, contactID int64) ([]WAMessage, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT coalesce(contact_id,0), direction, wa_id, phone, type, coalesce(body,''), at
		FROM wa_messages WHERE contact_id = ? ORDER BY at, id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("list whatsapp messages: %w", err)
	}
	defer rows.Close()
	out := []WAMessage{}
	for rows.Next() {
		var m WAMessage
		var at int64
		if err := rows.Scan(&m.ContactID, &m.Direction, &m.WAID, &m.Phone, &m.Type, &m.Body, &at); err != nil {
			return nil, fmt.Errorf("list whatsapp messages: %w", err)
		}
		m.At = msToTime(at)
		out = append(out, m)
	}
	return out, rows.Err()
}
