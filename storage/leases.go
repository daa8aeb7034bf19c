package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Several nodes (`turbina serve` processes) on one PostgreSQL database share the
// work through two tables: nodes, where each registers and heartbeats, and
// campaign_leases, where each campaign's run is owned by one node at a time.
//
// Every time here is the database's clock (dialect.clockMs), never a node's: the
// nodes' clocks differ, and a lease judged by each holder's own clock could be
// live for one node and expired for another. PostgreSQL's clock is one clock for
// all nodes; SQLite's is the one host's, which is the only node a SQLite file
// has. Options.Now, the injected clock of the other tables, plays no part.

// Errors of the leases, for errors.Is.
var (
	// ErrLeaseHeld is an acquire refused: another node's lease on the campaign
	// has not expired (or this node holds it already, and renews it instead).
	ErrLeaseHeld = errors.New("the campaign's lease is held")
	// ErrLeaseLost is a renew or release of a lease that is no longer the
	// caller's: it expired, or another node took the campaign since.
	ErrLeaseLost = errors.New("the campaign's lease was lost")
	// ErrFenced is a write refused because the fence it carries (WithFence) is
	// no longer its campaign's current, unexpired lease: the node that made it
	// lost the campaign, and must stop its run without writing.
	ErrFenced = errors.New("fenced: the campaign's lease is no longer this node's")
)

// LeaseStore is how the nodes on one database find each other and share the
// campaigns: each node registers and heartbeats; a campaign's run is owned by
// the node holding its lease, and every write of the run carries the lease's
// fence (WithFence).
type LeaseStore interface {
	// RegisterNode records a node as live, started and heartbeating now.
	RegisterNode(ctx context.Context, n Node) error
	// HeartbeatNode records that a node is alive now; ErrNotFound when it is
	// not registered.
	HeartbeatNode(ctx context.Context, id string) error
	// DrainNode marks a live node as draining: it stays live, and takes no
	// campaign in the spread (Node.Draining).
	DrainNode(ctx context.Context, id string) error
	// RemoveNode forgets a node that leaves cleanly.
	RemoveNode(ctx context.Context, id string) error
	// LiveNodes lists the nodes that heartbeat within timeout.
	LiveNodes(ctx context.Context, timeout time.Duration) ([]Node, error)
	// AcquireLease takes a free campaign for ttl with a new epoch; ErrLeaseHeld
	// when another node's lease is live.
	AcquireLease(ctx context.Context, campaignID int64, node string, ttl time.Duration) (Lease, error)
	// RenewLease extends a lease still held to ttl from now; ErrLeaseLost when
	// it is not.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// ReleaseLease gives a lease up at once; ErrLeaseLost when it was lost.
	ReleaseLease(ctx context.Context, l Lease) error
	// Leases lists every campaign's lease.
	Leases(ctx context.Context) ([]Lease, error)
	// ClaimSole makes node the only node of a database no other uses: the
	// others are forgotten and every lease ends now.
	ClaimSole(ctx context.Context, node string) error
}

// Node is one `turbina serve` process on the database.
type Node struct {
	// ID names the process: unique to each start (a restarted process is a new
	// node), since a lease belongs to the process that took it.
	ID string `json:"id"`
	// Addr is where the node's API and agents' pages are served (a base URL).
	Addr string `json:"addr"`
	// SIPAddr is the node's registrar, for agents' SIP phones; empty when none.
	SIPAddr string `json:"sip_addr,omitempty"`
	// Draining is a node on its way out (SIGTERM): still live, it ends the
	// calls it has, and the campaigns go to the other nodes as their runs
	// there end.
	Draining  bool      `json:"draining,omitempty"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Lease is a node's ownership of a campaign's run, up to Expires.
type Lease struct {
	CampaignID int64  `json:"campaign_id,string"`
	NodeID     string `json:"node_id"`
	// Epoch grows by one each time the campaign is taken, so each holding has
	// its own: writes carry it (Fence) and only the current one's go through.
	Epoch    int64     `json:"epoch"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	// Live is whether the lease had not expired by the database's clock when it
	// was read.
	Live bool `json:"live"`
}

// Fence is what a write of a campaign's run carries to prove its node still
// holds the campaign: the lease's epoch.
type Fence struct {
	CampaignID int64
	Epoch      int64
}

// Fence returns the fence of the lease's writes.
func (l Lease) Fence() Fence { return Fence{CampaignID: l.CampaignID, Epoch: l.Epoch} }

type fenceKey struct{}

// WithFence returns a context whose writes are fenced by f: every write
// transaction begun with it (and every single write statement) first checks, in
// the same transaction, that f is its campaign's current lease and unexpired, and
// fails with ErrFenced, writing nothing, when it is not. A campaign's run passes
// its lease's fence in the context of all it writes (attempts, contact moves,
// outbox messages); people's writes through the API carry none.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, &f)
}

// withoutFence is ctx with no fence: the lease's own statements are not fenced
// by a run's lease, or a lost lease could never be given up or taken again.
func withoutFence(ctx context.Context) context.Context {
	return context.WithValue(ctx, fenceKey{}, (*Fence)(nil))
}

func fenceFrom(ctx context.Context) *Fence {
	f, _ := ctx.Value(fenceKey{}).(*Fence)
	return f
}

type fencedKey struct{}

// WhenFenced returns a context whose fenced writes (WithFence) call fn, before
// they fail with ErrFenced, when their fence is refused: a run stops on the
// first refusal, wherever in it the write was.
func WhenFenced(ctx context.Context, fn func()) context.Context {
	return context.WithValue(ctx, fencedKey{}, fn)
}

type nodeKey struct{}

// WithNode returns a context whose outbox writes (Enqueue, the claims) record
// node as the message's sender: the messages of no campaign that a node left
// sending when it died are settled by the others (RecoverOutbox), and a live
// node's never.
func WithNode(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, nodeKey{}, node)
}

// nodeFrom is the node of ctx's writes (WithNode), "" when none.
func nodeFrom(ctx context.Context) string {
	n, _ := ctx.Value(nodeKey{}).(string)
	return n
}

// ClaimSole makes node the only one on the database: every other node is
// forgotten and every lease ends now, so node takes each campaign at once with
// a new epoch, which fences any process still running on the database. It is
// for a database only one node uses (SQLite): on a shared one it would take
// the campaigns from live nodes.
func (d *DB) ClaimSole(ctx context.Context, node string) error {
	ctx = withoutFence(ctx)
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		if err := d.leaseTx(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM nodes WHERE id <> ?", node); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE campaign_leases SET expires_at = "+d.dialect.clockMs+" WHERE expires_at > "+d.dialect.clockMs)
		return err
	})
	if err != nil {
		return fmt.Errorf("claim the database for node %s: %w", node, err)
	}
	return nil
}

// checkFence fails with ErrFenced unless f is its campaign's current lease,
// unexpired, and on PostgreSQL it share-locks the lease's row until tx ends: a
// node taking the campaign over waits for tx to commit, so every write of an
// epoch is in before the next epoch begins; and tx idle for leaseIdle (its
// node frozen) is ended by the server, so the wait is bounded. On SQLite, tx
// holds the only write lock already.
func (d *DB) checkFence(ctx context.Context, tx *sql.Tx, f Fence) error {
	var bounded any
	err := tx.QueryRowContext(ctx, `SELECT `+d.dialect.leaseTxColumn+` FROM campaign_leases WHERE campaign_id = ? AND epoch = ? AND expires_at > `+
		d.dialect.clockMs+d.dialect.shareRow, f.CampaignID, f.Epoch).Scan(&bounded)
	if errors.Is(err, sql.ErrNoRows) {
		if fn, _ := ctx.Value(fencedKey{}).(func()); fn != nil {
			fn()
		}
		return fmt.Errorf("campaign %d, epoch %d: %w", f.CampaignID, f.Epoch, ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("check the campaign's lease: %w", err)
	}
	return nil
}

// leaseTx bounds how long tx, which locks a lease's row, may stay idle
// (dialect.leaseTx).
func (d *DB) leaseTx(ctx context.Context, tx *sql.Tx) error {
	if d.dialect.leaseTx == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, d.dialect.leaseTx); err != nil {
		return fmt.Errorf("bound the lease's transaction: %w", err)
	}
	return nil
}

// RegisterNode records n as a live node, started and heartbeating now; a node
// registered before under the same ID is replaced.
func (d *DB) RegisterNode(ctx context.Context, n Node) error {
	if n.ID == "" || n.Addr == "" {
		return errors.New("register node: a node needs an id and an address")
	}
	_, err := d.exec(withoutFence(ctx), `INSERT INTO nodes(id, addr, sip_addr, draining, started_at, heartbeat_at)
		SELECT ?1, ?2, ?3, ?4, n.t, n.t FROM (SELECT `+d.dialect.clockMs+` AS t) n WHERE true
		ON CONFLICT(id) DO UPDATE SET addr = excluded.addr, sip_addr = excluded.sip_addr, draining = excluded.draining,
			started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`, n.ID, n.Addr, n.SIPAddr, n.Draining)
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.ID, err)
	}
	return nil
}

// HeartbeatNode records that node id is alive now. It is ErrNotFound when the
// node is not registered (it left, or was forgotten).
func (d *DB) HeartbeatNode(ctx context.Context, id string) error {
	err := d.execOne(withoutFence(ctx), "UPDATE nodes SET heartbeat_at = "+d.dialect.clockMs+" WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", id, err)
	}
	return nil
}

// DrainNode marks node id as draining (Node.Draining); ErrNotFound when it is
// not registered.
func (d *DB) DrainNode(ctx context.Context, id string) error {
	if err := d.execOne(withoutFence(ctx), "UPDATE nodes SET draining = 1 WHERE id = ?", id); err != nil {
		return fmt.Errorf("drain node %s: %w", id, err)
	}
	return nil
}

// RemoveNode forgets node id: a node that leaves cleanly, after releasing its
// leases.
func (d *DB) RemoveNode(ctx context.Context, id string) error {
	if _, err := d.exec(withoutFence(ctx), "DELETE FROM nodes WHERE id = ?", id); err != nil {
		return fmt.Errorf("remove node %s: %w", id, err)
	}
	return nil
}

// LiveNodes lists the nodes whose last heartbeat is within timeout of the
// database's clock, by ID; the others are dead.
func (d *DB) LiveNodes(ctx context.Context, timeout time.Duration) ([]Node, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("live nodes: timeout %s is not positive", timeout)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT id, addr, sip_addr, draining, started_at, heartbeat_at FROM nodes
		WHERE heartbeat_at > `+d.dialect.clockMs+` - ? ORDER BY id`, timeout.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("live nodes: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var n Node
		var started, beat int64
		if err := rows.Scan(&n.ID, &n.Addr, &n.SIPAddr, &n.Draining, &started, &beat); err != nil {
			return nil, fmt.Errorf("live nodes: %w", err)
		}
		n.Started, n.Heartbeat = msToTime(started), msToTime(beat)
		out = append(out, n)
	}
	return out, rows.Err()
}

// leaseTTL checks a lease's duration: whole milliseconds, as stored.
func leaseTTL(ttl time.Duration) (int64, error) {
	if ttl < time.Millisecond {
		return 0, fmt.Errorf("lease duration %s is below a millisecond", ttl)
	}
	return ttl.Milliseconds(), nil
}

// AcquireLease makes node the owner of the campaign's run for ttl, with an
// epoch one above the campaign's last, when the campaign's lease is free
// (never taken, released or expired). Otherwise it is ErrLeaseHeld, naming the
// holder. Of several nodes acquiring at once, one gets it.
func (d *DB) AcquireLease(ctx context.Context, campaignID int64, node string, ttl time.Duration) (Lease, error) {
	ms, err := leaseTTL(ttl)
	if err != nil {
		return Lease{}, err
	}
	if node == "" {
		return Lease{}, errors.New("acquire lease: no node id")
	}
	l := Lease{CampaignID: campaignID, NodeID: node, Live: true}
	var acquired, expires int64
	err = d.inTx(withoutFence(ctx), func(tx *sql.Tx) error {
		if err := d.leaseTx(ctx, tx); err != nil {
			return err
		}
		// The one statement decides against the row as it is when it runs: a
		// concurrent acquire waits for the row (its primary key) and then sees
		// the lease just taken, unexpired.
		err := tx.QueryRowContext(ctx, `INSERT INTO campaign_leases(campaign_id, node_id, epoch, acquired_at, expires_at)
			SELECT CAST(?1 AS BIGINT), CAST(?2 AS TEXT), 1, n.t, n.t + CAST(?3 AS BIGINT) FROM (SELECT `+d.dialect.clockMs+` AS t) n WHERE true
			ON CONFLICT(campaign_id) DO UPDATE SET node_id = excluded.node_id, epoch = campaign_leases.epoch + 1,
				acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
			WHERE campaign_leases.expires_at <= excluded.acquired_at
			RETURNING epoch, acquired_at, expires_at`, campaignID, node, ms).Scan(&l.Epoch, &acquired, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			var holder string
			var until int64
			if err := tx.QueryRowContext(ctx, "SELECT node_id, expires_at FROM campaign_leases WHERE campaign_id = ?",
				campaignID).Scan(&holder, &until); err != nil {
				return err
			}
			return fmt.Errorf("%w by node %s until %s", ErrLeaseHeld, holder, msToTime(until).Format(time.RFC3339Nano))
		}
		if isForeignKeyViolation(err) {
			return fmt.Errorf("campaign %d: %w", campaignID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("acquire the lease of campaign %d: %w", campaignID, err)
	}
	l.Acquired, l.Expires = msToTime(acquired), msToTime(expires)
	return l, nil
}

// RenewLease extends l to ttl from now, when l is still its campaign's lease
// and unexpired; otherwise it is ErrLeaseLost and the node must stop the run.
func (d *DB) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	ms, err := leaseTTL(ttl)
	if err != nil {
		return Lease{}, err
	}
	var expires int64
	err = d.inTx(withoutFence(ctx), func(tx *sql.Tx) error {
		if err := d.leaseTx(ctx, tx); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `UPDATE campaign_leases SET expires_at = `+d.dialect.clockMs+` + ?
			WHERE campaign_id = ? AND node_id = ? AND epoch = ? AND expires_at > `+d.dialect.clockMs+`
			RETURNING expires_at`, ms, l.CampaignID, l.NodeID, l.Epoch).Scan(&expires)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrLeaseLost
		}
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("renew the lease of campaign %d, epoch %d: %w", l.CampaignID, l.Epoch, err)
	}
	l.Expires, l.Live = msToTime(expires), true
	return l, nil
}

// ReleaseLease gives l up now (a node leaving cleanly, or handing the campaign
// over): any node may take the campaign at once, and l's fenced writes fail.
// It is ErrLeaseLost when l was no longer the caller's.
func (d *DB) ReleaseLease(ctx context.Context, l Lease) error {
	err := d.execOne(withoutFence(ctx), `UPDATE campaign_leases SET expires_at = `+d.dialect.clockMs+`
		WHERE campaign_id = ? AND node_id = ? AND epoch = ? AND expires_at > `+d.dialect.clockMs, l.CampaignID, l.NodeID, l.Epoch)
	if errors.Is(err, ErrNotFound) {
		err = ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("release the lease of campaign %d, epoch %d: %w", l.CampaignID, l.Epoch, err)
	}
	return nil
}

// Leases lists every campaign's lease, live or not, by campaign.
func (d *DB) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT campaign_id, node_id, epoch, acquired_at, expires_at,
		CASE WHEN expires_at > `+d.dialect.clockMs+` THEN 1 ELSE 0 END FROM campaign_leases ORDER BY campaign_id`)
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var acquired, expires int64
		if err := rows.Scan(&l.CampaignID, &l.NodeID, &l.Epoch, &acquired, &expires, &l.Live); err != nil {
			return nil, fmt.Errorf("leases: %w", err)
		}
		l.Acquired, l.Expires = msToTime(acquired), msToTime(expires)
		out = append(out, l)
	}
	return out, rows.Err()
}
