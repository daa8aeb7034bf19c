package dialer

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

// NailUpPhone calls the SIP phone agentID registered with r, waits for it to
// answer (agent phones are set to auto-answer) and nails up the answered call
// as the agent's audio: customers are then switched onto it as they are
// connected. The call lasts until the phone hangs up, the leg is replaced or
// the agent's audio is detached, which sends BYE.
//
// ctx bounds only the call setup. The error wraps sip.ErrNotRegistered when the
// phone has no live registration, ErrAgentNotLoggedIn when the agent is not
// logged in, and the registrar's other errors when the phone does not answer.
func (e *Engine) NailUpPhone(ctx context.Context, agentID int64, r *sip.Registrar) error {
	if _, ok := e.agents.Get(agentID); !ok {
		return fmt.Errorf("nail up phone of agent %d: %w", agentID, ErrAgentNotLoggedIn)
	}
	if _, ok := r.Lookup(agentID); !ok {
		return fmt.Errorf("nail up phone of agent %d: %w", agentID, sip.ErrNotRegistered)
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
	e.AttachAgentLeg(agentID, call.Leg(), end, call.Done())
	e.log.Info("agent phone nailed up", "agent", agentID, "contact", call.Binding().Contact)
	return nil
}

// ErrNoRegistrar means the engine has no registrar for agents' SIP phones.
var ErrNoRegistrar = errors.New("no SIP registrar is configured for agent phones")

// AgentPhone nails up the SIP phone of a logged-in agent through the engine's
// registrar (Config.Registrar).
func (e *Engine) AgentPhone(ctx context.Context, agentID int64) error {
	if e.cfg.Registrar == nil {
		return ErrNoRegistrar
	}
	return e.NailUpPhone(ctx, agentID, e.cfg.Registrar)
}
