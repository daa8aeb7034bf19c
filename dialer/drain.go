package dialer

import (
	"context"
	"errors"
	"fmt"
)

// A node that leaves cleanly (SIGTERM, a rolling restart) drains: from Drain on
// the engine places no new call and sends no new message of its own (no SIP
// INVITE, WhatsApp call or template from the pacer, the ladder's fallbacks or a
// preview agent; preview offers are taken back), starts no run for a campaign
// started meanwhile, and lets what is under way end as it would have: calls
// ringing ring out (one answered still goes to a free agent, or hears the
// safe-harbour message as any other), connected calls go on until a side hangs
// up, and their agents' wrap-ups end with a disposition or the wrap-up
// timeout. A person's own WhatsApp call to the business that reaches the node
// is still answered and queued: /readyz says draining, so a load balancer sends
// such webhooks to another node; with no other node, this one is the only one
// that can answer. A call on a dropped trunk still moves to WhatsApp (the
// conversation is under way, not a new dial). Agents are told the node drains
// (EventDraining) and, once their wrap-up ends, to reconnect (EventReconnect).
// What is left when Drain's context ends is cut by Run's end, and recorded as
// it is: interrupted, hung up by us.
//
// With other nodes on the database, the draining node's row says it drains, and
// the others spread the campaigns over themselves alone: each run here ends as
// soon as its own calls and wrap-ups are over, and releases its lease, and the
// node the campaign now falls to takes it at its next sync (Config.Sync), while
// this node's other runs still drain.

// ErrDraining means the engine is draining: it places no new call.
var ErrDraining = errors.New("the server is draining before it stops: it places no new call")

// Drain stops new dials at once and waits until this node follows no call and
// no agent's wrap-up is open, or until ctx ends; it returns ctx's error in that
// case. Run keeps running: what is left is ended when Run's context ends.
// Draining is for good: an engine does not dial again after Drain.
func (e *Engine) Drain(ctx context.Context) error {
	if e.draining.CompareAndSwap(false, true) {
		e.metrics.draining.Set(1)
		// The other nodes leave this one out of the spread from now on: each
		// of its campaigns goes to one of them once its run here ends.
		if err := e.store.DrainNode(ctx, e.NodeID()); err != nil && ctx.Err() == nil {
			e.log.Warn("tell the other nodes this one drains: its campaigns go to them when it stops", "node", e.NodeID(), "err", err)
		}
		now := e.cfg.Now()
		e.events.publishAll(AgentEvent{Kind: EventDraining, At: now})
		e.mu.Lock()
		for _, r := range e.runs {
			r.poke() // offers taken back now, not at the next tick
		}
		e.mu.Unlock()
	}
	for {
		left := e.drainLeft()
		if left == 0 {
			e.log.Info("drained: no call left")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %d calls and wrap-ups left: %w", left, ctx.Err())
		case <-e.drainWake:
		}
	}
}

// Draining reports whether Drain was called: the engine places no new call.
func (e *Engine) Draining() bool { return e.draining.Load() }

// drainLeft counts what the runs still follow: calls, agents' wrap-ups, and
// outcomes the database has yet to take.
func (e *Engine) drainLeft() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, r := range e.runs {
		n += r.busy.Load()
	}
	return n
}

// drainPoke wakes Drain to count again.
func (e *Engine) drainPoke() {
	select {
	case e.drainWake <- struct{}{}:
	default:
	}
}

// wrapUpEnded tells an agent whose wrap-up just ended on a draining node to
// reconnect: it has nothing left here.
func (e *Engine) wrapUpEnded(agentID int64) {
	if e.Draining() {
		e.events.publish(agentID, AgentEvent{Kind: EventReconnect, At: e.cfg.Now()})
	}
}
