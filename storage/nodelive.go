package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Several nodes on one database show one wallboard and obey one supervisor
// through three tables (migration 0030): node_live, where each node publishes
// the live part of the wallboard that only its engine and SIP stack know;
// change_versions, counters that every node polls to learn at once of a change
// it must act on; and trunk_services, the state supervisors chose for each SIP
// trunk. As with the leases, times are the database's clock.

// The change_versions counters.
const (
	// VersionCampaigns grows with every write to a campaign (create, update,
	// archive): a node that sees it move re-reads the campaigns it runs.
	VersionCampaigns = "campaigns"
	// VersionTrunks grows with every supervisor's trunk action
	// (SetTrunkService): a node that sees it move applies the new states.
	VersionTrunks = "trunks"
	// VersionCommands grows with every cluster command (RecordCommand, and the
	// agents' assignments): a node that sees it move does each to its engine.
	VersionCommands = "commands"
)

// The kinds of cluster commands.
const (
	// CommandAssign and CommandUnassign move a signed-in agent onto or off a
	// campaign (body: AssignmentCommand), written with the assignment itself.
	CommandAssign   = "agent.assign"
	CommandUnassign = "agent.unassign"
	// CommandStopRinging ends the calls still ringing to numbers just put on a
	// do-not-call list (body: StopRingingCommand).
	CommandStopRinging = "stop_ringing"
)

// commandsKept is how long a cluster command is kept for the nodes to read: a
// node that has not read it by then was down, and starts afresh.
const commandsKept = 10 * time.Minute

// ClusterCommand is something a node did at a supervisor's word that every
// node must do to its own engine.
type ClusterCommand struct {
	Version int64
	Kind    string
	Body    json.RawMessage
}

// AssignmentCommand is the body of CommandAssign and CommandUnassign.
type AssignmentCommand struct {
	UserID     int64 `json:"user_id"`
	CampaignID int64 `json:"campaign_id"`
}

// StopRingingCommand is the body of CommandStopRinging: campaign 0 is every
// campaign.
type StopRingingCommand struct {
	CampaignID int64    `json:"campaign_id"`
	Numbers    []string `json:"numbers"`
}

// ClusterStore is what the nodes on one database share beyond the leases: the
// wallboard's live parts, the change counters, the trunks' chosen states and
// the commands every node does to its engine.
type ClusterStore interface {
	// PublishNodeLive stores node's live part (JSON), stamped with the
	// database's clock.
	PublishNodeLive(ctx context.Context, node string, body json.RawMessage) error
	// NodeLiveParts lists the live parts published within maxAge, by node.
	NodeLiveParts(ctx context.Context, maxAge time.Duration) ([]NodeLive, error)
	// RemoveNodeLive forgets node's live part: the node leaves.
	RemoveNodeLive(ctx context.Context, node string) error
	// ChangeVersions returns the change counters by name.
	ChangeVersions(ctx context.Context) (map[string]int64, error)
	// SetTrunkService records a supervisor's choice to take a trunk out of
	// service or put it back, with its audit entry, and returns the row.
	SetTrunkService(ctx context.Context, who Actor, name string, out bool) (TrunkService, error)
	// TrunkServices lists the trunks' chosen states set after version, by
	// version.
	TrunkServices(ctx context.Context, after int64) ([]TrunkService, error)
	// RecordCommand records a command of kind for every node, with its body
	// encoded as JSON.
	RecordCommand(ctx context.Context, kind string, body any) error
	// ClusterCommands lists the commands after version, oldest first.
	ClusterCommands(ctx context.Context, after int64) ([]ClusterCommand, error)
}

// NodeLive is one node's live part of the wallboard.
type NodeLive struct {
	Node string
	// Published is when it was stored, by the database's clock; Age is how old
	// it was, by the same clock, when it was read.
	Published time.Time
	Age       time.Duration
	Body      json.RawMessage
}

// TrunkService is the state a supervisor chose for a SIP trunk.
type TrunkService struct {
	Name         string
	OutOfService bool
	// Version is the VersionTrunks counter the choice set.
	Version int64
	Changed time.Time
}

// bumpVersion adds one to the counter name inside tx and returns its new value.
// On PostgreSQL the counter's row stays locked until tx ends, so the versions
// are handed out in the order the changes commit.
func bumpVersion(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, "UPDATE change_versions SET version = version + 1 WHERE name = ? RETURNING version", name).Scan(&v); err != nil {
		return 0, fmt.Errorf("count the change of %s: %w", name, err)
	}
	return v, nil
}

// PublishNodeLive stores node's live part, replacing the one before.
func (d *DB) PublishNodeLive(ctx context.Context, node string, body json.RawMessage) error {
	if node == "" {
		return errors.New("publish a node's live part: no node id")
	}
	if !json.Valid(body) {
		return fmt.Errorf("publish node %s's live part: not JSON", node)
	}
	_, err := d.exec(withoutFence(ctx), `INSERT INTO node_live(node_id, published_at, body)
		SELECT CAST(?1 AS TEXT), n.t, CAST(?2 AS TEXT) FROM (SELECT `+d.dialect.clockMs+` AS t) n WHERE true
		ON CONFLICT(node_id) DO UPDATE SET published_at = excluded.published_at, body = excluded.body`, node, string(body))
	if err != nil {
		return fmt.Errorf("publish node %s's live part: %w", node, err)
	}
	return nil
}

// NodeLiveParts lists the live parts published within maxAge of the
// database's clock, by node; older ones are of nodes gone or stuck.
func (d *DB) NodeLiveParts(ctx context.Context, maxAge time.Duration) ([]NodeLive, error) {
	if maxAge <= 0 {
		return nil, fmt.Errorf("node live parts: age %s is not positive", maxAge)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT node_id, published_at, n.t - published_at, body
		FROM node_live, (SELECT `+d.dialect.clockMs+` AS t) n WHERE published_at > n.t - ? ORDER BY node_id`, maxAge.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("node live parts: %w", err)
	}
	defer rows.Close()
	var out []NodeLive
	for rows.Next() {
		var l NodeLive
		var at, age int64
		var body string
		if err := rows.Scan(&l.Node, &at, &age, &body); err != nil {
			return nil, fmt.Errorf("node live parts: %w", err)
		}
		l.Published, l.Age, l.Body = msToTime(at), time.Duration(max(age, 0))*time.Millisecond, json.RawMessage(body)
		out = append(out, l)
	}
	return out, rows.Err()
}

// RemoveNodeLive forgets node's live part.
func (d *DB) RemoveNodeLive(ctx context.Context, node string) error {
	if _, err := d.exec(withoutFence(ctx), "DELETE FROM node_live WHERE node_id = ?", node); err != nil {
		return fmt.Errorf("remove node %s's live part: %w", node, err)
	}
	return nil
}

// ChangeVersions returns every change counter by name: one small read, cheap
// enough for every node to poll a few times a second.
func (d *DB) ChangeVersions(ctx context.Context) (map[string]int64, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT name, version FROM change_versions")
	if err != nil {
		return nil, fmt.Errorf("change versions: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("change versions: %w", err)
		}
		out[name] = v
	}
	return out, rows.Err()
}

// SetTrunkService records that trunk name is to be out of service (out) or in
// service, with a new VersionTrunks, and its audit entry in the same
// transaction (trunk.out_of_service or trunk.in_service).
func (d *DB) SetTrunkService(ctx context.Context, who Actor, name string, out bool) (TrunkService, error) {
	if name == "" {
		return TrunkService{}, errors.New("set a trunk's service: no trunk name")
	}
	ts := TrunkService{Name: name, OutOfService: out}
	action := "trunk.in_service"
	if out {
		action = "trunk.out_of_service"
	}
	err := d.inTx(withoutFence(ctx), func(tx *sql.Tx) error {
		v, err := bumpVersion(ctx, tx, VersionTrunks)
		if err != nil {
			return err
		}
		ts.Version = v
		var changed int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO trunk_services(name, out_of_service, version, changed_at)
			SELECT CAST(?1 AS TEXT), CAST(?2 AS INTEGER), CAST(?3 AS BIGINT), n.t FROM (SELECT `+d.dialect.clockMs+` AS t) n WHERE true
			ON CONFLICT(name) DO UPDATE SET out_of_service = excluded.out_of_service, version = excluded.version,
				changed_at = excluded.changed_at
			RETURNING changed_at`, name, boolInt(out), v).Scan(&changed); err != nil {
			return err
		}
		ts.Changed = msToTime(changed)
		return d.audit(ctx, tx, who, action, "trunk", name, nil, map[string]bool{"out_of_service": out})
	})
	if err != nil {
		return TrunkService{}, fmt.Errorf("set trunk %s's service: %w", name, err)
	}
	return ts, nil
}

// TrunkServices lists the trunks' states set after version, oldest first.
func (d *DB) TrunkServices(ctx context.Context, after int64) ([]TrunkService, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, out_of_service, version, changed_at FROM trunk_services
		WHERE version > ? ORDER BY version`, after)
	if err != nil {
		return nil, fmt.Errorf("trunk services: %w", err)
	}
	defer rows.Close()
	var out []TrunkService
	for rows.Next() {
		var ts TrunkService
		var oos int
		var changed int64
		if err := rows.Scan(&ts.Name, &oos, &ts.Version, &changed); err != nil {
			return nil, fmt.Errorf("trunk services: %w", err)
		}
		ts.OutOfService, ts.Changed = oos != 0, msToTime(changed)
		out = append(out, ts)
	}
	return out, rows.Err()
}

// RecordCommand records a command of kind for every node to do; body is
// encoded as JSON.
func (d *DB) RecordCommand(ctx context.Context, kind string, body any) error {
	err := d.inTx(withoutFence(ctx), func(tx *sql.Tx) error { return d.appendCommand(ctx, tx, kind, body) })
	if err != nil {
		return fmt.Errorf("record the cluster command %s: %w", kind, err)
	}
	return nil
}

// appendCommand records a command inside tx, the change it carries to the
// other nodes, and forgets the commands older than commandsKept.
func (d *DB) appendCommand(ctx context.Context, tx *sql.Tx, kind string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode the cluster command %s: %w", kind, err)
	}
	v, err := bumpVersion(ctx, tx, VersionCommands)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cluster_commands(version, kind, body, created_at)
		SELECT CAST(?1 AS BIGINT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), n.t FROM (SELECT `+d.dialect.clockMs+` AS t) n WHERE true`,
		v, kind, string(b)); err != nil {
		return fmt.Errorf("record the cluster command %s: %w", kind, err)
	}
	_, err = tx.ExecContext(ctx, "DELETE FROM cluster_commands WHERE created_at < "+d.dialect.clockMs+" - ?", commandsKept.Milliseconds())
	return err
}

// ClusterCommands lists the commands recorded after version, oldest first.
func (d *DB) ClusterCommands(ctx context.Context, after int64) ([]ClusterCommand, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT version, kind, body FROM cluster_commands WHERE version > ? ORDER BY version", after)
	if err != nil {
		return nil, fmt.Errorf("cluster commands: %w", err)
	}
	defer rows.Close()
	var out []ClusterCommand
	for rows.Next() {
		var c ClusterCommand
		var body string
		if err := rows.Scan(&c.Version, &c.Kind, &body); err != nil {
			return nil, fmt.Errorf("cluster commands: %w", err)
		}
		c.Body = json.RawMessage(body)
		out = append(out, c)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
