package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// PolicyRefusal is one outbound action the policy gate refused, kept in the
// contact's history.
type PolicyRefusal struct {
	ContactID     int64                   `json:"contact_id,string"`
	CampaignID    int64                   `json:"campaign_id,string"`
	Action        campaigns.ContactAction `json:"action"`
	Reasons       []campaigns.Reason      `json:"reasons"`
	At            time.Time               `json:"at"`
	NextAllowedAt *time.Time              `json:"next_allowed_at"`
}

// Sources of an opt-out.
const (
	OptOutWhatsAppReply = "whatsapp_reply"
	OptOutDisposition   = "disposition"
	OptOutAPI           = "api"
)

// PolicyStore reads what the policy gate needs and keeps its refusals.
type PolicyStore interface {
	// PolicyFacts reads what the gate needs to rule on an action on a contact at
	// at, for the number the action goes to (empty: the contact's phone).
	PolicyFacts(ctx context.Context, contactID int64, number string, at time.Time) (campaigns.Facts, error)
	// RecordPolicyRefusal keeps a refusal in the contact's history.
	RecordPolicyRefusal(ctx context.Context, r PolicyRefusal) error
	// PolicyRefusals lists a contact's refusals, oldest first.
	PolicyRefusals(ctx context.Context, contactID int64) ([]PolicyRefusal, error)
	// OptOut puts numbers on the global do-not-call list as the person's own
	// wish (source: OptOut*), marking their contacts in every campaign, and
	// has every node end its calls ringing to them (CommandStopRinging); it
	// returns the numbers that were not opted out before.
	OptOut(ctx context.Context, who Actor, phones []string, source string) ([]string, error)
	// OptedOut reports whether a number was opted out.
	OptedOut(ctx context.Context, phone string) (bool, error)
}

var _ PolicyStore = (*DB)(nil)

// PolicyFacts reads a contact's facts in one read transaction.
func (d *DB) PolicyFacts(ctx context.Context, contactID int64, number string, at time.Time) (campaigns.Facts, error) {
	var f campaigns.Facts
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return f, fmt.Errorf("policy facts: %w", err)
	}
	defer tx.Rollback()
	var (
		campaignID             int64
		phone, wa, perm        string
		consent, until, cbAgnt sql.NullInt64
	)
	err = tx.QueryRowContext(ctx, `SELECT campaign_id, phone, coalesce(whatsapp,''), wa_permission, wa_permission_until, consent_at,
		CASE WHEN callback_at IS NOT NULL THEN callback_agent_id END FROM contacts WHERE id = ?`, contactID).
		Scan(&campaignID, &phone, &wa, &perm, &until, &consent, &cbAgnt)
	if err != nil {
		return f, notFoundIfNoRows(err, fmt.Sprintf("contact %d", contactID))
	}
	if wa == "" {
		wa = phone
	}
	if number == "" {
		number = phone
	}
	f.Permission = campaigns.Permission(perm)
	if until.Valid {
		f.PermissionUntil = msToTime(until.Int64)
	}
	if consent.Valid {
		f.Consent = msToTime(consent.Int64)
	}
	f.AgentReserved = cbAgnt.Valid && cbAgnt.Int64 != 0
	// Either of the person's numbers on a list stops every action, as AddDNC marks
	// a contact by either.
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM dnc WHERE phone IN (?1, ?2, ?3) AND (campaign_id IS NULL OR campaign_id = ?4)),
		EXISTS(SELECT 1 FROM opt_outs WHERE phone IN (?1, ?2, ?3))`, phone, wa, number, campaignID).Scan(&f.DoNotCall, &f.OptedOut); err != nil {
		return f, fmt.Errorf("policy facts: do-not-call: %w", err)
	}
	atMs := at.UnixMilli()
	// Calls that could not have rung the person do not count, nor does a call the
	// trunk failed before any ringing.
	rows, err := tx.QueryContext(ctx, `SELECT created_at FROM attempts WHERE number = ? AND created_at > ? AND created_at <= ?
		AND channel IN ('sip','whatsapp_call') AND direction = 'outbound' AND coalesce(outcome,'') NOT IN `+campaigns.SQLList(campaigns.UnrungOutcomes()...)+`
		AND NOT (coalesce(outcome,'') IN `+campaigns.SQLList(campaigns.RingCountedOutcomes()...)+` AND ring_at IS NULL) ORDER BY created_at`,
		number, atMs-(7*24*time.Hour).Milliseconds(), atMs)
	if err != nil {
		return f, fmt.Errorf("policy facts: attempts: %w", err)
	}
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			rows.Close()
			return f, fmt.Errorf("policy facts: attempts: %w", err)
		}
		f.NumberAttempts = append(f.NumberAttempts, msToTime(ms))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("policy facts: attempts: %w", err)
	}
	var abandon, inbound sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(coalesce(answer_at, created_at)) FROM attempts WHERE number = ? AND outcome = 'abandoned' AND created_at <= ?`,
		number, atMs).Scan(&abandon); err != nil {
		return f, fmt.Errorf("policy facts: abandons: %w", err)
	}
	if abandon.Valid {
		f.LastAbandon = msToTime(abandon.Int64)
	}
	if err := tx.QueryRowContext(ctx, `SELECT max(at) FROM wa_messages WHERE phone = ? AND direction = 'in' AND at <= ?`, wa, atMs).Scan(&inbound); err != nil {
		return f, fmt.Errorf("policy facts: messages: %w", err)
	}
	if inbound.Valid {
		f.LastInbound = msToTime(inbound.Int64)
	}
	var onInbound bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM attempts WHERE number IN (?1, ?2, ?3) AND direction = 'inbound'
		AND state IN ('`+strings.Join(openAttemptStates, "','")+`'))`, phone, wa, number).Scan(&onInbound); err != nil {
		return f, fmt.Errorf("policy facts: inbound calls: %w", err)
	}
	if onInbound {
		f.OnInboundCallUntil = at.Add(campaigns.InboundRecheck)
	}
	if err := permissionFacts(ctx, tx, &f, phone, wa, atMs); err != nil {
		return f, fmt.Errorf("policy facts: permission requests: %w", err)
	}
	return f, nil
}

// permissionFacts reads the call permission requests sent to wa in the 7 days
// before atMs since the person's last connected WhatsApp call (either way: an
// inbound call is an attempt too), and the bound Meta gave for the next one.
func permissionFacts(ctx context.Context, tx *sql.Tx, f *campaigns.Facts, phone, wa string, atMs int64) error {
	var connected, next sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(answer_at) FROM attempts WHERE number IN (?, ?) AND channel = 'whatsapp_call'
		AND answer_at IS NOT NULL AND answer_at <= ?`, phone, wa, atMs).Scan(&connected); err != nil {
		return err
	}
	from := atMs - (7 * 24 * time.Hour).Milliseconds()
	if connected.Valid && connected.Int64 >= from {
		from = connected.Int64
	}
	rows, err := tx.QueryContext(ctx, `SELECT at FROM wa_permission_requests WHERE phone = ? AND at > ? AND at <= ? ORDER BY at`, wa, from, atMs)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			return err
		}
		f.PermissionRequests = append(f.PermissionRequests, msToTime(ms))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	err = tx.QueryRowContext(ctx, `SELECT next_request_at FROM wa_permission_limits WHERE phone = ?`, wa).Scan(&next)
	if err != nil && err != sql.ErrNoRows {
		return err
	}
	if next.Valid {
		f.PermissionNextRequest = msToTime(next.Int64)
	}
	return nil
}

// RecordPolicyRefusal keeps one refusal.
func (d *DB) RecordPolicyRefusal(ctx context.Context, r PolicyRefusal) error {
	// Comma-separated codes, as the compliance report reads them.
	codes := make([]string, len(r.Reasons))
	for i, reason := range r.Reasons {
		codes[i] = string(reason)
	}
	var next sql.NullInt64
	if r.NextAllowedAt != nil {
		next = sql.NullInt64{Int64: r.NextAllowedAt.UnixMilli(), Valid: true}
	}
	if _, err := d.exec(ctx, `INSERT INTO policy_refusals(contact_id, campaign_id, action, reasons, at, next_allowed_at) VALUES (?,?,?,?,?,?)`,
		r.ContactID, r.CampaignID, string(r.Action), strings.Join(codes, ","), r.At.UnixMilli(), next); err != nil {
		return fmt.Errorf("record refusal: %w", err)
	}
	return nil
}

// PolicyRefusals lists a contact's refusals.
func (d *DB) PolicyRefusals(ctx context.Context, contactID int64) ([]PolicyRefusal, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT contact_id, campaign_id, action, reasons, at, next_allowed_at FROM policy_refusals
		WHERE contact_id = ? ORDER BY at, id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("policy refusals: %w", err)
	}
	defer rows.Close()
	out := []PolicyRefusal{}
	for rows.Next() {
		var r PolicyRefusal
		var reasons string
		var at int64
		var next sql.NullInt64
		if err := rows.Scan(&r.ContactID, &r.CampaignID, &r.Action, &reasons, &at, &next); err != nil {
			return nil, fmt.Errorf("policy refusals: %w", err)
		}
		r.Reasons = []campaigns.Reason{}
		for _, code := range strings.Split(reasons, ",") {
			if code = strings.TrimSpace(code); code != "" {
				r.Reasons = append(r.Reasons, campaigns.Reason(code))
			}
		}
		r.At = msToTime(at)
		if next.Valid {
			t := msToTime(next.Int64)
			r.NextAllowedAt = &t
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// OptOut records opt-outs, puts the numbers on the global list and records
// the command that ends every node's calls ringing to them, in one transaction.
func (d *DB) OptOut(ctx context.Context, who Actor, phones []string, source string) ([]string, error) {
	var fresh []string
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		fresh = fresh[:0]
		now := d.nowMs()
		match, err := tx.PrepareContext(ctx, `SELECT id FROM contacts WHERE (phone = ?1 OR whatsapp = ?1) AND (?2 = 0 OR campaign_id = ?2)`)
		if err != nil {
			return fmt.Errorf("opt out: %w", err)
		}
		defer match.Close()
		for _, p := range phones {
			res, err := tx.ExecContext(ctx, "INSERT INTO opt_outs(phone, source, created_at) VALUES (?,?,?) ON CONFLICT DO NOTHING", p, source, now)
			if err != nil {
				return fmt.Errorf("opt out %s: %w", p, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				fresh = append(fresh, p)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO dnc(phone, campaign_id, reason, created_at) VALUES (?,NULL,?,?) ON CONFLICT DO NOTHING",
				p, "opted_out", now); err != nil {
				return fmt.Errorf("opt out %s: %w", p, err)
			}
			// Every campaign's contacts with the number leave through the journey's table.
			if err := d.movePhone(ctx, tx, match, p, 0, campaigns.Event{Kind: campaigns.EventOptedOut}, msToTime(now)); err != nil {
				return fmt.Errorf("opt out %s: %w", p, err)
			}
		}
		// Every node ends its calls still ringing to the numbers, as for a
		// supervisor's do-not-call list (the caller's node at once, the others
		// at their next poll of the change counters).
		if err := d.appendCommand(ctx, tx, CommandStopRinging, StopRingingCommand{Numbers: phones}); err != nil {
			return err
		}
		if len(fresh) == 0 {
			return nil
		}
		return d.audit(ctx, tx, who, "dnc.opt_out", "dnc", "global", nil, map[string]any{"phones": fresh, "source": source})
	})
	return fresh, err
}

// OptedOut looks a number up among the opt-outs.
func (d *DB) OptedOut(ctx context.Context, phone string) (bool, error) {
	var out bool
	if err := d.db.QueryRowContext(ctx, "SELECT EXISTS(SELECT 1 FROM opt_outs WHERE phone = ?)", phone).Scan(&out); err != nil {
		return false, fmt.Errorf("opted out: %w", err)
	}
	return out, nil
}
