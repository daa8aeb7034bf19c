package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// ComplianceStore reads what the law counts: abandonment over its periods, the
// policy gate's refusals, and the dials a campaign placed.
type ComplianceStore interface {
	Abandonment(ctx context.Context, campaignID int64, now time.Time, loc *time.Location) (Abandonment, error)
	Refusals(ctx context.Context, campaignID int64, since time.Time) (Refusals, error)
	AmbiguousZoneContacts(ctx context.Context, campaignID int64) (int, error)
	DialsPlaced(ctx context.Context, campaignID int64, since time.Time) ([]DialPlaced, error)
	SetSafeHarbourPlayed(ctx context.Context, attemptID int64, which string) error
	SetSafeHarbour(ctx context.Context, who Actor, campaignID int64, wav []byte, length time.Duration) error
	GetSafeHarbour(ctx context.Context, campaignID int64) (SafeHarbour, error)
	SafeHarbourStamp(ctx context.Context, campaignID int64) (time.Time, error)
	DeleteSafeHarbour(ctx context.Context, who Actor, campaignID int64) error
}

// AbandonFigures counts people answered (connected to an agent or abandoned) and,
// of them, those abandoned; Rate is abandoned/answered, 0 when none answered.
type AbandonFigures struct {
	Answered  int     `json:"answered"`
	Abandoned int     `json:"abandoned"`
	Rate      float64 `json:"rate"`
}

func (f *AbandonFigures) add(abandoned bool) {
	f.Answered++
	if abandoned {
		f.Abandoned++
	}
	f.Rate = float64(f.Abandoned) / float64(f.Answered)
}

// DayAbandonment is one calendar day's abandonment in the campaign's zone.
type DayAbandonment struct {
	Day string `json:"day"` // YYYY-MM-DD
	AbandonFigures
}

// Abandonment is a campaign's abandonment as the regulators count it, at one instant.
type Abandonment struct {
	// Days30 is the rolling 30 days (US Telemarketing Sales Rule).
	Days30 AbandonFigures `json:"days_30"`
	// Hours24 is the rolling 24 hours (Ofcom).
	Hours24 AbandonFigures `json:"hours_24"`
	// Hour is the clock hour in progress, from HourStart: what the pacer's hourly guard
	// starts from after a restart.
	Hour      AbandonFigures `json:"hour"`
	HourStart time.Time      `json:"hour_start"`
	// Days are the last 30 calendar days in the campaign's zone, oldest first, today last.
	Days []DayAbandonment `json:"days"`
}

// answeredAt is when an attempt's person answered, for attempts whose answer time
// was not kept: when it ended, else when it was placed.
const answeredAt = `coalesce(answer_at, end_at, created_at)`

// personAnswered selects the attempts a person answered on a call channel, as
// CampaignStats counts them: templates are messages, not calls.
// Only the calls the campaign placed count: a person's own call to the business
// (inbound) is no dial whose answer could be abandoned.
var personAnswered = `channel != '` + string(campaigns.ChannelWhatsAppTemplate) + `' AND direction = 'outbound' AND outcome IN ` + answeredIn

// Abandonment computes the campaign's abandonment at now from the attempts kept,
// days counted in loc (the campaign's zone).
func (d *DB) Abandonment(ctx context.Context, campaignID int64, now time.Time, loc *time.Location) (Abandonment, error) {
	if loc == nil {
		loc = time.UTC
	}
	a := Abandonment{HourStart: now.Truncate(time.Hour)}
	local := now.In(loc)
	today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	firstDay := today.AddDate(0, 0, -29)
	for day := firstDay; !day.After(today); day = day.AddDate(0, 0, 1) {
		a.Days = append(a.Days, DayAbandonment{Day: day.Format(time.DateOnly)})
	}
	from := min(firstDay.UnixMilli(), now.Add(-30*24*time.Hour).UnixMilli())
	rows, err := d.db.QueryContext(ctx, `SELECT `+answeredAt+`, outcome FROM attempts
		WHERE campaign_id = ? AND `+personAnswered+` AND `+answeredAt+` >= ? AND `+answeredAt+` <= ?`,
		campaignID, from, now.UnixMilli())
	if err != nil {
		return a, fmt.Errorf("abandonment of campaign %d: %w", campaignID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ms int64
		var outcome string
		if err := rows.Scan(&ms, &outcome); err != nil {
			return a, fmt.Errorf("abandonment of campaign %d: %w", campaignID, err)
		}
		at := time.UnixMilli(ms)
		ab := campaigns.Outcome(outcome) == campaigns.OutcomeAbandoned
		if now.Sub(at) <= 30*24*time.Hour {
			a.Days30.add(ab)
		}
		if now.Sub(at) <= 24*time.Hour {
			a.Hours24.add(ab)
		}
		if !at.Before(a.HourStart) {
			a.Hour.add(ab)
		}
		// Days are counted by date, not by 24 h steps: a daylight-saving day has 23 or 25.
		day := at.In(loc).Format(time.DateOnly)
		for i := range a.Days {
			if a.Days[i].Day == day {
				a.Days[i].add(ab)
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("abandonment of campaign %d: %w", campaignID, err)
	}
	return a, nil
}

// Refusals are the policy gate's refusals of a campaign's actions.
type Refusals struct {
	// Total counts refused actions; an action refused for two reasons counts once.
	Total int `json:"total"`
	// ByReason counts refused actions by reason code; an action refused for two
	// reasons counts under each.
	ByReason map[string]int `json:"by_reason"`
	// ByAction counts refused actions by action.
	ByAction map[string]int `json:"by_action"`
	// DNCHits counts actions refused because the number is on the do-not-call list.
	DNCHits int `json:"dnc_hits"`
	// OptOuts counts actions refused because the person opted out, plus the
	// campaign's numbers on the do-not-call list for an opt-out.
	OptOuts int `json:"opt_outs"`
}

// Reason codes the report counts apart (campaigns/policy.go holds them all).
const (
	reasonDoNotCall = "do_not_call"
	reasonOptedOut  = "opted_out"
)

// Refusals counts the policy gate's refusals of the campaign's actions since since.
func (d *DB) Refusals(ctx context.Context, campaignID int64, since time.Time) (Refusals, error) {
	r := Refusals{ByReason: map[string]int{}, ByAction: map[string]int{}}
	rows, err := d.db.QueryContext(ctx, `SELECT action, reasons FROM policy_refusals WHERE campaign_id = ? AND at >= ?`,
		campaignID, since.UnixMilli())
	if err != nil {
		return r, fmt.Errorf("refusals of campaign %d: %w", campaignID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var action, reasons string
		if err := rows.Scan(&action, &reasons); err != nil {
			return r, fmt.Errorf("refusals of campaign %d: %w", campaignID, err)
		}
		r.Total++
		r.ByAction[action]++
		for _, reason := range strings.Split(reasons, ",") {
			reason = strings.TrimSpace(reason)
			if reason == "" {
				continue
			}
			r.ByReason[reason]++
			switch reason {
			case reasonDoNotCall:
				r.DNCHits++
			case reasonOptedOut:
				r.OptOuts++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("refusals of campaign %d: %w", campaignID, err)
	}
	// Opt-outs also reach the DNC list without an action being refused (a reply, an
	// agent's disposition): those of the campaign's numbers count too.
	var listed int
	if err := d.db.QueryRowContext(ctx, `SELECT count(DISTINCT n.phone) FROM dnc n
		JOIN contacts c ON c.phone = n.phone AND c.campaign_id = ?
		WHERE (n.campaign_id IS NULL OR n.campaign_id = ?) AND n.reason IN ('opt_out', 'opted_out') AND n.created_at >= ?`,
		campaignID, campaignID, since.UnixMilli()).Scan(&listed); err != nil {
		return r, fmt.Errorf("refusals of campaign %d: opt-outs listed: %w", campaignID, err)
	}
	r.OptOuts += listed
	return r, nil
}

// AmbiguousZoneContacts counts the campaign's contacts whose number leaves more than
// one time zone possible, from the contacts' zones column.
func (d *DB) AmbiguousZoneContacts(ctx context.Context, campaignID int64) (int, error) {
	// The zones are IANA names separated by spaces (migration 0010).
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM contacts WHERE campaign_id = ? AND trim(coalesce(zones,'')) LIKE '% %'`,
		campaignID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("ambiguous zones of campaign %d: %w", campaignID, err)
	}
	return n, nil
}

// DialPlaced is a call a campaign placed (SIP or WhatsApp) and the contact it was
// for, as the calling-hours check needs it.
type DialPlaced struct {
	AttemptID int64
	At        time.Time
	Contact   campaigns.Contact
}

// DialsPlaced lists the calls the campaign placed since since, oldest first:
// attempts that reached a channel (not those a channel refused before dialling).
func (d *DB) DialsPlaced(ctx context.Context, campaignID int64, since time.Time) ([]DialPlaced, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT a.id, a.created_at, c.id, c.phone, coalesce(c.timezone,''), coalesce(c.zones,'')
		FROM attempts a JOIN contacts c ON c.id = a.contact_id
		WHERE a.campaign_id = ? AND a.created_at >= ? AND a.channel IN ('`+
		string(campaigns.ChannelSIP)+`','`+string(campaigns.ChannelWhatsAppCall)+`')
		AND a.direction = 'outbound' AND coalesce(a.outcome,'') NOT IN `+unplacedIn+` ORDER BY a.created_at`,
		campaignID, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("dials of campaign %d: %w", campaignID, err)
	}
	defer rows.Close()
	var out []DialPlaced
	for rows.Next() {
		var p DialPlaced
		var ms int64
		var zones string
		if err := rows.Scan(&p.AttemptID, &ms, &p.Contact.ID, &p.Contact.Phone, &p.Contact.Timezone, &zones); err != nil {
			return nil, fmt.Errorf("dials of campaign %d: %w", campaignID, err)
		}
		p.At, p.Contact.CampaignID, p.Contact.Zones = time.UnixMilli(ms), campaignID, strings.Fields(zones)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Safe-harbour messages an abandoned attempt may record.
const (
	SafeHarbourBuiltin  = "builtin"
	SafeHarbourCampaign = "campaign"
)

// SetSafeHarbourPlayed records that an attempt's person heard the safe-harbour
// message, and which one (SafeHarbourBuiltin or SafeHarbourCampaign).
func (d *DB) SetSafeHarbourPlayed(ctx context.Context, attemptID int64, which string) error {
	if which != SafeHarbourBuiltin && which != SafeHarbourCampaign {
		return fmt.Errorf("safe harbour of attempt %d: unknown message %q", attemptID, which)
	}
	res, err := d.exec(ctx, `UPDATE attempts SET safe_harbour = ? WHERE id = ?`, which, attemptID)
	if err != nil {
		return fmt.Errorf("safe harbour of attempt %d: %w", attemptID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("safe harbour of attempt %d: %w", attemptID, ErrNotFound)
	}
	return nil
}

// SafeHarbour is a campaign's own safe-harbour message: 8 kHz mono PCM WAV, as
// media.ConvertPrompt makes it.
type SafeHarbour struct {
	WAV       []byte
	Length    time.Duration
	UpdatedAt time.Time
}

// safeHarbourAudit is what the audit log keeps of a message: not the audio.
type safeHarbourAudit struct {
	Bytes    int   `json:"bytes"`
	LengthMs int64 `json:"length_ms"`
}

// SetSafeHarbour stores the campaign's safe-harbour message, replacing any, and audits it.
func (d *DB) SetSafeHarbour(ctx context.Context, who Actor, campaignID int64, wav []byte, length time.Duration) error {
	if len(wav) == 0 {
		return fmt.Errorf("safe harbour of campaign %d: no audio", campaignID)
	}
	return d.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM campaigns WHERE id = ?`, campaignID).Scan(&n); err != nil {
			return fmt.Errorf("safe harbour of campaign %d: %w", campaignID, err)
		}
		if n == 0 {
			return fmt.Errorf("campaign %d: %w", campaignID, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO campaign_safe_harbour(campaign_id, audio, duration_ms, updated_at) VALUES (?,?,?,?)
			ON CONFLICT (campaign_id) DO UPDATE SET audio = excluded.audio, duration_ms = excluded.duration_ms, updated_at = excluded.updated_at`,
			campaignID, wav, length.Milliseconds(), d.nowMs()); err != nil {
			return fmt.Errorf("safe harbour of campaign %d: %w", campaignID, err)
		}
		return d.audit(ctx, tx, who, "campaign.safe_harbour.set", "campaign", fmt.Sprint(campaignID), nil,
			safeHarbourAudit{Bytes: len(wav), LengthMs: length.Milliseconds()})
	})
}

// GetSafeHarbour returns the campaign's own safe-harbour message; ErrNotFound when it
// has none (the built-in prompt plays).
func (d *DB) GetSafeHarbour(ctx context.Context, campaignID int64) (SafeHarbour, error) {
	var sh SafeHarbour
	var ms, updated int64
	err := d.db.QueryRowContext(ctx, `SELECT audio, duration_ms, updated_at FROM campaign_safe_harbour WHERE campaign_id = ?`,
		campaignID).Scan(&sh.WAV, &ms, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return sh, fmt.Errorf("safe harbour of campaign %d: %w", campaignID, ErrNotFound)
	}
	if err != nil {
		return sh, fmt.Errorf("safe harbour of campaign %d: %w", campaignID, err)
	}
	sh.Length, sh.UpdatedAt = time.Duration(ms)*time.Millisecond, msToTime(updated)
	return sh, nil
}

// SafeHarbourStamp returns when the campaign's safe-harbour message was last set, or
// the zero time when it has none: the engine reloads the message only when it changes.
func (d *DB) SafeHarbourStamp(ctx context.Context, campaignID int64) (time.Time, error) {
	var updated int64
	err := d.db.QueryRowContext(ctx, `SELECT updated_at FROM campaign_safe_harbour WHERE campaign_id = ?`, campaignID).Scan(&updated)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("safe harbour of campaign %d: %w", campaignID, err)
	}
	return msToTime(updated), nil
}

// DeleteSafeHarbour removes the campaign's own message: the built-in prompt plays
// again. Removing none is not an error.
func (d *DB) DeleteSafeHarbour(ctx context.Context, who Actor, campaignID int64) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM campaign_safe_harbour WHERE campaign_id = ?`, campaignID)
		if err != nil {
			return fmt.Errorf("safe harbour of campaign %d: %w", campaignID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return d.audit(ctx, tx, who, "campaign.safe_harbour.delete", "campaign", fmt.Sprint(campaignID), nil, nil)
	})
}
