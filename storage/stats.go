package storage

import (
	"context"
	"fmt"
)

// ChannelStats counts one channel's attempts and how many reached the contact.
type ChannelStats struct {
	Attempts int `json:"attempts"`
	Reached  int `json:"reached"`
}

// CampaignStats are a campaign's running figures.
type CampaignStats struct {
	Dials       int                     `json:"dials"`
	Answered    int                     `json:"answered"`
	Connected   int                     `json:"connected"`
	Abandoned   int                     `json:"abandoned"`
	AbandonRate float64                 `json:"abandon_rate"`
	Channels    map[string]ChannelStats `json:"channels"`
	Contacts    map[string]int          `json:"contacts"` // by status
	// ContactsByRung counts the contacts still on their way (pending or under way)
	// on each rung of the ladder, by rung index.
	ContactsByRung []int `json:"contacts_by_rung"`
}

// StatsStore computes campaign figures.
type StatsStore interface {
	CampaignStats(ctx context.Context, campaignID int64) (CampaignStats, error)
}

// Outcomes that count as reaching the contact on a channel.
const reachedOutcomes = "('connected','abandoned','sent','delivered','read')"

// CampaignStats counts attempts by channel and outcome.
func (d *DB) CampaignStats(ctx context.Context, campaignID int64) (CampaignStats, error) {
	s := CampaignStats{
		Channels: map[string]ChannelStats{"sip": {}, "whatsapp_call": {}, "whatsapp_template": {}},
		Contacts: map[string]int{},
	}
	rows, err := d.db.QueryContext(ctx, `SELECT channel, sum(ifnull(outcome,'') NOT IN ('channel_down','channel_busy')),
		sum(ifnull(outcome,'') IN `+reachedOutcomes+`),
		sum(ifnull(outcome,'') IN ('connected','abandoned')),
		sum(ifnull(outcome,'') = 'connected'), sum(ifnull(outcome,'') = 'abandoned')
		FROM attempts WHERE campaign_id = ? GROUP BY channel`, campaignID)
	if err != nil {
		return s, fmt.Errorf("campaign stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ch string
		var attempts, reached, answered, connected, abandoned int
		if err := rows.Scan(&ch, &attempts, &reached, &answered, &connected, &abandoned); err != nil {
			return s, fmt.Errorf("campaign stats: %w", err)
		}
		s.Channels[ch] = ChannelStats{Attempts: attempts, Reached: reached}
		if ch != "whatsapp_template" {
			s.Dials += attempts
			s.Answered += answered
			s.Connected += connected
			s.Abandoned += abandoned
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("campaign stats: %w", err)
	}
	if s.Answered > 0 {
		s.AbandonRate = float64(s.Abandoned) / float64(s.Answered)
	}
	crows, err := d.db.QueryContext(ctx, "SELECT status, count(*) FROM contacts WHERE campaign_id = ? GROUP BY status", campaignID)
	if err != nil {
		return s, fmt.Errorf("campaign stats: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var st string
		var n int
		if err := crows.Scan(&st, &n); err != nil {
			return s, fmt.Errorf("campaign stats: %w", err)
		}
		s.Contacts[st] = n
	}
	if err := crows.Err(); err != nil {
		return s, fmt.Errorf("campaign stats: %w", err)
	}
	return s, d.contactsByRung(ctx, campaignID, &s)
}

func (d *DB) contactsByRung(ctx context.Context, campaignID int64, s *CampaignStats) error {
	rows, err := d.db.QueryContext(ctx, `SELECT rung, count(*) FROM contacts
		WHERE campaign_id = ? AND status IN ('pending','in_progress') GROUP BY rung ORDER BY rung`, campaignID)
	if err != nil {
		return fmt.Errorf("contacts by rung: %w", err)
	}
	defer rows.Close()
	s.ContactsByRung = []int{}
	for rows.Next() {
		var rung, n int
		if err := rows.Scan(&rung, &n); err != nil {
			return fmt.Errorf("contacts by rung: %w", err)
		}
		for len(s.ContactsByRung) <= rung {
			s.ContactsByRung = append(s.ContactsByRung, 0)
		}
		s.ContactsByRung[rung] = n
	}
	return rows.Err()
}
