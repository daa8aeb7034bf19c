package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/storage"
)

// clusterNode is one of the test's nodes: its server, its SIP stack, and the
// cancel of its RunCluster.
type clusterNode struct {
	*apiEnv
	id     string
	trunks *sip.Originator
	stop   func()
}

// trunkNode returns cfg with a SIP stack of one trunk, "carrier", that nobody
// answers: the tests switch it, never call through it.
func trunkNode(t *testing.T, cfg Config) (Config, *sip.Originator) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: "127.0.0.1:9",
		KeepaliveInterval: sip.KeepaliveEvery(0)}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	cfg.TrunkControl, cfg.TrunkStatus = o, func() any { return o.Trunks() }
	return cfg, o
}

// startCluster runs e's RunCluster as node id, publishing, until the test ends
// or stop is called.
func startCluster(t *testing.T, e *apiEnv, id string, o *sip.Originator) *clusterNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.server.RunCluster(ctx, ClusterOptions{Node: id, Publish: true}) }()
	n := &clusterNode{apiEnv: e, id: id, trunks: o}
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: RunCluster: %v", id, err)
		}
	}
	t.Cleanup(n.stop)
	return n
}

// within polls ok until it holds, failing t after patience; it returns how long
// it took.
func within(t *testing.T, patience time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > patience {
			t.Fatalf("%s: not after %s", what, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// twoNodes is the scene of the tests of several nodes: two servers on one
// PostgreSQL database, each with its own engine and SIP stack (one trunk,
// "carrier"), and a campaign, c, that runs on node B (B holds its lease) and
// dials for the agent, signed in to B, calls that ring until given up.
type twoNodes struct {
	a, b         *apiEnv
	nodeA, nodeB *clusterNode
	// engineB is B's engine, which alone runs; A's is built but not run.
	engineB *engineSlot
	calls   *holdChannel
	c       campaignView
	cid     int64
}

func newTwoNodes(t *testing.T) *twoNodes {
	t.Helper()
	dsn := clusterDatabase(t)
	cfgA, trunksA := trunkNode(t, Config{PasswordCost: cheapPasswordCost()})
	a := newEnvAt(t, dsn, cfgA, nil)
	cfgB, trunksB := trunkNode(t, Config{})
	slot := &engineSlot{}
	cfgB.Engine = slot
	b := a.otherNode(t, cfgB, nil)
	calls := &holdChannel{}
	// B's engine re-reads the campaigns every 30 s by itself: what reaches it
	// sooner came through the change counter.
	// B's engine is the only engine, so the spread gives it every campaign.
	slot.set(runEngine(t, b, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: calls}, func(c *dialer.Config) {
		c.Sync = 30 * time.Second
		c.Cluster = dialer.Cluster{Node: storage.Node{ID: "node-b"}, Shared: true}
	}))
	n := &twoNodes{a: a, b: b, nodeA: startCluster(t, a, "node-a", trunksA), nodeB: startCluster(t, b, "node-b", trunksB),
		engineB: slot, calls: calls}

	phones := make([]string, 12)
	for i := range phones {
		phones[i] = fmt.Sprintf("+55119876503%02d", i)
	}
	n.c = runningCampaign(t, a, "Two nodes", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}, phones...)
	n.cid, _ = strconv.ParseInt(n.c.ID, 10, 64)
	within(t, 10*time.Second, "B takes the campaign's lease", func() bool {
		leases, err := b.db.Leases(context.Background())
		return err == nil && len(leases) == 1 && leases[0].NodeID == n.nodeB.id && leases[0].Live
	})
	// The agent works on node B, which dials for it.
	agent := a.tokens[storage.RoleAgent]
	decode[any](t, b.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, b.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)
	within(t, 10*time.Second, "B dials", func() bool { _, ok := calls.firstPlaced(); return ok })
	return n
}

// ringingOnB waits for a call of c ringing on B and returns its attempt and
// the number it rings.
func (n *twoNodes) ringingOnB(t *testing.T) (storage.Attempt, string) {
	t.Helper()
	ctx := context.Background()
	var ringing storage.Attempt
	within(t, 10*time.Second, "a call ringing on B", func() bool {
		open, err := n.b.db.OpenAttempts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range open {
			if at.CampaignID == n.cid {
				ringing = at
				return true
			}
		}
		return false
	})
	contact, err := n.b.db.GetContact(ctx, ringing.ContactID)
	if err != nil {
		t.Fatal(err)
	}
	return ringing, contact.Phone
}

// waitStopped waits until B's call ringing to phone has ended for the do-not-
// call list within a second of now (a command's poll and a sync's margin
// under five, on a loaded machine); why says how the number got there.
func (n *twoNodes) waitStopped(t *testing.T, ringing storage.Attempt, phone, why string) {
	t.Helper()
	var at storage.Attempt
	took := within(t, 5*time.Second, "B's call to the number "+why+" ended", func() bool {
		var err error
		at, err = n.b.db.GetAttempt(context.Background(), ringing.ID)
		return err == nil && at.EndAt != nil
	})
	t.Logf("B's call to %s ended %s after the number was %s on A", phone, took.Round(time.Millisecond), why)
	if took > time.Second {
		t.Errorf("B's call to a number %s ended after %s, want within 1 s", why, took)
	}
	if !strings.Contains(string(at.Detail), "do-not-call") {
		t.Errorf("B's call ended with %q, want stopped for the do-not-call list (not its ring timeout)", at.Detail)
	}
}

// TestOptOutOnOneNodeStopsRingingOnAnother: a person's opt-out by WhatsApp
// reply applied on node A (as A's webhook inbox applies it: the engine's
// OptOut) ends the call ringing to that number on node B, through the same
// command as a supervisor's do-not-call list, within a second.
func TestOptOutOnOneNodeStopsRingingOnAnother(t *testing.T) {
	n := newTwoNodes(t)
	// A's engine is not run: B's inbox has no webhook event to apply, so only
	// the command can reach B's call.
	engineA := dialer.New(n.a.db, nil, dialer.NewAgents(), dialer.Config{Cluster: dialer.Cluster{Node: storage.Node{ID: n.nodeA.id}, Shared: true}},
		slog.New(slog.DiscardHandler))
	ringing, phone := n.ringingOnB(t)
	if _, err := engineA.OptOut(context.Background(), storage.Actor{Username: "whatsapp"}, []string{phone}, storage.OptOutWhatsAppReply); err != nil {
		t.Fatal(err)
	}
	n.waitStopped(t, ringing, phone, "opted out")
}

// TestTwoNodesOneOperation: with campaign c running on node B and a
// supervisor on node A, A's wallboard shows B's live part (c's ringing calls
// and pacer, the agent B serves, B's trunk beside A's, a trunk death B saw); a
// pacing change made on A is B's run's within a second; a trunk taken out of
// service on A is out on B within a second, and back; the two nodes' /metrics
// together give c's live figures once; and once B leaves, A's page is a single
// node's again.
func TestTwoNodesOneOperation(t *testing.T) {
	n := newTwoNodes(t)
	a, b, nodeA, nodeB, c, cid := n.a, n.b, n.nodeA, n.nodeB, n.c, n.cid
	trunksA, trunksB := nodeA.trunks, nodeB.trunks
	ctx := context.Background()
	supervisor := a.tokens[storage.RoleSupervisor]

	wallboard := func(e *apiEnv) WallboardSnapshot {
		t.Helper()
		return decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", supervisor), http.StatusOK)
	}
	campaignOf := func(snap WallboardSnapshot) WallboardCampaign {
		i := slices.IndexFunc(snap.Campaigns, func(wc WallboardCampaign) bool { return idString(wc.ID) == c.ID })
		if i < 0 {
			t.Fatalf("campaign %s not on the wallboard", c.ID)
		}
		return snap.Campaigns[i]
	}
	t.Run("A's wallboard shows B's live part", func(t *testing.T) {
		var snap WallboardSnapshot
		within(t, 10*time.Second, "B's ringing call on A's wallboard", func() bool {
			snap = wallboard(a)
			wc := campaignOf(snap)
			return wc.Ringing >= 1 && len(wc.Pacer) == 1
		})
		if p := campaignOf(snap).Pacer[0]; p.Mode != campaigns.PacingProgressive || p.Ringing < 1 {
			t.Errorf("pacer %+v: want B's progressive pacer with its ringing call", p)
		}
		var mine []WallboardAgent
		for _, ag := range snap.Agents {
			if ag.ID == a.users[storage.RoleAgent].ID {
				mine = append(mine, ag)
			}
		}
		if len(mine) != 1 || mine[0].Node != nodeB.id || mine[0].State == string(dialer.AgentLoggedOut) ||
			!slices.Equal(mine[0].CampaignIDs, []string{c.ID}) {
			t.Errorf("the agent on A's wallboard: %+v; want once, served by node-b, signed in to %s", mine, c.ID)
		}
		trunks := trunksOf(t, snap)
		if len(trunks) != 2 || trunks[0].Name != "carrier" || trunks[0].Node != nodeA.id || trunks[1].Name != "carrier" || trunks[1].Node != nodeB.id {
			t.Errorf("trunks %+v: want carrier on node-a, then on node-b", trunks)
		}

		// A trunk death B's SIP stack found is on A's banner, once. (B's trunk,
		// which nothing probes, is closed: B's next look at it may call it
		// recovered.)
		down := time.Now().Add(-3 * time.Second).UTC()
		b.server.TrunkChanged(sip.TrunkStatus{Name: "carrier", State: sip.CircuitOpen, DownSince: down, LastDetection: 1.5, Sign: "keepalive failed"})
		within(t, 5*time.Second, "B's failover on A's banner", func() bool {
			fo := wallboard(a).Failovers
			return len(fo) == 1 && fo[0].Trunk == "carrier" && fo[0].DownSince.Equal(down)
		})
	})

	t.Run("a pacing change on A is B's run's within a second", func(t *testing.T) {
		ringOnB := func() time.Duration {
			for _, v := range n.engineB.get().PacerViews() {
				if v.CampaignID == cid {
					return v.RingTimeout
				}
			}
			return 0
		}
		decode[any](t, a.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", supervisor, map[string]any{"ring_timeout": "20s"}), http.StatusOK)
		took := within(t, 5*time.Second, "B's run with the new ring timeout", func() bool { return ringOnB() == 20*time.Second })
		t.Logf("the pacing change reached B's run %s after A answered", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("the pacing change reached B's run after %s, want within 1 s", took)
		}
	})

	t.Run("a trunk taken out on A is out on B within a second", func(t *testing.T) {
		outOnB := func() bool { return trunksB.Trunks()[0].OutOfService }
		for _, out := range []bool{true, false} {
			decode[any](t, a.send(t, "PATCH", "/api/v1/trunks/carrier", supervisor, map[string]any{"out_of_service": out}), http.StatusOK)
			if got := trunksA.Trunks()[0].OutOfService; got != out {
				t.Fatalf("A's own trunk out of service %v, want %v at once", got, out)
			}
			took := within(t, 5*time.Second, fmt.Sprintf("B's trunk out of service %v", out), func() bool { return outOnB() == out })
			t.Logf("out of service %v reached B %s after A answered", out, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("out of service %v reached B after %s, want within 1 s", out, took)
			}
		}
		entries, _, err := a.db.ListAudit(ctx, storage.AuditFilter{ObjectType: "trunk", ObjectID: "carrier"})
		if err != nil || len(entries) != 2 || entries[0].Action != "trunk.in_service" || entries[1].Action != "trunk.out_of_service" {
			t.Errorf("audit %+v, %v: want out of service, then in service, once each", entries, err)
		}
	})

	t.Run("an agent moved and numbers put on a list on A reach B within a second", func(t *testing.T) {
		agentID := a.users[storage.RoleAgent].ID
		campaignsOnB := func() []int64 {
			ag, _ := n.engineB.get().Agents().Get(agentID)
			return ag.Campaigns
		}
		other := decode[campaignView](t, a.send(t, "POST", "/api/v1/campaigns", a.tokens[storage.RoleSales], map[string]any{
			"name": "Other", "default_country": "BR", "caller_id": "+551130000000",
			"ladder": []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		}), http.StatusCreated)
		otherID, _ := strconv.ParseInt(other.ID, 10, 64)
		for _, step := range []struct {
			method, path string
			body         any
			want         []int64
		}{
			{"POST", "/api/v1/campaigns/" + other.ID + "/agents", map[string]any{"user_id": agentID}, []int64{cid, otherID}},
			{"DELETE", fmt.Sprintf("/api/v1/campaigns/%s/agents/%d", other.ID, agentID), nil, []int64{cid}},
		} {
			var r apiResponse
			if step.body != nil {
				r = a.send(t, step.method, step.path, supervisor, step.body)
			} else {
				r = a.do(t, request{method: step.method, path: step.path, token: supervisor})
			}
			if r.status >= 300 {
				t.Fatalf("%s %s: %s", step.method, step.path, r)
			}
			took := within(t, 5*time.Second, fmt.Sprintf("%s %s on B", step.method, step.path), func() bool {
				return slices.Equal(campaignsOnB(), step.want)
			})
			t.Logf("%s %s reached B's engine %s after A answered", step.method, step.path, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("%s %s reached B's engine after %s, want within 1 s", step.method, step.path, took)
			}
		}

		// The number B's call rings goes on the campaign's do-not-call list on A.
		ringing, phone := n.ringingOnB(t)
		decode[any](t, a.send(t, "POST", "/api/v1/dnc", supervisor, map[string]any{"phones": []string{phone}, "campaign_id": c.ID}), http.StatusOK)
		n.waitStopped(t, ringing, phone, "put on a list")
	})

	t.Run("the two nodes' metrics give the campaign once", func(t *testing.T) {
		series := func() map[string][]float64 {
			out := map[string][]float64{}
			for _, n := range []*apiEnv{a, b} {
				for k, v := range scrape(t, n) {
					out[k] = append(out[k], v)
				}
			}
			return out
		}
		ringing := fmt.Sprintf(`turbina_campaign_calls_ringing{campaign="%s"}`, c.ID)
		var got map[string][]float64
		within(t, 5*time.Second, "c's ringing calls in the metrics", func() bool {
			got = series()
			return len(got[ringing]) == 1 && got[ringing][0] >= 1
		})
		if n := len(got[fmt.Sprintf(`turbina_campaign_persons_waiting{campaign="%s"}`, c.ID)]); n != 1 {
			t.Errorf("c's waiting exported by %d nodes, want 1", n)
		}
		if ready := got[`turbina_agents{state="ready"}`]; len(ready) != 2 || ready[0]+ready[1] > 1 {
			t.Errorf("ready agents by node %v: want both nodes' series, the agent in one", ready)
		}
		// The lease moves to A by hand (B's engine, which loses it, stops
		// its run): B no longer exports c's figures, and A, which does not run
		// it, has none to export.
		leases, err := b.db.Leases(ctx)
		if err != nil || len(leases) != 1 {
			t.Fatalf("leases %+v, %v", leases, err)
		}
		if err := b.db.ReleaseLease(ctx, leases[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := a.db.AcquireLease(ctx, cid, nodeA.id, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got := series(); len(got[ringing]) != 0 {
			t.Errorf("c's ringing exported %v with its lease on A, which does not run it", got[ringing])
		}
	})

	t.Run("B leaves: A's page is a single node's", func(t *testing.T) {
		nodeB.stop()
		within(t, 5*time.Second, "A's wallboard without B", func() bool {
			trunks := trunksOf(t, wallboard(a))
			return len(trunks) == 1 && trunks[0].Node == ""
		})
		snap := wallboard(a)
		for _, ag := range snap.Agents {
			if ag.Node != "" || ag.State != string(dialer.AgentLoggedOut) {
				t.Errorf("agent %+v on A's wallboard after B left: want logged out, no node", ag)
			}
		}
		if wc := campaignOf(snap); wc.Ringing != 0 || len(wc.Pacer) != 0 {
			t.Errorf("campaign %+v on A after B left: want no pacer, nothing ringing", wc)
		}
	})
}

// remarshal decodes v's JSON into out.
func remarshal(v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// trunksOf decodes a snapshot's trunks, with their nodes.
func trunksOf(t *testing.T, snap WallboardSnapshot) []WallboardTrunk {
	t.Helper()
	var out []WallboardTrunk
	if err := remarshal(snap.Trunks, &out); err != nil {
		t.Fatalf("trunks %v: %v", snap.Trunks, err)
	}
	return out
}

// scrape reads e's /metrics: each sample by its series, labels included.
func scrape(t *testing.T, e *apiEnv) map[string]float64 {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBrowserWallboardOfTwoNodes: the supervisor's page on node A shows, when
// B is live too, which node each trunk and the agent are on, and the agent's
// SIP phone registered to node B.
func TestBrowserWallboardOfTwoNodes(t *testing.T) {
	n := newTwoNodes(t)
	a := n.a
	// A new password revokes the supervisor's tokens: it gets a new one.
	a.setPassword(t, a.users[storage.RoleSupervisor].ID, testPassword)
	a.tokens[storage.RoleSupervisor] = a.newToken(t, a.users[storage.RoleSupervisor].ID, testAdminToken)
	p := openBrowser(t, a)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("both nodes' trunks", `[...document.querySelectorAll('#trunks tbody tr th .node')].map((s) => s.textContent).join('|') === 'node node-a|node node-b'`, 10*time.Second)
	p.waitJS("the agent on node B", fmt.Sprintf(`document.querySelector('#agents tbody tr[data-id="%d"] th .node')?.textContent === 'node node-b'`,
		a.users[storage.RoleAgent].ID), 5*time.Second)
	// The agent's phone registers to node B's registrar: A's page shows it.
	agent := a.users[storage.RoleAgent].ID
	now := time.Now()
	if err := a.db.UpdatePhoneBindings(context.Background(), agent, []storage.PhoneBinding{{
		AgentID: agent, ContactKey: "sip:agent1@127.0.0.1:5099;udp", Contact: "sip:agent1@127.0.0.1:5099", AOR: "sip:agent1@127.0.0.1",
		Username: "agent1", Source: "127.0.0.1:5099", Transport: "udp", UserAgent: "baresip", Node: "node-b",
		CallID: "c", CSeq: 1, RegisteredAt: now, Expires: now.Add(time.Hour)}}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitJS("the agent's phone registered to node B", fmt.Sprintf(`(() => { const s = document.querySelector('#agents tbody tr[data-id="%d"] th .phone');
		return s?.textContent === 'SIP phone registered' && s.title.includes('UDP') && s.title.includes('node-b'); })()`, agent), 5*time.Second)
	p.shot("two nodes")
	p.do("scroll to the agents", chromedp.Evaluate[chromedp.Void](`document.getElementById('agents').scrollIntoView()`))
	p.shot("two nodes, agents and trunks")
	n.nodeB.stop()
	p.waitJS("A alone: no node names", `document.querySelectorAll('#trunks tbody tr').length === 1 && [...document.querySelectorAll('.node')].every((s) => s.textContent === '')`, 10*time.Second)
}
