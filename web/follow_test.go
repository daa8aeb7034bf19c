package web

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

func TestHomeHolderIsTheLowestLeasedCampaignsNode(t *testing.T) {
	live := func(c int64, node string) storage.Lease {
		return storage.Lease{CampaignID: c, NodeID: node, Live: true}
	}
	expired := func(c int64, node string) storage.Lease { return storage.Lease{CampaignID: c, NodeID: node} }
	for _, tc := range []struct {
		name     string
		assigned []int64
		leases   []storage.Lease
		want     string
	}{
		{"no campaign", nil, []storage.Lease{live(1, "a")}, ""},
		{"no lease", []int64{1}, nil, ""},
		{"its campaign's holder", []int64{2}, []storage.Lease{live(1, "a"), live(2, "b")}, "b"},
		{"an expired lease is no one's", []int64{2}, []storage.Lease{expired(2, "b")}, ""},
		{"the lowest campaign with a live lease", []int64{1, 2, 3}, []storage.Lease{expired(1, "a"), live(3, "c"), live(2, "b")}, "b"},
		{"another agent's campaign does not count", []int64{5}, []storage.Lease{live(1, "a"), live(5, "c")}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := homeHolder(tc.assigned, tc.leases); got != tc.want {
				t.Errorf("homeHolder = %q, want %q", got, tc.want)
			}
		})
	}
}

// counterSum sums e's counter name over the series whose labels include want.
func counterSum(t *testing.T, e *apiEnv, name string, want map[string]string) float64 {
	t.Helper()
	families, err := e.server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue series
				}
			}
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// served is how many requests e has answered.
func served(t *testing.T, e *apiEnv) float64 {
	t.Helper()
	return counterSum(t, e, "turbina_http_requests_total", nil)
}

// agentNodes is two servers on one PostgreSQL database, each with its own
// engine, as two `turbina serve` processes are: node-a and node-b, both
// registered live. The agent is assigned to campaign; no lease is taken.
type agentNodes struct {
	a, b     *apiEnv
	campaign int64
	agent    int64
}

func newAgentNodes(t *testing.T) *agentNodes {
	t.Helper()
	return newAgentNodesWith(t, nil)
}

// newAgentNodesWith is newAgentNodes with node B's engine built by engineB.
func newAgentNodesWith(t *testing.T, engineB func(*storage.DB) Engine) *agentNodes {
	t.Helper()
	dsn := clusterDatabase(t)
	n := &agentNodes{}
	// Nodes heartbeat on their own loop in `turbina serve`; here none does, so
	// a registration counts as live for the whole test.
	cluster := func(node string) Config {
		return Config{Cluster: Cluster{Node: node, NodeTimeout: time.Hour, HomeCheck: 100 * time.Millisecond}, PasswordCost: cheapPasswordCost()}
	}
	n.a = newEnvAt(t, dsn, cluster("node-a"), nil)
	n.b = n.a.otherNode(t, cluster("node-b"), engineB)
	for id, e := range map[string]*apiEnv{"node-a": n.a, "node-b": n.b} {
		if err := n.a.db.RegisterNode(context.Background(), storage.Node{ID: id, Addr: e.srv.URL}); err != nil {
			t.Fatal(err)
		}
	}
	c := n.a.createCampaign(t, "Follow")
	decode[any](t, n.a.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", n.a.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": n.a.users[storage.RoleAgent].ID}), http.StatusOK)
	id, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	n.campaign = id
	n.agent = n.a.users[storage.RoleAgent].ID
	return n
}

// agentPassword gives the agent testPassword, to sign in on node A's pages.
func (n *agentNodes) agentPassword(t *testing.T) {
	t.Helper()
	n.a.setPassword(t, n.agent, testPassword)
	// A new password revoked the agent's tokens.
	n.a.tokens[storage.RoleAgent] = n.a.newToken(t, n.agent, testAdminToken)
}

// lease gives the campaign to node for an hour, as its engine would take it.
func (n *agentNodes) lease(t *testing.T, node string) storage.Lease {
	t.Helper()
	l, err := n.a.db.AcquireLease(context.Background(), n.campaign, node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// release gives l up, as its node does when it hands the campaign over.
func (n *agentNodes) release(t *testing.T, l storage.Lease) {
	t.Helper()
	if err := n.a.db.ReleaseLease(context.Background(), l); err != nil {
		t.Fatal(err)
	}
}

// waitHome waits until e finds node the agent's home: its view of the leases
// is a second old at most.
func (n *agentNodes) waitHome(t *testing.T, e *apiEnv, node string) {
	t.Helper()
	within(t, followPatience, e.server.cfg.Cluster.Node+" finds "+node+" the agent's home", func() bool {
		home, remote, err := e.server.agentHome(context.Background(), n.agent)
		if !remote {
			home.ID = e.server.cfg.Cluster.Node
		}
		return err == nil && home.ID == node
	})
}

// state is the agent's state in env's own engine.
func (n *agentNodes) state(e *apiEnv) dialer.Agent {
	a, ok := e.server.cfg.Engine.Agents().Get(n.agent)
	if !ok {
		return dialer.Agent{State: dialer.AgentLoggedOut}
	}
	return a
}

// followPatience is how long the follow tests wait for a node to see a change.
const followPatience = 20 * time.Second

// dialEvents opens the agent's event stream on e as the agent page does: with
// the session cookie of b and the page's origin, e's own address.
func dialEvents(ctx context.Context, t *testing.T, e *apiEnv, b *browser) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{"Origin": {e.srv.URL}, "Cookie": {sessionCookie + "=" + b.cookie(sessionCookie)}}
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/v1/agent/events", &websocket.DialOptions{HTTPHeader: h})
}

// TestAgentIsServedByItsCampaignsNode: an agent reaching node A while node B
// holds its campaign's lease is served by B, stream and actions; when the
// lease moves to A the stream ends and the reconnection lands on A; with B
// gone the agent is told node_unavailable, until the campaign is A's.
func TestAgentIsServedByItsCampaignsNode(t *testing.T) {
	n := newAgentNodes(t)
	a, b := n.a, n.b
	n.agentPassword(t)
	page := a.browser(t).login("agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bLease := n.lease(t, "node-b")
	n.waitHome(t, a, "node-b")

	// Logged in through A with the session cookie (and CSRF token): B's
	// engine has the agent, A's does not.
	if r := page.api("POST", "/api/v1/agent/login", map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("login through node A: %v", r)
	}
	if got := n.state(b).State; got != dialer.AgentPaused {
		t.Fatalf("node B's engine: agent %s, want paused (logged in)", got)
	}
	if got := n.state(a).State; got != dialer.AgentLoggedOut {
		t.Fatalf("node A's engine: agent %s, want logged out: the login went to B", got)
	}

	// The event stream through A is B's: the origin and Host the page sent
	// pass B's checks, and B sees the page open.
	conn, _, err := dialEvents(ctx, t, a, page)
	if err != nil {
		t.Fatalf("event stream through node A: %v", err)
	}
	defer conn.CloseNow()
	var first dialer.AgentEvent
	if err := wsjson.Read(ctx, conn, &first); err != nil || first.Agent == nil || first.Agent.State != dialer.AgentPaused {
		t.Fatalf("first event %+v (%v), want B's paused agent", first, err)
	}
	within(t, followPatience, "node B sees the agent's page open", func() bool { return n.state(b).Page })
	if n.state(a).Page {
		t.Error("node A's engine sees the agent's page: the stream was served by A")
	}

	// Actions through A reach B, and B's stream tells the page.
	if r := page.api("POST", "/api/v1/agent/ready", map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("ready through node A: %v", r)
	}
	if got := n.state(b).State; got != dialer.AgentReady {
		t.Fatalf("node B's engine: agent %s after ready, want ready", got)
	}
	var ev dialer.AgentEvent
	if err := wsjson.Read(ctx, conn, &ev); err != nil || ev.Agent == nil || ev.Agent.State != dialer.AgentReady {
		t.Fatalf("event after ready: %+v (%v), want the ready state", ev, err)
	}
	page.api("POST", "/api/v1/agent/pause", map[string]any{"reason": "coffee"})
	if got := n.state(b); got.State != dialer.AgentPaused || got.Reason != "coffee" {
		t.Fatalf("node B's engine after pause: %+v", got)
	}
	if got := decode[dialer.Agent](t, a.get(t, "/api/v1/agent", a.tokens[storage.RoleAgent]), http.StatusOK); got.Reason != "coffee" {
		t.Errorf("GET /api/v1/agent through node A with a token: %+v, want B's paused agent", got)
	}

	// The campaign moves to A: the stream B served ends, and the page's next
	// one is A's own.
	n.release(t, bLease)
	aLease := n.lease(t, "node-a")
	for {
		var ev dialer.AgentEvent
		err := wsjson.Read(ctx, conn, &ev)
		if err == nil {
			continue // B's events until it notices
		}
		if got := websocket.CloseStatus(err); got != websocket.StatusServiceRestart {
			t.Fatalf("the stream ended with %v, want close status %d (the campaign moved)", err, websocket.StatusServiceRestart)
		}
		break
	}
	within(t, followPatience, "node B logs out the agent whose campaign moved", func() bool { return n.state(b).State == dialer.AgentLoggedOut })
	// As the page, which reconnects until it does: once A's view of the
	// leases is fresh (a second at most), A serves the agent itself.
	n.waitHome(t, a, "node-a")
	conn2, _, err := dialEvents(ctx, t, a, page)
	if err != nil {
		t.Fatalf("reconnect through node A: %v", err)
	}
	defer conn2.CloseNow()
	within(t, followPatience, "node A sees the reconnected page", func() bool { return n.state(a).Page })
	if n.state(b).Page {
		t.Error("node B still sees the agent's page after the campaign became A's")
	}
	conn2.Close(websocket.StatusNormalClosure, "")

	// B is gone while its lease lives: the agent is told so, and retries.
	n.release(t, aLease)
	bLease = n.lease(t, "node-b")
	n.waitHome(t, a, "node-b")
	b.srv.Close()
	r := a.get(t, "/api/v1/agent", a.tokens[storage.RoleAgent])
	wantError(t, r, http.StatusServiceUnavailable, "node_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("%v: no Retry-After", r)
	}
	_, resp, err := dialEvents(ctx, t, a, page)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("event stream with node B gone: %v %v, want 503", err, resp)
	}
	if got := counterSum(t, a, "turbina_agent_relays_total", map[string]string{"result": "node_unavailable"}); got != 2 {
		t.Errorf("node A counted %v relays to an unavailable node, want 2", got)
	}
	if got := counterSum(t, a, "turbina_agent_relays_total", map[string]string{"result": "relayed"}); got < 5 {
		t.Errorf("node A counted %v relayed requests, want the 5 or more it relayed", got)
	}
	// Its lease runs out and A takes the campaign: the same request is A's.
	if _, err := a.db.RenewLease(ctx, bLease, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	within(t, followPatience, "node A takes the expired lease", func() bool {
		_, err := a.db.AcquireLease(ctx, n.campaign, "node-a", time.Hour)
		return err == nil
	})
	within(t, followPatience, "the agent is served again", func() bool {
		return a.get(t, "/api/v1/agent", a.tokens[storage.RoleAgent]).status == http.StatusOK
	})
}

// TestForwardingTrustsNothingButCredentials: a node forwards nothing that is
// not authenticated, and a request that says it was forwarded is served where
// it lands rather than forwarded again.
func TestForwardingTrustsNothingButCredentials(t *testing.T) {
	n := newAgentNodes(t)
	a, b := n.a, n.b
	bLease := n.lease(t, "node-b")
	n.waitHome(t, a, "node-b")
	agent := a.tokens[storage.RoleAgent]
	if r := a.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("login through node A: %v", r)
	}
	if got := n.state(b).State; got != dialer.AgentPaused {
		t.Fatalf("node B's engine: agent %s, want paused", got)
	}
	// Node B is reached by no one but node A here: what it answers is what A
	// forwarded.
	forwarded := served(t, b)
	if forwarded == 0 {
		t.Fatal("node B answered nothing, not even the login: its count proves nothing")
	}

	for _, tc := range []struct {
		name   string
		header http.Header
		token  string
	}{
		{"no credentials", nil, ""},
		{"a revoked or made-up token", nil, "tb_00000000_not-a-token"},
		{"a made-up session", http.Header{"Cookie": {sessionCookie + "=made-up"}}, ""},
		{"no credentials, claiming to be forwarded", http.Header{forwardedByHeader: {"node-b"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(t, request{method: "GET", path: "/api/v1/agent", token: tc.token, header: tc.header})
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
		})
	}
	if got := served(t, b); got != forwarded {
		t.Errorf("node A forwarded %v requests without valid credentials", got-forwarded)
	}

	// A forged forward header keeps the request on A: A's own engine answers
	// (the agent is logged out there), nothing is forwarded.
	r := a.do(t, request{method: "GET", path: "/api/v1/agent", token: agent, header: http.Header{forwardedByHeader: {"node-b"}}})
	if got := decode[dialer.Agent](t, r, http.StatusOK); got.State != dialer.AgentLoggedOut {
		t.Errorf("with a forged forward header: %+v, want node A's own answer (logged out)", got)
	}
	if got := served(t, b); got != forwarded {
		t.Errorf("node A forwarded a request that said it was forwarded")
	}

	// A lease whose node stopped heartbeating cannot be served: told so.
	if err := a.db.RemoveNode(context.Background(), "node-b"); err != nil {
		t.Fatal(err)
	}
	within(t, followPatience, "node A sees node B gone", func() bool {
		r := a.get(t, "/api/v1/agent", agent)
		return r.status == http.StatusServiceUnavailable && strings.Contains(string(r.body), "node_unavailable")
	})

	// A node frozen (SIGSTOP) while its lease lives accepts connections and
	// answers nothing: the event stream is told within a few seconds, not
	// left waiting, and the page tries again.
	frozen, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { frozen.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := frozen.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	if err := a.db.RegisterNode(context.Background(), storage.Node{ID: "node-c", Addr: "http://" + frozen.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	n.release(t, bLease)
	n.lease(t, "node-c")
	n.waitHome(t, a, "node-c")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.srv.URL, "http")+"/api/v1/agent/events?access_token="+agent, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("event stream with its node frozen: %v %v, want 503", err, resp)
	}
}

// TestAgentAudioThroughAnotherNodeIsTheHomeNodes: the page's WebRTC offer,
// sent on the event stream it opened on node A, is answered by node B, which
// runs the agent's campaign, and the audio comes up with B (A takes no
// browser audio at all here).
func TestAgentAudioThroughAnotherNodeIsTheHomeNodes(t *testing.T) {
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := newAgentNodesWith(t, func(db *storage.DB) Engine {
		return dialer.New(db, nil, dialer.NewAgents(), dialer.Config{AgentPeers: peers}, log)
	})
	n.lease(t, "node-b")
	n.waitHome(t, n.a, "node-b")
	agent := n.a.tokens[storage.RoleAgent]
	if r := n.a.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{"audio": "webrtc"}); r.status != http.StatusOK {
		t.Fatalf("login through node A: %v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.a.srv.URL, "http")+"/api/v1/agent/events?access_token="+agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if codes := offerAudio(ctx, t, conn); len(codes) > 0 {
		t.Errorf("errors on the stream: %v", codes)
	}
	if got := n.state(n.b); !got.Audio || got.Media != dialer.MediaBrowser {
		t.Errorf("node B's engine: %+v, want the agent's browser audio up", got)
	}
	if got := n.state(n.a); got.Audio {
		t.Errorf("node A's engine has the agent's audio: %+v", got)
	}
}
