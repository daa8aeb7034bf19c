package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PreviewSkip is a preview agent's decision not to dial the contact it was offered.
type PreviewSkip struct {
	ID         int64     `json:"id,string"`
	ContactID  int64     `json:"contact_id,string"`
	CampaignID int64     `json:"campaign_id,string"`
	AgentID    int64     `json:"agent_id,string,omitempty"`
	Reason     string    `json:"reason"`
	Note       string    `json:"note,omitempty"`
	At         time.Time `json:"at"`
}

// SkipContact records a skip and moves the contact as move says (the journey's
// preview_skipped row), in one transaction: the engine decides, storage keeps it.
func (d *DB) SkipContact(ctx context.Context, s *PreviewSkip, move MoveFunc) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var agent sql.NullInt64
		if s.AgentID != 0 {
			agent = sql.NullInt64{Int64: s.AgentID, Valid: true}
		}
		var err error
		s.ID, err = insertID(ctx, tx, `INSERT INTO preview_skips (contact_id, campaign_id, agent_id, reason, note, created_at)
			VALUES (?,?,?,?,?,?)`, s.ContactID, s.CampaignID, agent, s.Reason, s.Note, s.At.UnixMilli())
		if err != nil {
			return fmt.Errorf("record skip of contact %d: %w", s.ContactID, err)
		}
		return d.moveContact(ctx, tx, s.ContactID, move)
	})
}

// ListSkips lists a contact's preview skips, oldest first.
func (d *DB) ListSkips(ctx context.Context, contactID int64) ([]PreviewSkip, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, contact_id, campaign_id, coalesce(agent_id,0), reason, note, created_at
		FROM preview_skips WHERE contact_id = ? ORDER BY id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("list skips: %w", err)
	}
	defer rows.Close()
	out := []PreviewSkip{}
	for rows.Next() {
		var s PreviewSkip
		var at int64
		if err := rows.Scan(&s.ID, &s.ContactID, &s.CampaignID, &s.AgentID, &s.Reason, &s.Note, &at); err != nil {
			return nil, fmt.Errorf("list skips: %w", err)
		}
		s.At = msToTime(at)
		out = append(out, s)
	}
	return out, rows.Err()
}
