package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
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
	ActivityHistory(ctx context.Context, since, until time.Time, step time.Duration) ([]time.Time, map[int64][]Activity, error)
	FailoverCounts(ctx context.Context, since time.Time) (FailoverCounts, error)
}

// FailoverCounts is what became of the SIP calls a trunk's death caught, from
// since (when it died) on, over every campaign.
type FailoverCounts struct {
	// Caught counts the contacts whose SIP call ended from since on because of
	// the trunk: trunk_down or trunk_fault, or a conversation the trunk hung up.
	Caught int `json:"caught"`
	// MovedToWhatsApp counts those of them called on WhatsApp after that call.
	MovedToWhatsApp int `json:"moved_to_whatsapp"`
	// Resumed counts the conversations taken up on WhatsApp since, answered and
	// put back through to their agent.
	Resumed int `json:"resumed"`
}

// FailoverCounts counts the failover's figures since a trunk died.
func (d *DB) FailoverCounts(ctx context.Context, since time.Time) (FailoverCounts, error) {
	var f FailoverCounts
	ms := since.UnixMilli()
	caught := `channel = '` + string(campaigns.ChannelSIP) + `' AND end_at >= ?1 AND (outcome IN ` +
		campaigns.SQLList(campaigns.OutcomeTrunkDown, campaigns.OutcomeTrunkFault) + ` OR hangup_by = 'trunk')`
	err := d.db.QueryRowContext(ctx, `SELECT count(DISTINCT s.contact_id),
		count(DISTINCT CASE WHEN EXISTS (SELECT 1 FROM attempts w WHERE w.contact_id = s.contact_id
			AND w.channel = '`+string(campaigns.ChannelWhatsAppCall)+`' AND w.created_at >= s.created_at
			AND coalesce(w.outcome,'') NOT IN `+unplacedIn+`) THEN s.contact_id END),
		(SELECT count(*) FROM attempts WHERE resumed_from IS NOT NULL AND created_at >= ?1 AND answer_at IS NOT NULL)
		FROM attempts s WHERE `+caught, ms).Scan(&f.Caught, &f.MovedToWhatsApp, &f.Resumed)
	if err != nil {
		return f, fmt.Errorf("failover counts: %w", err)
	}
	return f, nil
}

// Outcomes that count as reaching the contact on a channel.
// The outcome vocabulary's groups as SQL IN lists.
var (
	reachedIn   = campaigns.SQLList(campaigns.ReachedOutcomes()...)
	answeredIn  = campaigns.SQLList(campaigns.AnsweredOutcomes()...)
	unplacedIn  = campaigns.SQLList(campaigns.UnplacedOutcomes()...)
	connectedIn = campaigns.SQLList(campaigns.OutcomeConnected)
	abandonedIn = campaigns.SQLList(campaigns.OutcomeAbandoned)
)

// CampaignStats counts attempts by channel and outcome.
func (d *DB) CampaignStats(ctx context.Context, campaignID int64) (CampaignStats, error) {
	s := CampaignStats{
		Channels: map[string]ChannelStats{"sip": {}, "whatsapp_call": {}, "whatsapp_template": {}},
		Contacts: map[string]int{},
	}
	rows, err := d.db.QueryContext(ctx, `SELECT channel, count(CASE WHEN coalesce(outcome,'') NOT IN `+unplacedIn+` THEN 1 END),
		count(CASE WHEN coalesce(outcome,'') IN `+reachedIn+` THEN 1 END),
		count(CASE WHEN coalesce(outcome,'') IN `+answeredIn+` THEN 1 END),
		count(CASE WHEN coalesce(outcome,'') IN `+connectedIn+` THEN 1 END), count(CASE WHEN coalesce(outcome,'') IN `+abandonedIn+` THEN 1 END)
		FROM attempts WHERE campaign_id = ? AND direction = 'outbound' GROUP BY channel`, campaignID)
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

// Activity is a campaign's call counters at one moment, as CampaignStats counts
// them: dials (WhatsApp calls included, templates and channel refusals not),
// people answered, connected to an agent and abandoned.
type Activity struct {
	Dials, Answered, Connected, Abandoned int
}

// ActivityHistory returns every campaign's counters at each step from since to
// until (since, since+step, …, until), for charts that must not start empty: a
// dial counts from when it was placed, an answer or abandon from when the person
// answered (or the attempt ended, when no answer time was kept).
func (d *DB) ActivityHistory(ctx context.Context, since, until time.Time, step time.Duration) ([]time.Time, map[int64][]Activity, error) {
	if step <= 0 || until.Before(since) {
		return nil, nil, fmt.Errorf("activity history: bad range %s…%s step %s", since, until, step)
	}
	var times []time.Time
	for t := since; !t.After(until); t = t.Add(step) {
		times = append(times, t)
	}
	out := map[int64][]Activity{}
	series := func(id int64) []Activity {
		s, ok := out[id]
		if !ok {
			s = make([]Activity, len(times))
			out[id] = s
		}
		return s
	}
	// first returns the index of the first step at or after ms.
	first := func(ms int64) int {
		i := int(max(0, (ms-since.UnixMilli()+step.Milliseconds()-1)/step.Milliseconds()))
		return min(i, len(times))
	}
	// Dials are the campaign's: a person's own call to the business is counted in
	// the inbound queue's figures instead.
	counted := `channel != '` + string(campaigns.ChannelWhatsAppTemplate) + `' AND direction = 'outbound' AND coalesce(outcome,'') NOT IN ` + unplacedIn
	sinceMs, untilMs := since.UnixMilli(), until.UnixMilli()
	// What happened before since is summed by SQLite into the first step.
	base, err := d.db.QueryContext(ctx, `SELECT campaign_id, count(CASE WHEN created_at < ?1 THEN 1 END),
		count(CASE WHEN outcome IN `+answeredIn+` AND `+answeredAt+` < ?1 THEN 1 END),
		count(CASE WHEN outcome IN `+connectedIn+` AND `+answeredAt+` < ?1 THEN 1 END), count(CASE WHEN outcome IN `+abandonedIn+` AND `+answeredAt+` < ?1 THEN 1 END)
		FROM attempts WHERE `+counted+` AND created_at < ?1 GROUP BY campaign_id`, sinceMs)
	if err != nil {
		return nil, nil, fmt.Errorf("activity history: %w", err)
	}
	for base.Next() {
		var id int64
		var a Activity
		if err := base.Scan(&id, &a.Dials, &a.Answered, &a.Connected, &a.Abandoned); err != nil {
			base.Close()
			return nil, nil, fmt.Errorf("activity history: %w", err)
		}
		series(id)[0] = a
	}
	base.Close()
	if err := base.Err(); err != nil {
		return nil, nil, fmt.Errorf("activity history: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT campaign_id, created_at, `+answeredAt+`, coalesce(outcome,'') FROM attempts
		WHERE `+counted+` AND created_at <= ?2 AND (created_at >= ?1 OR `+answeredAt+` >= ?1)`, sinceMs, untilMs)
	if err != nil {
		return nil, nil, fmt.Errorf("activity history: %w", err)
	}
	defer rows.Close()
	// Each attempt adds one to every step from its moment on: a difference array,
	// summed below.
	for rows.Next() {
		var id, created, answered int64
		var outcome string
		if err := rows.Scan(&id, &created, &answered, &outcome); err != nil {
			return nil, nil, fmt.Errorf("activity history: %w", err)
		}
		s := series(id)
		if i := first(created); created >= sinceMs && i < len(s) {
			s[i].Dials++
		}
		if !campaigns.Outcome(outcome).Answered() || answered < sinceMs {
			continue
		}
		if i := first(answered); i < len(s) {
			s[i].Answered++
			if campaigns.Outcome(outcome) == campaigns.OutcomeConnected {
				s[i].Connected++
			} else {
				s[i].Abandoned++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("activity history: %w", err)
	}
	for _, s := range out {
		for i := 1; i < len(s); i++ {
			s[i].Dials += s[i-1].Dials
			s[i].Answered += s[i-1].Answered
			s[i].Connected += s[i-1].Connected
			s[i].Abandoned += s[i-1].Abandoned
		}
	}
	return times, out, nil
}
