package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
)

// CampaignStore keeps campaigns.
type CampaignStore interface {
	CreateCampaign(ctx context.Context, who Actor, c *campaigns.Campaign) error
	GetCampaign(ctx context.Context, id int64) (campaigns.Campaign, error)
	// ListCampaigns lists campaigns; with ids non-nil, only those.
	ListCampaigns(ctx context.Context, ids []int64) ([]campaigns.Campaign, error)
	// UpdateCampaign applies change to the stored campaign in one transaction and
	// records the audit entry named action. change may refuse by returning an error.
	UpdateCampaign(ctx context.Context, who Actor, id int64, action string, change func(*campaigns.Campaign) error) (campaigns.Campaign, error)
	// ArchiveCampaign hides a campaign from lists and closes it to changes, if
	// allowed says so; its contacts and attempts stay for reports.
	ArchiveCampaign(ctx context.Context, who Actor, id int64, allowed func(campaigns.Campaign) error) (campaigns.Campaign, error)
}

const campaignColumns = `id, name, caller_id, default_country, state, schedule, window_start, window_end,
	ladder, pacing, options, created_at, updated_at, archived_at`

// campaignOptions are the campaign settings kept together in the options column.
type campaignOptions struct {
	Dispositions []campaigns.Disposition  `json:"dispositions,omitempty"`
	WrapUp       campaigns.Duration       `json:"wrap_up,omitempty"`
	AMD          campaigns.AMD            `json:"amd"`
	Record       bool                     `json:"record,omitempty"`
	Permission   campaigns.CallPermission `json:"call_permission"`
	// RequireConsent keeps the WhatsApp rungs for contacts with a recorded consent.
	RequireConsent bool                   `json:"require_consent,omitempty"`
	WeekHours      *campaigns.WeeklyHours `json:"calling_hours,omitempty"`
	Holidays       campaigns.Holidays     `json:"holidays"`
	Script         string                 `json:"script,omitempty"`
}

type rowScanner interface{ Scan(dest ...any) error }

func scanCampaign(r rowScanner) (campaigns.Campaign, error) {
	var c campaigns.Campaign
	var schedule, ladder, pacing, options string
	var created, updated int64
	var ws, we int
	var archived sql.NullInt64
	if err := r.Scan(&c.ID, &c.Name, &c.CallerID, &c.DefaultCountry, &c.State, &schedule, &ws, &we,
		&ladder, &pacing, &options, &created, &updated, &archived); err != nil {
		return c, err
	}
	if archived.Valid {
		at := msToTime(archived.Int64)
		c.ArchivedAt = &at
	}
	var opts campaignOptions
	c.Window = campaigns.Window{Start: campaigns.ClockTime(ws), End: campaigns.ClockTime(we)}
	c.CreatedAt, c.UpdatedAt = msToTime(created), msToTime(updated)
	for _, f := range []struct {
		src string
		dst any
	}{{schedule, &c.Schedule}, {ladder, &c.Ladder}, {pacing, &c.Pacing}, {options, &opts}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return c, fmt.Errorf("decode campaign %d: %w", c.ID, err)
		}
	}
	c.Dispositions, c.WrapUp, c.AMD, c.Record = opts.Dispositions, opts.WrapUp, opts.AMD, opts.Record
	c.CallPermission, c.RequireConsent = opts.Permission, opts.RequireConsent
	c.WeekHours, c.Holidays, c.Script = opts.WeekHours, opts.Holidays, opts.Script
	// Campaigns stored before an option existed read as its default.
	c.ApplyDefaults()
	return c, nil
}

func campaignJSON(c *campaigns.Campaign) (schedule, ladder, pacing, options string, err error) {
	var out [4][]byte
	for i, v := range []any{c.Schedule, c.Ladder, c.Pacing, campaignOptions{Dispositions: c.Dispositions, WrapUp: c.WrapUp, AMD: c.AMD, Record: c.Record,
		Permission: c.CallPermission, WeekHours: c.WeekHours, Holidays: c.Holidays, RequireConsent: c.RequireConsent, Script: c.Script}} {
		if out[i], err = json.Marshal(v); err != nil {
			return "", "", "", "", err
		}
	}
	return string(out[0]), string(out[1]), string(out[2]), string(out[3]), nil
}

// CreateCampaign stores c, setting its ID and timestamps.
func (d *DB) CreateCampaign(ctx context.Context, who Actor, c *campaigns.Campaign) error {
	schedule, ladder, pacing, options, err := campaignJSON(c)
	if err != nil {
		return fmt.Errorf("encode campaign: %w", err)
	}
	now := d.now().UTC()
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		c.ID, err = insertID(ctx, tx, `INSERT INTO campaigns(name, caller_id, default_country, state, schedule,
			window_start, window_end, ladder, pacing, options, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
			c.Name, c.CallerID, c.DefaultCountry, c.State, schedule, int(c.Window.Start), int(c.Window.End),
			ladder, pacing, options, now.UnixMilli(), now.UnixMilli())
		if err != nil {
			return fmt.Errorf("insert campaign: %w", err)
		}
		c.CreatedAt, c.UpdatedAt = msToTime(now.UnixMilli()), msToTime(now.UnixMilli())
		if _, err := bumpVersion(ctx, tx, VersionCampaigns); err != nil {
			return err
		}
		return d.audit(ctx, tx, who, "campaign.create", "campaign", idString(c.ID), nil, c)
	})
}

// GetCampaign returns one campaign.
func (d *DB) GetCampaign(ctx context.Context, id int64) (campaigns.Campaign, error) {
	c, err := scanCampaign(d.db.QueryRowContext(ctx, "SELECT "+campaignColumns+" FROM campaigns WHERE id = ?", id))
	if err != nil {
		return c, notFoundIfNoRows(err, fmt.Sprintf("campaign %d", id))
	}
	return c, nil
}

// ListCampaigns returns the campaigns not archived, ordered by ID.
func (d *DB) ListCampaigns(ctx context.Context, ids []int64) ([]campaigns.Campaign, error) {
	q := "SELECT " + campaignColumns + " FROM campaigns WHERE archived_at IS NULL"
	var args []any
	if ids != nil {
		if len(ids) == 0 {
			return []campaigns.Campaign{}, nil
		}
		q += " AND id IN (?" + strings.Repeat(",?", len(ids)-1) + ")"
		for _, id := range ids {
			args = append(args, id)
		}
	}
	rows, err := d.db.QueryContext(ctx, q+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	defer rows.Close()
	out := []campaigns.Campaign{}
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("list campaigns: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UpdateCampaign reads, changes and writes a campaign in one transaction.
func (d *DB) UpdateCampaign(ctx context.Context, who Actor, id int64, action string, change func(*campaigns.Campaign) error) (campaigns.Campaign, error) {
	var after campaigns.Campaign
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		before, err := scanCampaign(tx.QueryRowContext(ctx, "SELECT "+campaignColumns+" FROM campaigns WHERE id = ?"+d.dialect.lockRow, id))
		if err != nil {
			return notFoundIfNoRows(err, fmt.Sprintf("campaign %d", id))
		}
		if before.ArchivedAt != nil {
			return fmt.Errorf("campaign %d is archived: %w", id, ErrConflict)
		}
		after = before
		after.Ladder = append([]campaigns.Rung(nil), before.Ladder...)
		after.Dispositions = append([]campaigns.Disposition(nil), before.Dispositions...)
		if err := change(&after); err != nil {
			return err
		}
		after.ID = id
		after.CreatedAt = before.CreatedAt
		after.UpdatedAt = msToTime(d.nowMs())
		schedule, ladder, pacing, options, err := campaignJSON(&after)
		if err != nil {
			return fmt.Errorf("encode campaign: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET name=?, caller_id=?, default_country=?, state=?, schedule=?,
			window_start=?, window_end=?, ladder=?, pacing=?, options=?, updated_at=? WHERE id=?`,
			after.Name, after.CallerID, after.DefaultCountry, after.State, schedule, int(after.Window.Start),
			int(after.Window.End), ladder, pacing, options, after.UpdatedAt.UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("update campaign: %w", err)
		}
		if _, err := bumpVersion(ctx, tx, VersionCampaigns); err != nil {
			return err
		}
		return d.audit(ctx, tx, who, action, "campaign", idString(id), before, after)
	})
	return after, err
}

// ArchiveCampaign marks a campaign archived, if allowed says so. Nothing under it
// is removed: its contacts, attempts and audit entries stay for reports.
func (d *DB) ArchiveCampaign(ctx context.Context, who Actor, id int64, allowed func(campaigns.Campaign) error) (campaigns.Campaign, error) {
	var after campaigns.Campaign
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		before, err := scanCampaign(tx.QueryRowContext(ctx, "SELECT "+campaignColumns+" FROM campaigns WHERE id = ?"+d.dialect.lockRow, id))
		if err != nil {
			return notFoundIfNoRows(err, fmt.Sprintf("campaign %d", id))
		}
		if before.ArchivedAt != nil {
			return fmt.Errorf("campaign %d is already archived: %w", id, ErrConflict)
		}
		if err := allowed(before); err != nil {
			return err
		}
		now := d.nowMs()
		if _, err := tx.ExecContext(ctx, "UPDATE campaigns SET archived_at = ?, updated_at = ? WHERE id = ?", now, now, id); err != nil {
			return fmt.Errorf("archive campaign: %w", err)
		}
		after = before
		at := msToTime(now)
		after.ArchivedAt, after.UpdatedAt = &at, at
		if _, err := bumpVersion(ctx, tx, VersionCampaigns); err != nil {
			return err
		}
		return d.audit(ctx, tx, who, "campaign.archive", "campaign", idString(id), before, after)
	})
	return after, err
}
