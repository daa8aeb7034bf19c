package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// TestCampaignWritesCountAChange: every write to a campaign moves the campaigns'
// change counter, which the other nodes poll, and nothing else does.
func TestCampaignWritesCountAChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		d, _ := b.open(t, Options{})
		ctx := context.Background()
		version := func() int64 {
			t.Helper()
			v, err := d.ChangeVersions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return v[VersionCampaigns]
		}
		last := version()
		moved := func(what string) {
			t.Helper()
			if v := version(); v != last+1 {
				t.Errorf("after %s the campaigns' version is %d, want %d", what, v, last+1)
			}
			last = version()
		}
		c := newCampaign(t, d)
		moved("a campaign's creation")
		if _, err := d.UpdateCampaign(ctx, Actor{}, c.ID, "campaign.pacing", func(c *campaigns.Campaign) error {
			c.Pacing.MaxRatio = 2
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		moved("a pacing change")
		importContacts(t, d, c, "+5511987654321")
		if v := version(); v != last {
			t.Errorf("an import moved the campaigns' version to %d, from %d", v, last)
		}
		if _, err := d.ArchiveCampaign(ctx, Actor{}, c.ID, func(campaigns.Campaign) error { return nil }); err != nil {
			t.Fatal(err)
		}
		moved("an archive")
	})
}

// TestNodeLiveParts: a node's live part is kept as published, replaced by the
// next, left out once older than asked by the database's clock, and forgotten
// when the node leaves.
func TestNodeLiveParts(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		d, _ := b.open(t, Options{})
		ctx := context.Background()
		for _, p := range []struct{ node, body string }{{"b", `{"n":1}`}, {"a", `{"n":2}`}, {"b", `{"n":3}`}} {
			if err := d.PublishNodeLive(ctx, p.node, json.RawMessage(p.body)); err != nil {
				t.Fatal(err)
			}
		}
		parts, err := d.NodeLiveParts(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != 2 || parts[0].Node != "a" || parts[1].Node != "b" || string(parts[1].Body) != `{"n":3}` {
			t.Fatalf("parts %+v, want a's and b's last", parts)
		}
		if parts[0].Age < 0 || parts[0].Age > time.Minute || parts[0].Published.IsZero() {
			t.Errorf("part %+v: published and aged by the database's clock", parts[0])
		}

		time.Sleep(100 * time.Millisecond)
		if err := d.PublishNodeLive(ctx, "a", json.RawMessage(`{"n":4}`)); err != nil {
			t.Fatal(err)
		}
		if parts, err = d.NodeLiveParts(ctx, 50*time.Millisecond); err != nil || len(parts) != 1 || parts[0].Node != "a" {
			t.Errorf("within 50 ms: %+v, %v; want only a's, published again", parts, err)
		}
		if err := d.RemoveNodeLive(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if parts, err = d.NodeLiveParts(ctx, time.Hour); err != nil || len(parts) != 1 || parts[0].Node != "b" {
			t.Errorf("after a left: %+v, %v; want b's", parts, err)
		}

		for _, bad := range []struct {
			node string
			body string
		}{{"", `{}`}, {"a", `{`}} {
			if err := d.PublishNodeLive(ctx, bad.node, json.RawMessage(bad.body)); err == nil {
				t.Errorf("node %q body %q was published", bad.node, bad.body)
			}
		}
		if _, err := d.NodeLiveParts(ctx, 0); err == nil {
			t.Error("an age of 0 was taken")
		}
	})
}

// TestTrunkServices: a supervisor's trunk choice is kept per trunk with a new
// trunks' version, audited in its transaction, and listed after a version.
func TestTrunkServices(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		d, _ := b.open(t, Options{})
		ctx := context.Background()
		who := Actor{Username: "super"}
		out, err := d.SetTrunkService(ctx, who, "carrier", true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.SetTrunkService(ctx, who, "backup", true); err != nil {
			t.Fatal(err)
		}
		back, err := d.SetTrunkService(ctx, who, "carrier", false)
		if err != nil {
			t.Fatal(err)
		}
		if back.Version != out.Version+2 || back.OutOfService || back.Changed.IsZero() {
			t.Errorf("carrier back in service: %+v, after %+v", back, out)
		}
		v, err := d.ChangeVersions(ctx)
		if err != nil || v[VersionTrunks] != back.Version {
			t.Errorf("versions %v, %v; want trunks at %d", v, err, back.Version)
		}
		all, err := d.TrunkServices(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Name != "backup" || !all[0].OutOfService || all[1].Name != "carrier" || all[1].OutOfService {
			t.Errorf("trunks %+v, want backup out, then carrier back in", all)
		}
		if later, err := d.TrunkServices(ctx, back.Version); err != nil || len(later) != 0 {
			t.Errorf("after the last version: %+v, %v", later, err)
		}
		entries, _, err := d.ListAudit(ctx, AuditFilter{ObjectType: "trunk", ObjectID: "carrier"})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 || entries[0].Action != "trunk.in_service" || entries[1].Action != "trunk.out_of_service" ||
			entries[0].Username != "super" || string(entries[1].After) != `{"out_of_service":true}` {
			t.Errorf("audit %+v", entries)
		}
		if _, err := d.SetTrunkService(ctx, who, "", true); err == nil {
			t.Error("a trunk without a name was set")
		}
	})
}

// TestClusterCommands: an agent's assignment and unassignment each record
// their command in their own transaction, a stop of ringing calls is recorded
// as asked, all listed after a version in order; commands older than ten
// minutes by the database's clock are forgotten at the next one.
func TestClusterCommands(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		d, _ := b.open(t, Options{})
		ctx := context.Background()
		c := newCampaign(t, d)
		u := User{Username: "agent1", Role: RoleAgent}
		if err := d.CreateUser(ctx, tester, &u); err != nil {
			t.Fatal(err)
		}
		start, err := d.ChangeVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.AssignAgent(ctx, tester, c.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.UnassignAgent(ctx, tester, c.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.RecordCommand(ctx, CommandStopRinging, StopRingingCommand{Numbers: []string{"+5511987654321"}}); err != nil {
			t.Fatal(err)
		}
		got, err := d.ClusterCommands(ctx, start[VersionCommands])
		if err != nil {
			t.Fatal(err)
		}
		move := fmt.Sprintf(`{"user_id":%d,"campaign_id":%d}`, u.ID, c.ID)
		want := []ClusterCommand{{Kind: CommandAssign, Body: json.RawMessage(move)}, {Kind: CommandUnassign, Body: json.RawMessage(move)},
			{Kind: CommandStopRinging, Body: json.RawMessage(`{"campaign_id":0,"numbers":["+5511987654321"]}`)}}
		if len(got) != len(want) {
			t.Fatalf("commands %+v, want %d", got, len(want))
		}
		for i := range want {
			if got[i].Kind != want[i].Kind || string(got[i].Body) != string(want[i].Body) || got[i].Version != start[VersionCommands]+int64(i)+1 {
				t.Errorf("command %d: %+v (%s), want %s %s", i, got[i], got[i].Body, want[i].Kind, want[i].Body)
			}
		}
		// An unassignment that changes nothing records nothing.
		if err := d.UnassignAgent(ctx, tester, c.ID, u.ID); err == nil {
			t.Error("an agent not on the campaign was unassigned")
		}
		if later, err := d.ClusterCommands(ctx, got[2].Version); err != nil || len(later) != 0 {
			t.Errorf("after a refused unassignment: %+v, %v", later, err)
		}

		if _, err := d.exec(ctx, "UPDATE cluster_commands SET created_at = created_at - ?", (11 * time.Minute).Milliseconds()); err != nil {
			t.Fatal(err)
		}
		if err := d.RecordCommand(ctx, CommandStopRinging, StopRingingCommand{CampaignID: c.ID, Numbers: []string{"+5511987654322"}}); err != nil {
			t.Fatal(err)
		}
		if left, err := d.ClusterCommands(ctx, 0); err != nil || len(left) != 1 || left[0].Version != got[2].Version+1 {
			t.Errorf("after ten minutes: %+v, %v; want the new command alone", left, err)
		}
	})
}
