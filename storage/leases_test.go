package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// patience bounds the waits for the database's clock to pass a lease's expiry:
// the tests poll for the condition, never sleep a fixed time for it.
const patience = 15 * time.Second

// twoNodes opens two handles on one new database of b, acting as two nodes, and
// a campaign with one contact whose attempt has started (by node a's handle).
func twoNodes(t *testing.T, b backend) (a, other *DB, campaignID int64, at Attempt) {
	t.Helper()
	a, dsn := b.open(t, Options{})
	other, err := Open(context.Background(), dsn, b.options(dsn, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	c := newCampaign(t, a)
	ids := importContacts(t, a, c, "+5511987654321")
	at, err = a.StartAttempt(context.Background(), ids[0], campaigns.ChannelSIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a, other, c.ID, at
}

// expired waits until l has expired by the database's clock, as d reads it.
func expired(t *testing.T, d *DB, l Lease) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		leases, err := d.Leases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range leases {
			if got.CampaignID == l.CampaignID && got.Epoch == l.Epoch && !got.Live {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %+v still live after %s: %+v", l, patience, leases)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fencedUpdate writes the attempt's trunk as node d under lease l's fence.
func fencedUpdate(d *DB, l Lease, at Attempt, trunk string) error {
	at.Trunk = trunk
	return d.UpdateAttempt(WithFence(context.Background(), l.Fence()), at)
}

func trunkOf(t *testing.T, d *DB, at Attempt) string {
	t.Helper()
	got, err := d.GetAttempt(context.Background(), at.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.Trunk
}

// TestLeaseLifecycle: two nodes on one database. One takes the campaign; the
// other is refused until the lease expires, then takes it with a higher epoch;
// the first, waking late, can neither write under its old lease nor renew or
// release it; a release lets the other node take the campaign at once.
func TestLeaseLifecycle(t *testing.T) { eachBackend(t, testLeaseLifecycle) }

func testLeaseLifecycle(t *testing.T, b backend) {
	ctx := context.Background()
	nodeA, nodeB, cid, at := twoNodes(t, b)
	la, err := nodeA.AcquireLease(ctx, cid, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if la.Epoch != 1 || la.NodeID != "a" || !la.Expires.After(la.Acquired) {
		t.Fatalf("first lease %+v, want epoch 1 of node a expiring after it was taken", la)
	}
	if _, err := nodeB.AcquireLease(ctx, cid, "b", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("b acquires a's live lease: %v, want ErrLeaseHeld", err)
	}
	if _, err := nodeA.AcquireLease(ctx, cid, "a", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a acquires its own live lease again: %v, want ErrLeaseHeld (it renews)", err)
	}
	renewed, err := nodeA.RenewLease(ctx, la, time.Minute)
	if err != nil || renewed.Epoch != 1 || renewed.Expires.Before(la.Expires) {
		t.Fatalf("renew: %+v, %v; want epoch 1 expiring no sooner than %s", renewed, err, la.Expires)
	}
	wrongEpoch := la
	wrongEpoch.Epoch = 2
	if _, err := nodeA.RenewLease(ctx, wrongEpoch, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew of an epoch never held: %v, want ErrLeaseLost", err)
	}
	if err := fencedUpdate(nodeA, la, at, "a1"); err != nil {
		t.Fatalf("owner's fenced write: %v", err)
	}

	// a stops renewing (frozen) with a short lease; b takes the campaign once it
	// has expired.
	if la, err = nodeA.RenewLease(ctx, la, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	expired(t, nodeB, la)
	lb, err := nodeB.AcquireLease(ctx, cid, "b", time.Minute)
	if err != nil {
		t.Fatalf("b takes the expired lease: %v", err)
	}
	if lb.Epoch != 2 || lb.NodeID != "b" {
		t.Fatalf("take-over lease %+v, want epoch 2 of node b", lb)
	}

	// a wakes up late and carries on as if it still owned the campaign.
	if err := fencedUpdate(nodeA, la, at, "late"); !errors.Is(err, ErrFenced) {
		t.Fatalf("old owner's fenced write: %v, want ErrFenced", err)
	}
	at.Trunk = "late"
	err = nodeA.FinishAttempt(WithFence(ctx, la.Fence()), at, func(c campaigns.Contact, p campaigns.Position) (campaigns.Position, error) {
		t.Error("the move of a fenced transaction ran")
		return p, nil
	})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("old owner's fenced finish: %v, want ErrFenced", err)
	}
	if got := trunkOf(t, nodeA, at); got != "a1" {
		t.Fatalf("attempt's trunk %q after the fenced writes, want a1 (nothing of the old owner's written)", got)
	}
	if _, err := nodeA.RenewLease(ctx, la, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("old owner renews: %v, want ErrLeaseLost", err)
	}
	if err := nodeA.ReleaseLease(ctx, la); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("old owner releases: %v, want ErrLeaseLost", err)
	}
	if err := fencedUpdate(nodeB, lb, at, "b1"); err != nil {
		t.Fatalf("new owner's fenced write: %v", err)
	}

	// b leaves cleanly: a takes the campaign at once, and b's fence fails.
	if err := nodeB.ReleaseLease(ctx, lb); err != nil {
		t.Fatal(err)
	}
	la3, err := nodeA.AcquireLease(ctx, cid, "a", time.Minute)
	if err != nil || la3.Epoch != 3 {
		t.Fatalf("acquire after release: %+v, %v; want epoch 3", la3, err)
	}
	if err := fencedUpdate(nodeB, lb, at, "b2"); !errors.Is(err, ErrFenced) {
		t.Fatalf("released owner's fenced write: %v, want ErrFenced", err)
	}
	leases, err := nodeB.Leases(ctx)
	if err != nil || len(leases) != 1 || leases[0].NodeID != "a" || leases[0].Epoch != 3 || !leases[0].Live {
		t.Fatalf("leases %+v, %v; want campaign %d live with a, epoch 3", leases, err, cid)
	}
	if got := trunkOf(t, nodeA, at); got != "b1" {
		t.Fatalf("attempt's trunk %q, want b1", got)
	}
	if _, err := nodeA.AcquireLease(ctx, cid+1000, "a", time.Minute); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lease of a campaign that does not exist: %v, want ErrNotFound", err)
	}
	for _, bad := range []struct {
		node string
		ttl  time.Duration
	}{{"a", 0}, {"a", -time.Second}, {"a", time.Microsecond}, {"", time.Minute}} {
		if l, err := nodeB.AcquireLease(ctx, cid+1, bad.node, bad.ttl); err == nil {
			t.Errorf("lease of node %q for %s taken: %+v", bad.node, bad.ttl, l)
		}
	}
	if _, err := nodeA.RenewLease(ctx, la3, 0); err == nil {
		t.Error("lease renewed for no time")
	}
}

// TestTakeOverWaitsForTheOldOwnersWrite: a fenced transaction that began while
// its lease was current holds the take-over back until it commits, so every
// write of an epoch is in before the next epoch begins; a fenced transaction
// begun after the take-over writes nothing.
func TestTakeOverWaitsForTheOldOwnersWrite(t *testing.T) {
	eachBackend(t, testTakeOverWaitsForTheOldOwnersWrite)
}

func testTakeOverWaitsForTheOldOwnersWrite(t *testing.T, b backend) {
	ctx := context.Background()
	nodeA, nodeB, cid, at := twoNodes(t, b)
	la, err := nodeA.AcquireLease(ctx, cid, "a", 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	inside, finish := make(chan struct{}), make(chan struct{})
	written := make(chan error, 1)
	go func() {
		at := at
		at.Trunk = "in flight"
		written <- nodeA.FinishAttempt(WithFence(ctx, la.Fence()), at, func(c campaigns.Contact, p campaigns.Position) (campaigns.Position, error) {
			close(inside)
			<-finish
			return p, nil
		})
	}()
	<-inside
	expired(t, nodeB, la)
	took := make(chan Lease, 1)
	go func() {
		lb, err := nodeB.AcquireLease(ctx, cid, "b", time.Minute)
		if err != nil {
			t.Errorf("take-over: %v", err)
		}
		took <- lb
	}()
	// The take-over must not end while a's transaction is open; a fixed wait
	// here can only miss the fault, never invent one.
	select {
	case lb := <-took:
		t.Fatalf("b took the campaign (%+v) while a's fenced transaction was open", lb)
	case <-time.After(300 * time.Millisecond):
	}
	close(finish)
	if err := <-written; err != nil {
		t.Fatalf("a's transaction, begun while its lease was current: %v", err)
	}
	if lb := <-took; lb.Epoch != 2 {
		t.Fatalf("take-over lease %+v, want epoch 2", lb)
	}
	if got := trunkOf(t, nodeB, at); got != "in flight" {
		t.Fatalf("attempt's trunk %q, want the write committed before the take-over", got)
	}
	if err := fencedUpdate(nodeA, la, at, "after"); !errors.Is(err, ErrFenced) {
		t.Fatalf("a's write after the take-over: %v, want ErrFenced", err)
	}
}

// TestFrozenNodeDoesNotHoldTheTakeOverBack: on PostgreSQL, a node frozen in
// the middle of a fenced transaction (a stopped process, a paused VM) holds its
// lease's row; the server ends that transaction once it is idle for leaseIdle,
// so another node takes the campaign over after the lease expired, and the
// frozen node's transaction, when it wakes, writes nothing. (On SQLite the one
// host has no other node to wait for it.)
func TestFrozenNodeDoesNotHoldTheTakeOverBack(t *testing.T) {
	ctx := context.Background()
	nodeA, nodeB, cid, at := twoNodes(t, postgresBackend)
	la, err := nodeA.AcquireLease(ctx, cid, "a", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	inside, wake := make(chan struct{}), make(chan struct{})
	written := make(chan error, 1)
	go func() {
		at := at
		at.Trunk = "frozen"
		written <- nodeA.FinishAttempt(WithFence(ctx, la.Fence()), at, func(c campaigns.Contact, p campaigns.Position) (campaigns.Position, error) {
			close(inside)
			<-wake // frozen, its transaction open and idle
			return p, nil
		})
	}()
	<-inside
	expired(t, nodeB, la)
	start := time.Now()
	lb, err := nodeB.AcquireLease(ctx, cid, "b", time.Minute)
	if err != nil {
		t.Fatalf("take-over while a is frozen: %v", err)
	}
	if took := time.Since(start); took > leaseIdle+patience/3 {
		t.Errorf("take-over took %s, want about leaseIdle (%s)", took, leaseIdle)
	}
	close(wake)
	if err := <-written; err == nil {
		t.Fatal("the frozen node's transaction committed after the take-over")
	}
	if got := trunkOf(t, nodeB, at); got == "frozen" {
		t.Fatalf("attempt's trunk %q: the frozen node wrote after the take-over (lease %+v)", got, lb)
	}
}

// TestConcurrentAcquireHasOneOwner: nodes on their own handles acquiring one
// campaign at once, while it is new and again once it is free, get exactly one
// lease between them.
func TestConcurrentAcquireHasOneOwner(t *testing.T) { eachBackend(t, testConcurrentAcquireHasOneOwner) }

func testConcurrentAcquireHasOneOwner(t *testing.T, b backend) {
	ctx := context.Background()
	first, dsn := b.open(t, Options{})
	cid := newCampaign(t, first).ID
	handles := []*DB{first}
	for range 3 {
		d, err := Open(ctx, dsn, b.options(dsn, Options{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		handles = append(handles, d)
	}
	const acquirers = 8
	race := func(round int) Lease {
		t.Helper()
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []Lease
		for i := range acquirers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := handles[i%len(handles)].AcquireLease(ctx, cid, string(rune('a'+i)), time.Minute)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, l)
				case !errors.Is(err, ErrLeaseHeld):
					t.Errorf("round %d, acquirer %d: %v, want the lease or ErrLeaseHeld", round, i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d acquirers got the lease (%+v), want exactly one", round, len(won), won)
		}
		return won[0]
	}
	l := race(1)
	if l.Epoch != 1 {
		t.Fatalf("round 1 lease %+v, want epoch 1", l)
	}
	if err := handles[0].ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	if l = race(2); l.Epoch != 2 {
		t.Fatalf("round 2 lease %+v, want epoch 2", l)
	}
}

// TestNodesFindEachOther: registered nodes are listed while they heartbeat, and
// one that stops is dead once its heartbeat is older than the timeout.
func TestNodesFindEachOther(t *testing.T) { eachBackend(t, testNodesFindEachOther) }

func testNodesFindEachOther(t *testing.T, b backend) {
	ctx := context.Background()
	nodeA, nodeB, _, _ := twoNodes(t, b)
	for _, tc := range []struct {
		d *DB
		n Node
	}{
		{nodeA, Node{ID: "a", Addr: "http://127.0.0.1:8081", SIPAddr: "127.0.0.1:5061"}},
		{nodeB, Node{ID: "b", Addr: "http://127.0.0.1:8082"}},
	} {
		if err := tc.d.RegisterNode(ctx, tc.n); err != nil {
			t.Fatal(err)
		}
	}
	live, err := nodeB.LiveNodes(ctx, time.Minute)
	if err != nil || len(live) != 2 || live[0].ID != "a" || live[0].SIPAddr != "127.0.0.1:5061" || live[1].Addr != "http://127.0.0.1:8082" {
		t.Fatalf("live nodes %+v, %v; want a and b as registered", live, err)
	}
	if live[0].Started.IsZero() || live[0].Heartbeat.Before(live[0].Started) {
		t.Errorf("node a started %s, heartbeat %s", live[0].Started, live[0].Heartbeat)
	}
	// b keeps heartbeating, a has stopped: a drops out of a short timeout's list.
	deadline := time.Now().Add(patience)
	for {
		if err := nodeB.HeartbeatNode(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		live, err := nodeB.LiveNodes(ctx, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) == 1 && live[0].ID == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live nodes %+v after %s, want b alone", live, patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A draining node stays live and says it drains; one unknown is not found.
	if err := nodeB.DrainNode(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if live, err := nodeA.LiveNodes(ctx, time.Minute); err != nil || len(live) != 2 || live[0].Draining || !live[1].Draining {
		t.Fatalf("live nodes %+v, %v; want a, and b draining", live, err)
	}
	if err := nodeA.DrainNode(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("drain of an unknown node: %v, want ErrNotFound", err)
	}
	if err := nodeA.RemoveNode(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := nodeA.HeartbeatNode(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat of a removed node: %v, want ErrNotFound", err)
	}
	if err := nodeA.RegisterNode(ctx, Node{ID: "c"}); err == nil {
		t.Fatal("a node without an address was registered")
	}
}
