package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PhoneBinding is one registered contact of an agent's SIP phone, as the
// registrar that took the REGISTER keeps it for every node (migration 0032).
type PhoneBinding struct {
	AgentID int64
	// ContactKey identifies the contact among the agent's (scheme, user, host,
	// port, transport): a REGISTER of the same contact replaces its row,
	// whichever node takes it.
	ContactKey string
	Contact    string // the URI the phone registered
	AOR        string // the To URI of the REGISTER
	Username   string
	// Source is where the REGISTER came from, where calls go; Transport is
	// "udp" or "tcp".
	Source    string
	Transport string
	UserAgent string
	// Node is the node whose registrar took the REGISTER.
	Node string
	// CallID and CSeq are the REGISTER's, to refuse one replayed or out of
	// order (RFC 3261 10.3 step 7) on any node.
	CallID string
	CSeq   uint32
	// RegisteredAt is the last refresh and Expires its end, by Node's clock.
	RegisteredAt time.Time
	Expires      time.Time
}

// PhoneBindingStore keeps agents' SIP phone registrations where every node
// sees them.
type PhoneBindingStore interface {
	// UpdatePhoneBindings stores agentID's bindings in save (replacing those
	// of the same contact key) and deletes those whose contact keys are in
	// remove, in one transaction.
	UpdatePhoneBindings(ctx context.Context, agentID int64, save []PhoneBinding, remove []string) error
	// PhoneBindings lists agentID's bindings live at now, the latest refreshed
	// first.
	PhoneBindings(ctx context.Context, agentID int64, now time.Time) ([]PhoneBinding, error)
	// LivePhoneBindings lists every agent's bindings live at now, by agent and
	// then the latest refreshed first.
	LivePhoneBindings(ctx context.Context, now time.Time) ([]PhoneBinding, error)
	// ForgetPhoneBinding deletes b's row unless the phone registered the
	// contact again since (another refresh, or another node): false then.
	ForgetPhoneBinding(ctx context.Context, b PhoneBinding) (bool, error)
	// PurgePhoneBindings deletes the bindings expired before now and returns
	// how many.
	PurgePhoneBindings(ctx context.Context, now time.Time) (int64, error)
}

var _ PhoneBindingStore = (*DB)(nil)

const phoneBindingColumns = `agent_id, contact_key, contact, aor, username, source, transport, user_agent,
	node_id, call_id, cseq, registered_at, expires_at`

// UpdatePhoneBindings stores and deletes agentID's bindings in one transaction.
func (d *DB) UpdatePhoneBindings(ctx context.Context, agentID int64, save []PhoneBinding, remove []string) error {
	for _, b := range save {
		if b.AgentID != agentID || b.ContactKey == "" || b.Contact == "" {
			return fmt.Errorf("update agent %d's phone bindings: binding %+v is not one of the agent's", agentID, b)
		}
	}
	err := d.inTx(withoutFence(ctx), func(tx *sql.Tx) error {
		for _, key := range remove {
			if _, err := tx.ExecContext(ctx, "DELETE FROM phone_bindings WHERE agent_id = ? AND contact_key = ?", agentID, key); err != nil {
				return err
			}
		}
		for _, b := range save {
			if _, err := tx.ExecContext(ctx, `INSERT INTO phone_bindings(`+phoneBindingColumns+`)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT(agent_id, contact_key) DO UPDATE SET contact = excluded.contact, aor = excluded.aor,
					username = excluded.username, source = excluded.source, transport = excluded.transport,
					user_agent = excluded.user_agent, node_id = excluded.node_id, call_id = excluded.call_id,
					cseq = excluded.cseq, registered_at = excluded.registered_at, expires_at = excluded.expires_at`,
				b.AgentID, b.ContactKey, b.Contact, b.AOR, b.Username, b.Source, b.Transport, b.UserAgent,
				b.Node, b.CallID, int64(b.CSeq), b.RegisteredAt.UnixMilli(), b.Expires.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update agent %d's phone bindings: %w", agentID, err)
	}
	return nil
}

// PhoneBindings lists agentID's bindings live at now, the latest refreshed first.
func (d *DB) PhoneBindings(ctx context.Context, agentID int64, now time.Time) ([]PhoneBinding, error) {
	out, err := d.phoneBindings(ctx, "agent_id = ? AND expires_at > ?", agentID, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("agent %d's phone bindings: %w", agentID, err)
	}
	return out, nil
}

// LivePhoneBindings lists every binding live at now, by agent and then the
// latest refreshed first.
func (d *DB) LivePhoneBindings(ctx context.Context, now time.Time) ([]PhoneBinding, error) {
	out, err := d.phoneBindings(ctx, "expires_at > ?", now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("phone bindings: %w", err)
	}
	return out, nil
}

func (d *DB) phoneBindings(ctx context.Context, where string, args ...any) ([]PhoneBinding, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT "+phoneBindingColumns+" FROM phone_bindings WHERE "+where+
		" ORDER BY agent_id, registered_at DESC, contact_key", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PhoneBinding
	for rows.Next() {
		var b PhoneBinding
		var cseq, reg, exp int64
		if err := rows.Scan(&b.AgentID, &b.ContactKey, &b.Contact, &b.AOR, &b.Username, &b.Source, &b.Transport,
			&b.UserAgent, &b.Node, &b.CallID, &cseq, &reg, &exp); err != nil {
			return nil, err
		}
		b.CSeq, b.RegisteredAt, b.Expires = uint32(cseq), msToTime(reg), msToTime(exp)
		out = append(out, b)
	}
	return out, rows.Err()
}

// ForgetPhoneBinding deletes b's row if it is still the registration b was:
// the same node's, refreshed at the same time.
func (d *DB) ForgetPhoneBinding(ctx context.Context, b PhoneBinding) (bool, error) {
	res, err := d.exec(withoutFence(ctx), `DELETE FROM phone_bindings
		WHERE agent_id = ? AND contact_key = ? AND node_id = ? AND registered_at = ?`,
		b.AgentID, b.ContactKey, b.Node, b.RegisteredAt.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("forget agent %d's phone binding %s: %w", b.AgentID, b.ContactKey, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("forget agent %d's phone binding %s: %w", b.AgentID, b.ContactKey, err)
	}
	return n > 0, nil
}

// PurgePhoneBindings deletes the bindings expired before now.
func (d *DB) PurgePhoneBindings(ctx context.Context, now time.Time) (int64, error) {
	if now.IsZero() {
		return 0, errors.New("purge phone bindings: no time given")
	}
	res, err := d.exec(withoutFence(ctx), "DELETE FROM phone_bindings WHERE expires_at <= ?", now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("purge phone bindings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge phone bindings: %w", err)
	}
	return n, nil
}
