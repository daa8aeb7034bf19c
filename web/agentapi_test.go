package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"log/slog"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/turbina-dialer/turbina/internal/webrtctest"
	"github.com/turbina-dialer/turbina/media"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/storage"
)

func TestAgentSession(t *testing.T) {
	e := newEnv(t, Config{})
	mine := e.createCampaign(t, "Mine")
	other := e.createCampaign(t, "Other")
	agent := e.tokens[storage.RoleAgent]
	sup := e.tokens[storage.RoleSupervisor]
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+mine.ID+"/agents", sup,
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)

	type agentView struct {
		State       string
		Reason      string
		CampaignIDs []string `json:"campaign_ids"`
	}
	state := func(r apiResponse) agentView { t.Helper(); return decode[agentView](t, r, http.StatusOK) }

	if got := state(e.get(t, "/api/v1/agent", agent)); got.State != string(dialer.AgentLoggedOut) {
		t.Errorf("before login: %+v", got)
	}
	// Each refusal has its own code, which the page translates.
	wantError(t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusConflict, "agent_logged_out")
	wantError(t, e.send(t, "POST", "/api/v1/agent/hangup", agent, map[string]any{}), http.StatusConflict, "agent_logged_out")
	wantError(t, e.send(t, "POST", "/api/v1/agent/disposition", agent, map[string]any{"code": "sale"}), http.StatusConflict, "agent_logged_out")
	wantError(t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{"campaign_ids": []string{other.ID}}),
		http.StatusForbidden, "forbidden")
	got := state(e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}))
	if got.State != string(dialer.AgentPaused) || len(got.CampaignIDs) != 1 || got.CampaignIDs[0] != mine.ID {
		t.Errorf("after login: %+v", got)
	}
	if got := state(e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{})); got.State != string(dialer.AgentReady) {
		t.Errorf("after ready: %+v", got)
	}
	wantError(t, e.send(t, "POST", "/api/v1/agent/pause", agent, map[string]any{}), http.StatusUnprocessableEntity, "validation_failed")
	if got := state(e.send(t, "POST", "/api/v1/agent/pause", agent, map[string]any{"reason": "lunch"})); got.State != string(dialer.AgentPaused) || got.Reason != "lunch" {
		t.Errorf("after pause: %+v", got)
	}
	// No call to hang up or to disposition.
	wantError(t, e.send(t, "POST", "/api/v1/agent/hangup", agent, map[string]any{}), http.StatusConflict, "agent_no_call")
	wantError(t, e.send(t, "POST", "/api/v1/agent/disposition", agent, map[string]any{"code": "sale"}), http.StatusConflict, "agent_no_call")

	list := decode[struct{ Agents []agentView }](t, e.get(t, "/api/v1/agents", sup), http.StatusOK)
	if len(list.Agents) != 1 || list.Agents[0].State != string(dialer.AgentPaused) {
		t.Errorf("supervisor's view: %+v", list)
	}
	if got := state(e.send(t, "POST", "/api/v1/agent/logout", agent, map[string]any{})); got.State != string(dialer.AgentLoggedOut) {
		t.Errorf("after logout: %+v", got)
	}
	if list := decode[struct{ Agents []agentView }](t, e.get(t, "/api/v1/agents", sup), http.StatusOK); len(list.Agents) != 0 {
		t.Errorf("logged-out agent still listed: %+v", list)
	}
}

// TestAgentErrorCodes: each refusal of the engine, however wrapped, is a 409
// with its own code, so the page says which it is.
func TestAgentErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{dialer.ErrAgentNotLoggedIn, "agent_logged_out"},
		{dialer.ErrAgentBusy, "agent_on_call"},
		{dialer.ErrNoCall, "agent_no_call"},
		{dialer.ErrDispositionPending, "disposition_pending"},
		{&dialer.PathError{Reason: dialer.ReasonNoAudio}, dialer.ReasonNoAudio},
	} {
		ae := toAPIError(agentError(fmt.Errorf("agent 7: %w", tc.err)))
		if ae.Status != http.StatusConflict || ae.Code != tc.code {
			t.Errorf("%v: %d %s, want 409 %s", tc.err, ae.Status, ae.Code, tc.code)
		}
	}
}

func TestAgentEventsWebSocket(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Events")
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)

	// The query-string token is for WebSocket upgrades only.
	wantError(t, e.get(t, "/api/v1/agent?access_token="+agent, ""), http.StatusUnauthorized, "unauthorized")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/agent/events?access_token=" + agent
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	next := func() dialer.AgentEvent {
		t.Helper()
		var ev dialer.AgentEvent
		if err := wsjson.Read(ctx, conn, &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := next(); ev.Kind != dialer.EventState || ev.Agent.State != dialer.AgentLoggedOut {
		t.Fatalf("first event %+v", ev)
	}
	e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{})
	e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{})
	for _, want := range []dialer.AgentState{dialer.AgentPaused, dialer.AgentReady} {
		if ev := next(); ev.Kind != dialer.EventState || ev.Agent.State != want {
			t.Fatalf("event %+v, want state %s", ev, want)
		}
	}
	// Another role cannot open an agent's event stream.
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/v1/agent/events?access_token="+e.tokens[storage.RoleSales], nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sales opened the agent stream: %v %v", err, resp)
	}
}

// TestAgentWebRTCSignalling: the softphone's offer over the agent WebSocket is
// answered, and the agent's audio comes up as a real pion peer connects.
func TestAgentWebRTCSignalling(t *testing.T) {
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := newEnvWithEngine(t, func(db *storage.DB) Engine {
		return dialer.New(db, nil, dialer.NewAgents(), dialer.Config{AgentPeers: peers}, log)
	})
	c := e.createCampaign(t, "Audio")
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)
	e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/v1/agent/events?access_token="+agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := wsjson.Write(ctx, conn, map[string]string{"type": "bogus"}); err != nil {
		t.Fatal(err)
	}
	if codes := offerAudio(ctx, t, conn); !slices.Contains(codes, "unknown_message") {
		t.Errorf("an unknown message got no error reply (errors: %v)", codes)
	}
}

// offerAudio sends a real pion peer's WebRTC offer on an agent's event stream,
// as the page does, and reads the stream until the agent's audio is up; it
// returns the codes of the errors the stream sent meanwhile.
func offerAudio(ctx context.Context, t *testing.T, conn *websocket.Conn) []string {
	t.Helper()
	browser := webrtctest.NewBrowser(t)
	if err := wsjson.Write(ctx, conn, map[string]string{"type": "webrtc_offer", "sdp": browser.Offer(t)}); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for {
		var m struct {
			Type  string
			SDP   string
			Code  string
			Agent *dialer.Agent
		}
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatalf("waiting for the answer and the audio: %v (errors: %v)", err, codes)
		}
		switch m.Type {
		case "error":
			codes = append(codes, m.Code)
		case "webrtc_answer":
			browser.Accept(t, m.SDP)
			go browser.Talk(ctx, nil)
		case "state":
			if m.Agent.Audio {
				return codes
			}
		}
	}
}

// TestAgentPhoneSettings: an admin gives an agent a SIP phone secret (agents only),
// the registrar's credential lookup finds it, and logging in with the phone when it
// cannot be reached says so.
func TestAgentPhoneSettings(t *testing.T) {
	e := newEnv(t, Config{})
	admin := e.tokens[storage.RoleAdmin]
	agent := e.users[storage.RoleAgent]
	path := fmt.Sprintf("/api/v1/users/%d", agent.ID)
	wantError(t, e.send(t, "PATCH", path, admin, map[string]any{"phone_password": "short"}), http.StatusUnprocessableEntity, "validation_failed")
	wantError(t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", e.users[storage.RoleSales].ID), admin,
		map[string]any{"phone_password": "0123456789ab"}), http.StatusUnprocessableEntity, "validation_failed")
	decode[any](t, e.send(t, "PATCH", path, admin, map[string]any{"phone_password": "0123456789ab"}), http.StatusOK)
	// Stored as the HA1 of the registrar's (default) realm, which is all the
	// registrar's digest check needs.
	ha1, id, ok, err := e.db.PhoneCredentials(context.Background(), agent.Username, "turbina")
	if want := storage.PhoneHA1(agent.Username, "turbina", "0123456789ab"); err != nil || !ok || id != agent.ID || ha1 != want {
		t.Fatalf("phone credentials %q %d %v %v, want HA1 %s", ha1, id, ok, err, want)
	}
	if _, _, ok, _ := e.db.PhoneCredentials(context.Background(), agent.Username, "elsewhere"); ok {
		t.Error("the phone secret answers for another realm")
	}
	if _, _, ok, _ := e.db.PhoneCredentials(context.Background(), e.users[storage.RoleSales].Username, "turbina"); ok {
		t.Error("a sales user has phone credentials")
	}
	entries, _, _ := e.db.ListAudit(context.Background(), storage.AuditFilter{ObjectType: "user", ObjectID: strconv.FormatInt(agent.ID, 10)})
	for _, en := range entries {
		if strings.Contains(string(en.After), "0123456789ab") {
			t.Errorf("the audit log holds the phone secret: %s", en.After)
		}
	}

	c := e.createCampaign(t, "Phones")
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": agent.ID}), http.StatusOK)
	// The test engine has no registrar: the login stands, the phone is refused.
	wantError(t, e.send(t, "POST", "/api/v1/agent/login", e.tokens[storage.RoleAgent], map[string]any{"phone": true}),
		http.StatusConflict, "phone_unavailable")
}

// TestDrainingNodeTellsAgentPages: an agent page open when the node starts to
// drain is told so, as is one that opens while it drains; /readyz says
// draining (a load balancer sends new work elsewhere), and the wallboard too.
func TestDrainingNodeTellsAgentPages(t *testing.T) {
	var engine *dialer.Engine
	e := newEnvWithEngine(t, func(db *storage.DB) Engine {
		engine = dialer.New(db, nil, dialer.NewAgents(), dialer.Config{}, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
		return engine
	})
	agent := e.tokens[storage.RoleAgent]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/agent/events?access_token=" + agent
	// waitDraining reads conn's events until the draining one.
	waitDraining := func(conn *websocket.Conn) {
		t.Helper()
		for {
			var ev dialer.AgentEvent
			if err := wsjson.Read(ctx, conn, &ev); err != nil {
				t.Fatalf("no draining event: %v", err)
			}
			if ev.Kind == dialer.EventDraining {
				return
			}
		}
	}
	open, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.CloseNow()
	var first dialer.AgentEvent
	if err := wsjson.Read(ctx, open, &first); err != nil || first.Kind != dialer.EventState {
		t.Fatalf("first event %+v, %v", first, err)
	}
	if r := decode[map[string]any](t, e.get(t, "/readyz", ""), http.StatusOK); r["status"] != "ready" {
		t.Fatalf("readyz before the drain: %v", r)
	}

	if err := engine.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	waitDraining(open)
	later, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer later.CloseNow()
	waitDraining(later)
	wantError(t, e.get(t, "/readyz", ""), http.StatusServiceUnavailable, "draining")
	if wb := decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", e.tokens[storage.RoleSupervisor]), http.StatusOK); !wb.Draining {
		t.Error("the wallboard does not say the node drains")
	}
}
