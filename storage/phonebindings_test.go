package storage

import (
	"context"
	"testing"
	"time"
)

// TestPhoneBindingsAreShared: a binding one node stores is what every node
// reads while it lives, with its REGISTER's Call-ID and CSeq; a refresh from
// another node replaces it; a removal, an unrefreshed forget and the purge of
// expired rows act as they say, and a forget of a binding registered again
// since leaves it alone.
func TestPhoneBindingsAreShared(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		d, _ := b.open(t, Options{})
		ctx := context.Background()
		agent := newAgent(t, d)
		u := User{Username: "bia", Role: RoleAgent}
		if err := d.CreateUser(ctx, tester, &u); err != nil {
			t.Fatal(err)
		}
		other := u.ID
		now := time.UnixMilli(time.Now().UnixMilli()).UTC()
		bind := func(agentID int64, key, node string, at time.Time, ttl time.Duration) PhoneBinding {
			return PhoneBinding{
				AgentID: agentID, ContactKey: key, Contact: "sip:" + key, AOR: "sip:ana@turbina", Username: "ana",
				Source: "127.0.0.1:5099", Transport: "udp", UserAgent: "baresip", Node: node,
				CallID: "call-" + key, CSeq: 7, RegisteredAt: at, Expires: at.Add(ttl),
			}
		}
		desk := bind(agent, "desk", "node-a", now, time.Hour)
		soft := bind(agent, "soft", "node-a", now.Add(-time.Minute), time.Hour)
		old := bind(other, "gone", "node-b", now.Add(-2*time.Hour), time.Hour)
		if err := d.UpdatePhoneBindings(ctx, agent, []PhoneBinding{desk, soft}, nil); err != nil {
			t.Fatal(err)
		}
		if err := d.UpdatePhoneBindings(ctx, other, []PhoneBinding{old}, nil); err != nil {
			t.Fatal(err)
		}
		if err := d.UpdatePhoneBindings(ctx, agent, []PhoneBinding{old}, nil); err == nil {
			t.Error("another agent's binding was stored as this agent's")
		}
		got, err := d.PhoneBindings(ctx, agent, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != desk || got[1] != soft {
			t.Fatalf("bindings %+v, want desk then soft as stored", got)
		}
		if got, err := d.PhoneBindings(ctx, other, now); err != nil || len(got) != 0 {
			t.Errorf("an expired binding is read: %+v %v", got, err)
		}
		if got, err := d.PhoneBindings(ctx, agent, now.Add(time.Hour)); err != nil || len(got) != 0 {
			t.Errorf("bindings read at their expiry: %+v %v", got, err)
		}

		// Node B takes the next REGISTER of the desk phone: its row replaces A's.
		moved := bind(agent, "desk", "node-b", now.Add(time.Second), time.Minute)
		moved.CSeq = 8
		if err := d.UpdatePhoneBindings(ctx, agent, []PhoneBinding{moved}, []string{"soft"}); err != nil {
			t.Fatal(err)
		}
		all, err := d.LivePhoneBindings(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0] != moved {
			t.Fatalf("live bindings %+v, want B's desk alone", all)
		}
		// A finds its phone lost: the row is B's now, and stays.
		if ok, err := d.ForgetPhoneBinding(ctx, desk); err != nil || ok {
			t.Errorf("forget A's stale desk binding: %v %v, want nothing forgotten", ok, err)
		}
		if ok, err := d.ForgetPhoneBinding(ctx, moved); err != nil || !ok {
			t.Errorf("forget B's desk binding: %v %v, want it forgotten", ok, err)
		}
		if n, err := d.PurgePhoneBindings(ctx, now); err != nil || n != 1 {
			t.Errorf("purge removed %d (%v), want the expired one", n, err)
		}
		if all, err := d.LivePhoneBindings(ctx, now.Add(-24*time.Hour)); err != nil || len(all) != 0 {
			t.Errorf("bindings left %+v %v", all, err)
		}
	})
}
