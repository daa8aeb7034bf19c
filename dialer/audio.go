package dialer

import (
	"errors"
	"net"
	"time"

	"github.com/turbina-dialer/turbina/dialer/agentaudio"
	"github.com/turbina-dialer/turbina/media"
)

// MediaCarrier is an attempt whose audio the engine can bridge once it is answered.
type MediaCarrier interface {
	// MediaLeg returns the answered call's audio; the first call hands the leg
	// over to the caller, later calls return the same leg.
	MediaLeg() (media.Leg, error)
}

// AgentAudio is every agent's nailed-up audio: the web package answers browsers'
// offers and calls agents' phones through it.
func (e *Engine) AgentAudio() *agentaudio.Hub { return e.audio }

// audioAgents is the engine's side of the agent audio hub: it marks the agents
// whose audio is up, and ends the call of one whose audio went away.
type audioAgents struct{ e *Engine }

// LoggedIn is nil when agentID is logged in.
func (a audioAgents) LoggedIn(agentID int64) error {
	if _, ok := a.e.agents.Get(agentID); !ok {
		return ErrAgentNotLoggedIn
	}
	return nil
}

// AudioUp marks agentID's audio up. An agent on a call whose page came back
// (a reload) gets the customer back on the new leg.
func (a audioAgents) AudioUp(agentID int64) {
	e := a.e
	e.agents.setAudio(agentID, true, e.cfg.Now())
	if ag, ok := e.agents.Get(agentID); ok && ag.State == AgentOnCall {
		if r := e.runFor(ag.Campaigns, ag.AttemptID); r != nil {
			r.do(func() { r.agentBack(agentID, ag.AttemptID) })
		}
	}
}

// AudioDown marks agentID's audio down: a ready agent is paused (no_audio). An
// agent whose audio died mid-call (a closed browser, a lost network, a killed
// phone) leaves a customer in silence: the run plays the customer the
// safe-harbour message and counts the call abandoned. A browser agent's page
// reloaded mid-call offers its audio again within seconds, so the customer is
// given AgentReturn for it before the message.
func (a audioAgents) AudioDown(agentID int64) {
	e := a.e
	e.agents.setAudio(agentID, false, e.cfg.Now())
	ag, ok := e.agents.Get(agentID)
	if !ok || ag.State != AgentOnCall {
		return
	}
	if r := e.runFor(ag.Campaigns, ag.AttemptID); r != nil {
		r.do(func() { r.agentGone(agentID, ag.AttemptID) })
	}
}

// agentGone handles, in the run's loop, the audio of a call's agent gone: a
// browser agent's call waits AgentReturn for it to come back, the line heard
// meanwhile; after that (or for any other agent at once) the customer is
// given up. Audio back by then, the customer is put through to it, which
// agentBack did already unless the audio came back before the loop knew of
// the call's answer.
func (r *run) agentGone(agentID, attemptID int64) {
	ag, _ := r.e.agents.Get(agentID)
	if ag.Media != MediaBrowser || r.e.cfg.AgentReturn <= 0 {
		r.agentLost(attemptID)
		return
	}
	r.agentAway(agentID, attemptID)
	time.AfterFunc(r.e.cfg.AgentReturn, func() {
		r.do(func() {
			if r.e.audio.Bridge(agentID) == nil {
				r.agentLost(attemptID)
			} else {
				r.agentBack(agentID, attemptID)
			}
		})
	})
}

// keepListening reads and drops the customer's audio of leg once after is
// closed (the old bridge let go of it), until its stop func is called, which
// returns once nothing reads the leg any more. A call waiting for its agent's
// audio to come back is so still heard: a SIP trunk whose answered calls all
// fall silent is taken for dead, and its calls with it.
func keepListening(leg media.Leg, after <-chan struct{}) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if after != nil {
			select {
			case <-after:
			case <-quit:
				return
			}
		}
		buf := make([]byte, 1500)
		for {
			select {
			case <-quit:
				return
			default:
			}
			if _, err := leg.ReadRTP(buf); err != nil {
				if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
					continue // stop's deadline, or one someone else set
				}
				return
			}
		}
	}()
	return func() {
		close(quit)
		_ = leg.SetReadDeadline(time.Now())
		<-done
		_ = leg.SetReadDeadline(time.Time{})
	}
}
