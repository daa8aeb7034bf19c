package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
)

// agentEvents streams an agent's session events (state, audio path, screen-pop,
// call end) over a WebSocket, starting with the current state and, mid-call, the
// call's audio path.
func (s *Server) agentEvents(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		// Accept has answered the request already.
		s.log.Warn("agent websocket", "agent", p.ID, "err", err)
		return nil
	}
	s.sockets.Add(1)
	defer s.sockets.Done()
	defer conn.CloseNow()
	// The socket is the agent's presence: while none is open the agent takes no
	// call, and the browser audio offered on it ends with it (ctx). Its opening
	// is in the first state sent below.
	e.Agents().PageOpened(p.ID, time.Now())
	defer func() { e.Agents().PageClosed(p.ID, time.Now()) }()
	events, stop := e.Subscribe(p.ID)
	defer stop()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Messages from the browser (WebRTC offers) are read here and answered through
	// out, so that one goroutine writes the socket.
	out := make(chan any, 4)
	// The reader's context outlives ctx until this handler returns: a Read cut
	// by its context closes the socket at once, without the close frame that
	// tells the page why (closeStopping) when the server stops.
	readCtx, endRead := context.WithCancel(context.WithoutCancel(ctx))
	defer endRead()
	go func() {
		defer cancel()
		s.readAgentMessages(readCtx, conn, e, p, out)
	}()
	first, ok := e.Agents().Get(p.ID)
	if !ok {
		first = dialer.Agent{ID: p.ID, Name: p.Username, State: dialer.AgentLoggedOut}
	}
	if err := s.writeEvent(ctx, conn, dialer.AgentEvent{Kind: dialer.EventState, Agent: &first, At: time.Now()}); err != nil {
		return nil
	}
	// An audio_path event missed while the socket was down would leave the
	// browser's microphone on a path the call is not on.
	if path, ok := e.AgentAudio().Path(p.ID); ok {
		if err := s.writeEvent(ctx, conn, dialer.AgentEvent{Kind: dialer.EventAudioPath, AudioPath: path, At: time.Now()}); err != nil {
			return nil
		}
	}
	// A page reloaded during a call or its wrap-up shows the contact and the
	// disposition form again: the call is still to be closed.
	if pop, ok := e.Agents().ScreenPop(p.ID); ok {
		if err := s.writeEvent(ctx, conn, dialer.AgentEvent{Kind: dialer.EventScreenPop, ScreenPop: &pop, At: time.Now()}); err != nil {
			return nil
		}
	}
	// So is the contact offered to a preview agent: the page shows it again.
	if o, ok := e.Preview(p.ID); ok {
		if err := s.writeEvent(ctx, conn, dialer.AgentEvent{Kind: dialer.EventPreview, Preview: &o, At: time.Now()}); err != nil {
			return nil
		}
	}
	// A page that comes to a draining node is told so: no new call comes here.
	if e.Draining() {
		if err := s.writeEvent(ctx, conn, dialer.AgentEvent{Kind: dialer.EventDraining, At: time.Now()}); err != nil {
			return nil
		}
	}
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	// With several nodes, the stream ends when the agent's campaign moves to
	// another node, for the page to follow it (follow.go).
	var homeCheck <-chan time.Time
	if s.cfg.Cluster.Node != "" {
		t := time.NewTicker(s.cfg.Cluster.homeCheck())
		defer t.Stop()
		homeCheck = t.C
	}
	for {
		var msg any
		select {
		case <-ctx.Done():
			closeStopping(conn, e)
			return nil
		case <-homeCheck:
			if node, moved := s.movedAway(ctx, p.ID); moved {
				// The session here is over: its campaign is run elsewhere. The
				// stream ends first, so the page does not take the log-out as
				// its agent's own and logs in again where it lands. A call
				// still on ends first (Logout waits for it).
				conn.Close(websocket.StatusServiceRestart, "the agent's campaign moved to node "+node)
				if _, err := e.Agents().Logout(p.ID, time.Now()); err != nil && !errors.Is(err, dialer.ErrAgentNotLoggedIn) {
					s.log.Warn("log out an agent whose campaign moved", "agent", p.ID, "err", err)
				}
				return nil
			}
			continue
		case ev, ok := <-events:
			if !ok {
				// The engine ended (the server stops): as above.
				closeStopping(conn, e)
				return nil
			}
			if ev.Kind == dialer.EventReconnect {
				// The agent's work here is done: the page comes back by itself,
				// through the load balancer, to a node that takes calls.
				if s.writeEvent(ctx, conn, ev) == nil {
					conn.Close(websocket.StatusServiceRestart, "draining")
				}
				return nil
			}
			msg = ev
		case m := <-out:
			msg = m
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return nil
			}
			continue
		}
		if err := s.writeEvent(ctx, conn, msg); err != nil {
			return nil
		}
	}
}

// closeStopping closes an agent's socket as its server stops. A draining
// server lets the page go as when its work here is done (1012): it reconnects,
// to a node that takes calls.
func closeStopping(conn *websocket.Conn, e Engine) {
	status := websocket.StatusNormalClosure
	if e.Draining() {
		status = websocket.StatusServiceRestart
	}
	conn.Close(status, "")
}

// agentMessage is what a browser sends on its agent WebSocket.
type agentMessage struct {
	Type string `json:"type"`
	SDP  string `json:"sdp,omitempty"`
}

// readAgentMessages handles the browser's messages until the socket closes: a
// webrtc_offer (ICE gathered, not trickled) is answered with webrtc_answer, or with
// an error message the page can show.
func (s *Server) readAgentMessages(ctx context.Context, conn *websocket.Conn, e Engine, p principal, out chan<- any) {
	conn.SetReadLimit(256 << 10) // an SDP offer is a few KiB
	for {
		var m agentMessage
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			return
		}
		var reply any
		switch m.Type {
		case "webrtc_offer":
			answer, err := e.AgentAudio().OfferUntil(ctx, p.ID, m.SDP, ctx.Done())
			if err != nil {
				s.log.Warn("agent webrtc offer", "agent", p.ID, "err", err)
				reply = map[string]string{"type": "error", "code": "webrtc_failed", "message": err.Error()}
			} else {
				reply = agentMessage{Type: "webrtc_answer", SDP: answer}
			}
		default:
			reply = map[string]string{"type": "error", "code": "unknown_message", "message": "unknown message type " + strconv.Quote(m.Type)}
		}
		select {
		case out <- reply:
		case <-ctx.Done():
			return
		}
	}
}

// agentEventView is an agent event as the page reads it: a screen-pop or a
// preview carries its contact's numbers written for their country, as the
// page shows them.
type agentEventView struct {
	dialer.AgentEvent
	// Phones maps each of the contact's E.164 numbers to its national form.
	Phones map[string]string `json:"phones,omitempty"`
}

func viewEvent(ev dialer.AgentEvent) agentEventView {
	var c *campaigns.Contact
	switch {
	case ev.ScreenPop != nil:
		c = &ev.ScreenPop.Contact
	case ev.Preview != nil:
		c = &ev.Preview.Contact
	default:
		return agentEventView{AgentEvent: ev}
	}
	phones := map[string]string{}
	for _, n := range []string{c.Phone, c.WhatsApp} {
		if n != "" {
			phones[n] = campaigns.DisplayPhone(n)
		}
	}
	return agentEventView{AgentEvent: ev, Phones: phones}
}

func (s *Server) writeEvent(ctx context.Context, conn *websocket.Conn, ev any) error {
	if e, ok := ev.(dialer.AgentEvent); ok {
		ev = viewEvent(e)
	}
	// A write cut by its context closes the socket at once, without a close
	// frame: a stream ended (the server stops) lets the write in progress
	// finish, and the loop then closes the socket saying why (closeStopping).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := wsjson.Write(wctx, conn, ev)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("agent websocket write", "err", err)
	}
	return err
}

// isWebSocket reports whether r asks to upgrade to a WebSocket. Browsers cannot set
// an Authorization header on one, so only such requests may carry the token in the
// access_token query parameter.
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
