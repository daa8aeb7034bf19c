package dialer

import (
	"context"
	"errors"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/channel"
)

// A conversation its trunk drops is taken up on WhatsApp: the SIP attempt is
// recorded as it was (connected, hung up by the trunk; the contact moves once, as
// a connected call), the agent stays on the call with the screen-pop, and the same
// person is called on WhatsApp through the policy gate. Answered, the WhatsApp call
// is put through to that agent (outcome resumed, linked to the SIP attempt by
// resumed_from, counted nowhere a second time); otherwise the agent goes to
// wrap-up with the conversation's disposition screen. The rows are in callstep.go
// (callResuming, callResumed); this file carries out their effects.
//
// The resume needs no WhatsApp call rung on the ladder: the ladder says how to
// reach a contact not reached yet, and this person was reached and is mid-sentence.
// It needs the server's whatsapp_call channel and the gate's leave, as any call.

// The agent's notices about a conversation taken up on WhatsApp; AttemptID names
// the conversation (the SIP attempt of the screen-pop).
const (
	// EventResuming: the line dropped; the person is being called back on WhatsApp.
	EventResuming AgentEventKind = "resuming"
	// EventResumed: the person is back, on WhatsApp.
	EventResumed AgentEventKind = "resumed"
	// EventResumeFailed: the person could not be reached on WhatsApp; wrap-up follows.
	EventResumeFailed AgentEventKind = "resume_failed"
)

// endedKind is the call's event for the end of its leg: dropped by its trunk, or
// ended.
func endedKind(ev channel.AttemptEvent) callEventKind {
	if ev.HangupBy == channel.HangupByTrunk {
		return evTrunkDropped
	}
	return evAttemptEnded
}

// talkID is the attempt the agent talks on: the dropped SIP attempt once the call
// was taken up on WhatsApp (the screen-pop's, wrap-up's and disposition's), else
// the call's own.
func (c *call) talkID() int64 {
	if c.dropped != nil {
		return c.dropped.ID
	}
	return c.attempt.ID
}

// talkStart is when the agent's conversation began: at the dropped SIP call's
// connect once the call was taken up on WhatsApp.
func (c *call) talkStart() *time.Time {
	if c.dropped != nil {
		return c.dropped.ConnectAt
	}
	return c.attempt.ConnectAt
}

// callFor is the call the run follows as attemptID: its own attempt, or the SIP
// attempt a call back on WhatsApp took up (the one its agent knows).
func (r *run) callFor(attemptID int64) *call {
	if c, ok := r.calls[attemptID]; ok {
		return c
	}
	for _, c := range r.calls {
		if c.dropped != nil && c.dropped.ID == attemptID {
			return c
		}
	}
	return nil
}

// dropped records the attempt whose trunk dropped it mid-conversation: connected,
// hung up by the trunk, the contact moved as for a connected call. The dead leg's
// audio leaves the agent's bridge; the agent stays on the call.
func (r *run) dropped(ctx context.Context, c *call, at time.Time, leg channel.AttemptEvent) {
	r.unbridge(c)
	r.write(ctx, c, campaigns.OutcomeConnected, at, leg, true)
	a := c.attempt
	c.dropped = &a
	c.log.Warn("connected call dropped by its trunk: calling back on WhatsApp", "agent", c.agentID)
}

// resume calls the person of a dropped conversation back on WhatsApp for the same
// agent: a new attempt, linked to the dropped one, placed once the gate allows it.
// What keeps it from being placed ends the call (evResumeRefused).
func (r *run) resume(ctx context.Context, c *call, at time.Time) {
	refused := func(msg string, err error) {
		if errors.As(err, new(*campaigns.RefusedError)) {
			c.log.Info(msg, "err", err)
		} else {
			c.log.Error(msg, "err", err)
		}
		r.feed(ctx, c, callEvent{kind: evResumeRefused, at: at}, channel.AttemptEvent{})
	}
	ch, ok := r.e.channels[campaigns.ChannelWhatsAppCall]
	if !ok {
		refused("no call back on WhatsApp", errors.New("channel whatsapp_call is not configured"))
		return
	}
	// The agent waits for this call: no abandon can follow.
	if _, err := r.e.gate(ctx, &r.campaign, c.due.Contact, campaigns.ActionWhatsAppCall, at, true); err != nil {
		refused("no call back on WhatsApp", err)
		return
	}
	idx, rung := r.resumeRung(c)
	a, err := r.e.store.StartResumeAttempt(ctx, *c.dropped, rung.Channel, idx)
	if err != nil {
		refused("record call back on WhatsApp", err)
		return
	}
	delete(r.calls, c.dropped.ID)
	c.attempt, c.rung, c.leg, c.started, c.answered = a, rung, nil, at, time.Time{}
	c.reserved = c.agentID // the answer goes to this agent alone
	c.log = c.log.With("resume_attempt", a.ID)
	r.calls[a.ID] = c
	r.place(ctx, c, ch, at, c.agentID, false)
}

// resumeRung is the rung a call back on WhatsApp is placed as: the ladder's first
// WhatsApp call rung (its index and settings), else a bare WhatsApp call on the
// dropped call's rung.
func (r *run) resumeRung(c *call) (int, campaigns.Rung) {
	for i, rung := range r.campaign.Ladder {
		if rung.Channel == campaigns.ChannelWhatsAppCall {
			return i, rung
		}
	}
	return c.due.Rung, campaigns.Rung{Channel: campaigns.ChannelWhatsAppCall, MaxAttempts: 1}
}
