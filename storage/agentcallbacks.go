package storage

import (
	"context"
	"fmt"
	"time"
)

// AgentCallback is a callback an agent asked for that is still to be made.
type AgentCallback struct {
	ContactID    int64     `json:"contact_id,string"`
	CampaignID   int64     `json:"campaign_id,string"`
	CampaignName string    `json:"campaign_name"`
	Name         string    `json:"name,omitempty"`
	Phone        string    `json:"phone"`
	At           time.Time `json:"at"`
	// Mine: the callback is routed to this agent alone (else to any agent).
	Mine bool `json:"mine"`
}

// AgentCallbacks lists the callbacks still to be made that agentID asked for
// (its disposition of the contact's last call set them) or that are routed to
// it, soonest first, at most limit.
func (d *DB) AgentCallbacks(ctx context.Context, agentID int64, limit int) ([]AgentCallback, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT c.id, c.campaign_id, cp.name, coalesce(c.name,''), c.phone, c.callback_at,
			coalesce(c.callback_agent_id,0) = ?1
		FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id
		WHERE c.callback_at IS NOT NULL AND c.status = 'pending' AND (c.callback_agent_id = ?1 OR ?1 = (
			SELECT a.agent_id FROM attempts a WHERE a.contact_id = c.id AND a.disposition IS NOT NULL ORDER BY a.id DESC LIMIT 1))
		ORDER BY c.callback_at, c.id LIMIT ?2`, agentID, limit)
	if err != nil {
		return nil, fmt.Errorf("agent callbacks: %w", err)
	}
	defer rows.Close()
	out := []AgentCallback{}
	for rows.Next() {
		var cb AgentCallback
		var at int64
		if err := rows.Scan(&cb.ContactID, &cb.CampaignID, &cb.CampaignName, &cb.Name, &cb.Phone, &at, &cb.Mine); err != nil {
			return nil, fmt.Errorf("agent callbacks: %w", err)
		}
		cb.At = msToTime(at)
		out = append(out, cb)
	}
	return out, rows.Err()
}
