package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// DNCEntry is one number on a do-not-call list.
type DNCEntry struct {
	ID         int64     `json:"id,string"`
	Phone      string    `json:"phone"`
	CampaignID int64     `json:"campaign_id,string,omitempty"` // 0: the global list
	Reason     string    `json:"reason,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// DNCStore keeps the global and per-campaign do-not-call lists.
type DNCStore interface {
	// AddDNC puts E.164 numbers on the list of campaignID (0: global) and moves the
	// matching contacts through the journey's "added to DNC" event; it returns how
	// many numbers were new.
	AddDNC(ctx context.Context, who Actor, campaignID int64, phones []string, reason string) (int, error)
	RemoveDNC(ctx context.Context, who Actor, campaignID int64, phone, reason string) error
	ListDNC(ctx context.Context, campaignID int64, digits string, limit, offset int) ([]DNCEntry, int, error)
	// IsDNC reports whether phone may not be called for campaignID (global or campaign list).
	IsDNC(ctx context.Context, campaignID int64, phone string) (bool, error)
}

func scopeArg(campaignID int64) sql.NullInt64 {
	return sql.NullInt64{Int64: campaignID, Valid: campaignID != 0}
}

// AddDNC adds numbers to a list in one transaction.
func (d *DB) AddDNC(ctx context.Context, who Actor, campaignID int64, phones []string, reason string) (int, error) {
	added := 0
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, "INSERT INTO dnc(phone, campaign_id, reason, created_at) VALUES (?,?,?,?) ON CONFLICT DO NOTHING")
		if err != nil {
			return fmt.Errorf("add do-not-call: %w", err)
		}
		defer ins.Close()
		match, err := tx.PrepareContext(ctx, `SELECT id FROM contacts WHERE (phone = ?1 OR whatsapp = ?1) AND (?2 = 0 OR campaign_id = ?2)`)
		if err != nil {
			return fmt.Errorf("add do-not-call: %w", err)
		}
		defer match.Close()
		now := d.nowMs()
		var newPhones []string
		for _, p := range phones {
			res, err := ins.ExecContext(ctx, p, scopeArg(campaignID), nullString(reason), now)
			if err != nil {
				if isForeignKeyViolation(err) {
					return fmt.Errorf("campaign %d: %w", campaignID, ErrNotFound)
				}
				return fmt.Errorf("add do-not-call %s: %w", p, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added++
				newPhones = append(newPhones, p)
			}
			if err := d.moveToDNC(ctx, tx, match, p, campaignID, msToTime(now)); err != nil {
				return err
			}
		}
		if added == 0 {
			return nil
		}
		return d.audit(ctx, tx, who, "dnc.add", "dnc", scopeName(campaignID), nil,
			map[string]any{"phones": newPhones, "reason": reason})
	})
	return added, err
}

// moveToDNC moves the contacts with phone through the journey's "added to DNC"
// event: the table decides which of them it stops (those still on their way).
func (d *DB) moveToDNC(ctx context.Context, tx *sql.Tx, match *sql.Stmt, phone string, campaignID int64, now time.Time) error {
	return d.movePhone(ctx, tx, match, phone, campaignID, campaigns.Event{Kind: campaigns.EventAddedToDNC}, now)
}

// movePhone moves the contacts with phone (of campaignID, 0: every campaign)
// through the journey's event ev.
func (d *DB) movePhone(ctx context.Context, tx *sql.Tx, match *sql.Stmt, phone string, campaignID int64, ev campaigns.Event, now time.Time) error {
	rows, err := match.QueryContext(ctx, phone, campaignID)
	if err != nil {
		return fmt.Errorf("mark contacts do-not-call: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("mark contacts do-not-call: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mark contacts do-not-call: %w", err)
	}
	for _, id := range ids {
		err := d.moveContact(ctx, tx, id, func(c campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			return campaigns.Apply(nil, c, pos, ev, now)
		})
		if err != nil {
			return fmt.Errorf("mark contacts do-not-call: %w", err)
		}
	}
	return nil
}

func scopeName(campaignID int64) string {
	if campaignID == 0 {
		return "global"
	}
	return idString(campaignID)
}

// RemoveDNC takes a number off a list.
func (d *DB) RemoveDNC(ctx context.Context, who Actor, campaignID int64, phone, reason string) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM dnc WHERE phone = ? AND coalesce(campaign_id,0) = ?", phone, campaignID)
		if err != nil {
			return fmt.Errorf("remove do-not-call: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s on list %s: %w", phone, scopeName(campaignID), ErrNotFound)
		}
		var after map[string]any
		if reason != "" {
			after = map[string]any{"reason": reason}
		}
		return d.audit(ctx, tx, who, "dnc.remove", "dnc", scopeName(campaignID), map[string]any{"phone": phone}, after)
	})
}

// ListDNC pages through one list, newest first; digits, when not empty, keeps
// the numbers that contain them (a search by part of a number).
func (d *DB) ListDNC(ctx context.Context, campaignID int64, digits string, limit, offset int) ([]DNCEntry, int, error) {
	like := "%" + digits + "%"
	var total int
	if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM dnc WHERE coalesce(campaign_id,0) = ? AND phone LIKE ?", campaignID, like).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count do-not-call: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT id, phone, coalesce(campaign_id,0), coalesce(reason,''), created_at FROM dnc
		WHERE coalesce(campaign_id,0) = ? AND phone LIKE ? ORDER BY id DESC LIMIT ? OFFSET ?`, campaignID, like, limitOrDefault(limit), offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list do-not-call: %w", err)
	}
	defer rows.Close()
	out := []DNCEntry{}
	for rows.Next() {
		var e DNCEntry
		var created int64
		if err := rows.Scan(&e.ID, &e.Phone, &e.CampaignID, &e.Reason, &created); err != nil {
			return nil, 0, fmt.Errorf("list do-not-call: %w", err)
		}
		e.CreatedAt = msToTime(created)
		out = append(out, e)
	}
	return out, total, rows.Err()
}

// IsDNC checks both the global list and the campaign's.
func (d *DB) IsDNC(ctx context.Context, campaignID int64, phone string) (bool, error) {
	var blocked bool
	err := d.db.QueryRowContext(ctx, "SELECT EXISTS(SELECT 1 FROM dnc WHERE phone = ? AND (campaign_id IS NULL OR campaign_id = ?))",
		phone, campaignID).Scan(&blocked)
	if err != nil {
		return false, fmt.Errorf("check do-not-call: %w", err)
	}
	return blocked, nil
}
