package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/turbina-dialer/turbina/dialer"
)

// agentEvents streams an agent's session events (state, screen-pop, call end) over
// a WebSocket, starting with the current state.
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
	defer conn.CloseNow()
	events, stop := e.Subscribe(p.ID)
	defer stop()
	// Reading is what notices the browser going away; nothing it sends is needed yet.
	ctx := conn.CloseRead(r.Context())
	first, ok := e.Agents().Get(p.ID)
	if !ok {
		first = dialer.Agent{ID: p.ID, Name: p.Username, State: dialer.AgentLoggedOut}
	}
	if err := s.writeEvent(ctx, conn, dialer.AgentEvent{Kind: dialer.EventState, Agent: &first, At: time.Now()}); err != nil {
		return nil
	}
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if err := s.writeEvent(ctx, conn, ev); err != nil {
				return nil
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return nil
			}
		}
	}
}

func (s *Server) writeEvent(ctx context.Context, conn *websocket.Conn, ev dialer.AgentEvent) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
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
