package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestTwoProcessesNeverClaimTheSameRow: two *DB on one database (two processes,
// two nodes) claim at once. Every due outbox message is claimed by exactly one
// of them, every contact gets exactly one attempt however both race for it, and
// a webhook event both receive is new to exactly one. On SQLite the single
// writer serialises them; on PostgreSQL the claims' row locks do.
func TestTwoProcessesNeverClaimTheSameRow(t *testing.T) {
	eachBackend(t, testTwoProcessesNeverClaimTheSameRow)
}

func testTwoProcessesNeverClaimTheSameRow(t *testing.T, be backend) {
	ctx := context.Background()
	first, dsn := be.open(t, Options{})
	second, err := Open(ctx, dsn, be.options(dsn, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	nodes := []*DB{first, second}

	const messages, contacts, events = 120, 60, 40
	for i := range messages {
		if _, _, err := first.Enqueue(ctx, "whatsapp.template", fmt.Sprintf("key-%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	c := newCampaign(t, first)
	phones := make([]string, contacts)
	for i := range phones {
		phones[i] = fmt.Sprintf("+55119876%05d", i)
	}
	ids := importContacts(t, first, c, phones...)
	var evs []WebhookEvent
	for i := range events {
		evs = append(evs, WebhookEvent{Key: fmt.Sprintf("wamid.%d/read", i), Type: "status", Payload: []byte(`{}`), At: first.now()})
	}

	var (
		mu       sync.Mutex
		claimed  = map[int64]int{}
		attempts = map[int64]int{}
		fresh    = map[string]int{}
		wg       sync.WaitGroup
		errs     = make(chan error, 3*len(nodes))
	)
	for n, d := range nodes {
		wg.Add(3)
		go func() {
			defer wg.Done()
			for range messages { // bounded: each round claims one at least while any is left
				got, err := d.ClaimDue(ctx, d.now(), 7)
				if err != nil {
					errs <- fmt.Errorf("node %d claim: %w", n, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					claimed[m.ID]++
				}
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			order := rand.Perm(len(ids))
			for _, i := range order {
				a, err := d.StartAttempt(ctx, ids[i], campaigns.ChannelSIP, 0)
				if errors.Is(err, ErrConflict) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("node %d start attempt: %w", n, err)
					return
				}
				mu.Lock()
				attempts[a.ContactID]++
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			got, err := d.SaveWebhookEvents(ctx, evs)
			if err != nil {
				errs <- fmt.Errorf("node %d save events: %w", n, err)
				return
			}
			mu.Lock()
			for _, e := range got {
				fresh[e.Key]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(claimed) != messages {
		t.Errorf("%d of %d messages claimed", len(claimed), messages)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("message %d claimed %d times", id, n)
		}
	}
	if len(attempts) != contacts {
		t.Errorf("%d of %d contacts attempted", len(attempts), contacts)
	}
	for id, n := range attempts {
		if n != 1 {
			t.Errorf("contact %d got %d attempts", id, n)
		}
	}
	var stored int
	if err := first.db.QueryRowContext(ctx, "SELECT count(*) FROM attempts").Scan(&stored); err != nil || stored != contacts {
		t.Errorf("%d attempts stored (%v), want %d", stored, err, contacts)
	}
	if len(fresh) != events {
		t.Errorf("%d of %d events new to a node", len(fresh), events)
	}
	for k, n := range fresh {
		if n != 1 {
			t.Errorf("event %s new to %d nodes", k, n)
		}
	}
}

// TestProcessesStartingTogetherOnANewDatabase: three processes opening one new
// database at once all start, each migration is applied once, and they share
// one token key (a token made through one resolves through the others).
func TestProcessesStartingTogetherOnANewDatabase(t *testing.T) {
	eachBackend(t, testProcessesStartingTogetherOnANewDatabase)
}

func testProcessesStartingTogetherOnANewDatabase(t *testing.T, be backend) {
	ctx := context.Background()
	dsn := be.dsn(t)
	dbs := make([]*DB, 3)
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = Open(ctx, dsn, be.options(dsn, Options{})) })
	}
	wg.Wait()
	for i, d := range dbs {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		t.Cleanup(func() { d.Close() })
	}
	var applied, distinct int
	if err := dbs[0].db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != distinct || applied < 21 {
		t.Errorf("%d migrations recorded, %d distinct", applied, distinct)
	}
	u := User{Username: "ana", Role: RoleAdmin}
	if err := dbs[0].CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	if err := dbs[1].CreateToken(ctx, tester, &Token{UserID: u.ID, Name: "t", Prefix: "tb_x"}, "hash"); err != nil {
		t.Fatal(err)
	}
	for i, d := range dbs {
		if got, err := d.UserByToken(ctx, "hash"); err != nil || got.ID != u.ID {
			t.Errorf("process %d resolves the token as %+v, %v", i, got, err)
		}
	}
}
