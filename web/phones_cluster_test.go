package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/phonetest"
	"github.com/turbina-dialer/turbina/storage"
)

// clusterRegistrar is node's registrar on db, sharing its bindings and its
// nonce key with the other nodes' (agent1's phone registers with password
// "pw-agent1").
func clusterRegistrar(t *testing.T, db *storage.DB, node string, agentID int64) *sip.Registrar {
	t.Helper()
	return phonetest.Registrar(t, sip.RegistrarConfig{Node: node, Shared: db, NonceKey: []byte("nonce key of the test's nodes")},
		map[string]int64{"agent1": agentID})
}

// TestPhoneRegisteredToOneNodeServesTheAgentOnAnother: the agent's SIP phone
// (baresip) registers to node A's registrar while node B runs the agent's
// campaign. B's wallboard and /metrics show the phone registered (to A); the
// agent's login through A reaches B, whose registrar calls the phone at the
// address it registered from: baresip answers B's call, its audio reaches B's
// bridge, and the agent's audio is up on B alone; the phone's hang-up reaches B,
// and its unregistration through A is seen by B. A phone registered over TCP to
// A alone is refused by B's login at once, naming A.
func TestPhoneRegisteredToOneNodeServesTheAgentOnAnother(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var regB *sip.Registrar
	n := newAgentNodesWith(t, func(db *storage.DB) Engine {
		regB = clusterRegistrar(t, db, "node-b", 0) // the agent's ID is not known yet: B takes no REGISTER here
		return dialer.New(db, nil, dialer.NewAgents(), dialer.Config{Registrar: regB}, log)
	})
	regA := clusterRegistrar(t, n.a.db, "node-a", n.agent)
	phone := phonetest.Start(t, regA, "agent1", n.agent)
	if _, ok := regB.Lookup(n.agent); ok {
		t.Fatal("B's registrar holds the binding A took")
	}
	n.lease(t, "node-b")
	n.waitHome(t, n.a, "node-b")
	supervisor := n.a.tokens[storage.RoleSupervisor]

	// Presence: B reads what A registered.
	wb := decode[WallboardSnapshot](t, n.b.get(t, "/api/v1/wallboard", supervisor), http.StatusOK)
	var shown *WallboardPhone
	for _, a := range wb.Agents {
		if a.ID == n.agent {
			shown = a.Phone
		}
	}
	if shown == nil || shown.Node != "node-a" || shown.Transport != "udp" || !strings.Contains(shown.UserAgent, "baresip") {
		t.Fatalf("node B's wallboard shows agent1's phone as %+v, want baresip registered to node-a over UDP", shown)
	}
	if got := scrape(t, n.b)["turbina_agent_phones_registered"]; got != 1 {
		t.Errorf("node B's turbina_agent_phones_registered = %v, want 1", got)
	}

	// The login through A is B's, and B calls the phone.
	agent := n.a.tokens[storage.RoleAgent]
	if r := n.a.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{"audio": "phone"}); r.status != http.StatusOK {
		t.Fatalf("login with the phone through node A: %v", r)
	}
	if got := n.state(n.b); !got.Audio || got.Media != dialer.MediaPhone {
		t.Fatalf("node B's engine: %+v, want the agent's phone audio up", got)
	}
	if got := n.state(n.a); got.Audio || got.State != dialer.AgentLoggedOut {
		t.Errorf("node A's engine has the agent: %+v", got)
	}
	phone.WaitUntil(t, 5*time.Second, "take B's call", func() bool { return strings.Contains(phone.Output(), "Call established") })
	bridge := n.b.server.cfg.Engine.AgentAudio().Bridge(n.agent)
	if bridge == nil {
		t.Fatal("node B has no bridge for the agent's phone")
	}
	within(t, followPatience, "the phone's audio reaches node B", func() bool { return bridge.Idle() >= 25 })

	// The agent hangs up the phone: B hears the BYE sent to its own address.
	phone.Command(t, "hangup")
	within(t, followPatience, "node B sees the phone hang up", func() bool { return !n.state(n.b).Audio })
	sent, _ := phone.RTPStats(t, 5*time.Second)
	if uint64(sent) < bridge.Idle() || sent < 25 {
		t.Errorf("baresip sent %d packets; node B's bridge received %d", sent, bridge.Idle())
	}

	// The phone quits, unregistering through A: B no longer shows it.
	phone.Command(t, "quit")
	within(t, followPatience, "node B sees the phone unregistered", func() bool {
		_, ok, err := regB.Registered(context.Background(), n.agent)
		return err == nil && !ok
	})

	// A phone over TCP to A alone: B cannot reach it, and the login says so
	// at once, naming A.
	tcp := baresiptest.Start(t, baresiptest.Options{Registrar: regA.Addr().String(), Transport: "tcp", User: "agent1", Password: "pw-agent1"})
	tcp.WaitUntil(t, 10*time.Second, "register over TCP", func() bool { b, ok := regA.Lookup(n.agent); return ok && b.Transport == "tcp" })
	start := time.Now()
	refused := wantError(t, n.a.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{"audio": "phone"}), http.StatusConflict, "phone_unavailable")
	if !strings.Contains(refused.Message, "node-a") || !strings.Contains(refused.Message, "TCP") {
		t.Errorf("login with a phone bound over TCP to node A: %q, want it to say so", refused.Message)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refused login took %s", d)
	}
}
