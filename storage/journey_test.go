package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// newAgent creates a user to own callbacks.
func newAgent(t *testing.T, d *DB) int64 {
	t.Helper()
	u := User{Username: "ana", Role: RoleSales, PasswordHash: "$argon2id$x"}
	if err := d.CreateUser(context.Background(), tester, &u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// importContacts imports phones into campaign c and returns their ids in order.
func importContacts(t *testing.T, d *DB, c campaigns.Campaign, phones ...string) []int64 {
	t.Helper()
	ctx := context.Background()
	b, err := d.BeginImport(ctx, tester, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range phones {
		if _, err := b.Add(ctx, campaigns.Contact{Phone: p, Line: i + 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	list, _, err := d.ListContacts(ctx, c.ID, ContactFilter{})
	if err != nil || len(list) != len(phones) {
		t.Fatalf("contacts %+v, %v", list, err)
	}
	ids := make([]int64, len(list))
	for i, ct := range list {
		ids[i] = ct.ID
	}
	return ids
}

// TestFinishAttemptSeesDoNotCallAddedMeanwhile: the move runs inside the
// transaction on the contact as stored, so a number put on the do-not-call list
// during its call stays there whatever the call's outcome, and a callback asked
// for it is not scheduled.
func TestFinishAttemptSeesDoNotCallAddedMeanwhile(t *testing.T) {
	eachBackend(t, testFinishAttemptSeesDoNotCallAddedMeanwhile)
}

func testFinishAttemptSeesDoNotCallAddedMeanwhile(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	ids := importContacts(t, d, c, "+5511987650020", "+5511987650021")
	agent := newAgent(t, d)
	now := time.Now()
	for _, id := range ids {
		a, err := d.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		if id == ids[0] {
			if _, err := d.AddDNC(ctx, tester, 0, []string{"+5511987650020"}, "asked during the call"); err != nil {
				t.Fatal(err)
			}
		}
		a.State, a.Outcome, a.EndAt = "ended", string(campaigns.OutcomeConnected), &now
		var seen campaigns.Position
		err = d.FinishAttempt(ctx, a, func(ct campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
			seen = pos
			return campaigns.Apply(c.Ladder, ct, pos, campaigns.OutcomeEvent(campaigns.OutcomeConnected), now)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := campaigns.ContactInProgress
		if id == ids[0] {
			want = campaigns.ContactDoNotCall
		}
		if seen.Status != want {
			t.Errorf("contact %d: the move saw %q, want %q", id, seen.Status, want)
		}
		if err := d.Dispose(ctx, a.ID, "callback", "", &Callback{At: now.Add(time.Hour), AgentID: agent}); err != nil {
			t.Fatal(err)
		}
	}
	blocked, err := d.ContactPosition(ctx, ids[0])
	if err != nil || blocked.Contact.Status != campaigns.ContactDoNotCall {
		t.Errorf("do-not-call contact after its call and a callback: %+v, %v", blocked, err)
	}
	called, err := d.ContactPosition(ctx, ids[1])
	if err != nil || called.Contact.Status != campaigns.ContactPending || called.CallbackAgentID != agent ||
		called.NextAttemptAt.UnixMilli() != now.Add(time.Hour).UnixMilli() {
		t.Errorf("callback contact: %+v, %v; want pending for the agent at the callback time", called, err)
	}
}

// TestMoveContactWritesWhatItIsGiven: the storage writes the move's answer as it is
// and nothing when the move refuses.
func TestMoveContactWritesWhatItIsGiven(t *testing.T) {
	eachBackend(t, testMoveContactWritesWhatItIsGiven)
}

func testMoveContactWritesWhatItIsGiven(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	id := importContacts(t, d, c, "+5511987650030")[0]
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	want := campaigns.Position{Status: campaigns.ContactExhausted, Rung: 2, Attempts: 3, NextAt: at, CallbackAgent: newAgent(t, d), CallbackAt: at}
	if err := d.MoveContact(ctx, id, func(campaigns.Contact, campaigns.Position) (campaigns.Position, error) { return want, nil }); err != nil {
		t.Fatal(err)
	}
	var got campaigns.Position
	refused := errors.New("refused")
	err := d.MoveContact(ctx, id, func(_ campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
		got = pos
		return campaigns.Position{Status: campaigns.ContactDone}, refused
	})
	if !errors.Is(err, refused) {
		t.Errorf("refused move: %v", err)
	}
	if !got.NextAt.Equal(want.NextAt) || !got.CallbackAt.Equal(want.CallbackAt) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	got.NextAt, got.CallbackAt = want.NextAt, want.CallbackAt
	if got != want {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	if pos, err := d.ContactPosition(ctx, id); err != nil || pos.Contact.Status != campaigns.ContactExhausted {
		t.Errorf("after a refused move: %+v, %v; want it unchanged", pos, err)
	}
	if err := d.MoveContact(ctx, 999, func(_ campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) { return pos, nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("move of a missing contact: %v", err)
	}
	// A contact that is not pending is not claimed: the journey refuses "due".
	if _, err := d.StartAttempt(ctx, id, campaigns.ChannelSIP, 2); !errors.Is(err, ErrConflict) {
		t.Errorf("start on an exhausted contact: %v, want ErrConflict", err)
	}
}

// TestOpenWrapUpsAndDisposeOnce: a connected call with its agent and no
// disposition is an open wrap-up of its campaign until disposed, within the
// time asked; a second disposition is refused and the first stands, its
// callback scheduled once.
func TestOpenWrapUpsAndDisposeOnce(t *testing.T) {
	eachBackend(t, testOpenWrapUpsAndDisposeOnce)
}

func testOpenWrapUpsAndDisposeOnce(t *testing.T, be backend) {
	d, _ := be.open(t, Options{})
	ctx := context.Background()
	c := newCampaign(t, d)
	ids := importContacts(t, d, c, "+5511987650040", "+5511987650041")
	agent := newAgent(t, d)
	now := time.Now()
	ended := make([]Attempt, len(ids))
	for i, id := range ids {
		a, err := d.StartAttempt(ctx, id, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		a.State, a.EndAt = "ended", &now
		a.Outcome = string(campaigns.OutcomeConnected)
		if i == 0 {
			a.AgentID = agent
		} else {
			a.Outcome = string(campaigns.OutcomeNoAnswer) // no agent, no wrap-up
		}
		if err := d.FinishAttempt(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		ended[i] = a
	}
	open, err := d.OpenWrapUps(ctx, c.ID, now.Add(-time.Minute))
	if err != nil || len(open) != 1 || open[0].ID != ended[0].ID || open[0].AgentID != agent {
		t.Fatalf("open wrap-ups %+v, %v; want the connected call with its agent", open, err)
	}
	if open, err := d.OpenWrapUps(ctx, c.ID, now.Add(time.Minute)); err != nil || len(open) != 0 {
		t.Errorf("wrap-ups of calls ended since a minute ahead: %+v, %v; want none", open, err)
	}
	if err := d.Dispose(ctx, ended[0].ID, "callback", "first", &Callback{At: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Dispose(ctx, ended[0].ID, "sale", "second", &Callback{At: now.Add(2 * time.Hour)}); !errors.Is(err, ErrDisposed) {
		t.Errorf("a second disposition: %v, want ErrDisposed", err)
	}
	a, err := d.GetAttempt(ctx, ended[0].ID)
	if err != nil || a.Disposition != "callback" || a.Notes != "first" {
		t.Errorf("attempt %+v, %v; want the first disposition", a, err)
	}
	pos, err := d.ContactPosition(ctx, ids[0])
	if err != nil || pos.NextAttemptAt.UnixMilli() != now.Add(time.Hour).UnixMilli() {
		t.Errorf("contact %+v, %v; want the first callback's time", pos, err)
	}
	if open, err := d.OpenWrapUps(ctx, c.ID, now.Add(-time.Minute)); err != nil || len(open) != 0 {
		t.Errorf("open wrap-ups after the disposition: %+v, %v; want none", open, err)
	}
}
