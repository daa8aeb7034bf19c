package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// InboundStore takes the persons' own calls to the business.
type InboundStore interface {
	// StartInboundAttempt claims a contact for its call to the business.
	StartInboundAttempt(ctx context.Context, contactID int64, channel campaigns.Channel, rung int) (Attempt, error)
	// InboundContact finds or adds the contact of a campaign's inbound queue for a number.
	InboundContact(ctx context.Context, campaignID int64, e164 string) (DueContact, error)
	// InboundQueues counts each campaign's inbound calls since an instant.
	InboundQueues(ctx context.Context, since time.Time) (map[int64]InboundQueue, error)
}

var _ InboundStore = (*DB)(nil)

// StartInboundAttempt claims a contact for a person's own call to the business
// (the journey's inbound_call event: pending, done, exhausted and invalid
// contacts are claimed) and records it as an inbound attempt on channel and
// rung. A contact with an attempt under way, or on a do-not-call list, is a
// conflict (ErrConflict).
func (d *DB) StartInboundAttempt(ctx context.Context, contactID int64, channel campaigns.Channel, rung int) (Attempt, error) {
	return d.startAttempt(ctx, contactID, channel, rung, campaigns.Event{Kind: campaigns.EventInboundCall}, DirectionInbound)
}

// InboundContact returns the contact of campaignID whose number is e164, adding
// one when the campaign has none: an unknown person called the business and the
// campaign is the inbound queue for such calls. A contact it adds is done (it is
// owed nothing, so the campaign does not dial it) until its call is missed.
func (d *DB) InboundContact(ctx context.Context, campaignID int64, e164 string) (DueContact, error) {
	if e164 == "" {
		return DueContact{}, errors.New("inbound contact: phone: empty")
	}
	var dc DueContact
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		now := d.nowMs()
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts(campaign_id, phone, whatsapp, status, created_at, updated_at)
			VALUES (?, ?, ?, 'done', ?, ?) ON CONFLICT(campaign_id, phone) DO NOTHING`, campaignID, e164, e164, now, now); err != nil {
			return fmt.Errorf("add inbound contact: %w", err)
		}
		var err error
		dc, err = scanDueContact(tx.QueryRowContext(ctx, "SELECT "+dueColumns+" FROM contacts WHERE campaign_id = ? AND phone = ?", campaignID, e164))
		if err != nil {
			return fmt.Errorf("read inbound contact: %w", notFoundIfNoRows(err, "contact "+e164))
		}
		return nil
	})
	return dc, err
}

// InboundQueue is one campaign's inbound queue figures from the attempts kept:
// the persons' own calls to the business since a given instant.
type InboundQueue struct {
	CampaignID int64 `json:"campaign_id,string"`
	// Answered are the calls put through to an agent; Abandoned those nobody
	// took (the caller hung up in the queue, or waited the longest wait).
	Answered  int `json:"answered"`
	Abandoned int `json:"abandoned"`
	// LongestWait is the longest a caller waited in the queue, to an agent or
	// to giving up (the detail's waited_ms of a caller who left it for the
	// apology: the apology is no wait).
	LongestWait time.Duration `json:"-"`
}

// InboundQueues counts the inbound calls of each campaign that ended their wait
// (put through, or given up) at or after since.
func (d *DB) InboundQueues(ctx context.Context, since time.Time) (map[int64]InboundQueue, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT campaign_id,
		count(CASE WHEN connect_at IS NOT NULL THEN 1 END), count(CASE WHEN coalesce(outcome,'') = ?2 THEN 1 END),
		max(coalesce(`+d.dialect.jsonInt("detail", "waited_ms")+`, coalesce(connect_at, end_at) - answer_at))
		FROM attempts WHERE direction = 'inbound' AND answer_at IS NOT NULL AND coalesce(connect_at, end_at) >= ?1
		AND (connect_at IS NOT NULL OR outcome = ?2) GROUP BY campaign_id`, since.UnixMilli(), string(campaigns.OutcomeInboundMissed))
	if err != nil {
		return nil, fmt.Errorf("inbound queues: %w", err)
	}
	defer rows.Close()
	out := map[int64]InboundQueue{}
	for rows.Next() {
		var q InboundQueue
		var longest sql.NullInt64
		if err := rows.Scan(&q.CampaignID, &q.Answered, &q.Abandoned, &longest); err != nil {
			return nil, fmt.Errorf("inbound queues: %w", err)
		}
		q.LongestWait = time.Duration(longest.Int64) * time.Millisecond
		out[q.CampaignID] = q
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inbound queues: %w", err)
	}
	return out, nil
}
