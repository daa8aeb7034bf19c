package agentaudio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
)

// phoneHangupTimeout bounds the BYE sent when an agent's phone leg is replaced
// or detached.
const phoneHangupTimeout = 5 * time.Second

// ErrNoRegistrar means the hub has no registrar for agents' SIP phones.
var ErrNoRegistrar = errors.New("no SIP registrar is configured for agent phones")

// NailUpPhone calls the SIP phone agentID registered with r, waits for it to
// answer (agent phones are set to auto-answer) and nails up the answered call
// as the agent's audio: customers are then switched onto it as they are
// connected. The call lasts until the phone hangs up, the leg is replaced or
// the agent's audio is detached, which sends BYE.
//
// The phone may be registered to another node on the same database (see
// sip.Registrar.CallAgent). ctx bounds only the call setup. The error wraps
// sip.ErrNotRegistered when the phone has no live registration,
// sip.ErrPhoneElsewhere when it is reachable only from another node,
// Agents.LoggedIn's error when the agent is not logged in, and the registrar's
// other errors when the phone does not answer.
func (h *Hub) NailUpPhone(ctx context.Context, agentID int64, r *sip.Registrar) error {
	if err := h.agents.LoggedIn(agentID); err != nil {
		return fmt.Errorf("nail up phone of agent %d: %w", agentID, err)
	}
	call, err := r.CallAgent(ctx, agentID, sip.AgentCallOptions{})
	if err != nil {
		return fmt.Errorf("nail up phone of agent %d: %w", agentID, err)
	}
	end := func() error {
		hctx, cancel := context.WithTimeout(context.Background(), phoneHangupTimeout)
		defer cancel()
		return call.Hangup(hctx)
	}
	h.Attach(agentID, call.Leg(), end, call.Done())
	h.cfg.Logger.Info("agent phone nailed up", "agent", agentID, "contact", call.Binding().Contact)
	return nil
}

// Phone nails up the SIP phone of a logged-in agent through the hub's registrar
// (Config.Registrar).
func (h *Hub) Phone(ctx context.Context, agentID int64) error {
	if h.cfg.Registrar == nil {
		return ErrNoRegistrar
	}
	return h.NailUpPhone(ctx, agentID, h.cfg.Registrar)
}
