package dialer

import (
	"errors"
	"fmt"
	"time"
)

// An agent takes customers only while its audio path is live: its page open
// (for an agent who works through one) and its nailed-up audio up (for an agent
// who works with audio). Losing either takes a ready agent out of the pool at
// once, paused with the reason, and Ready refuses until the path is back; a call
// in progress whose audio died is the run's to end (evAgentLost). The path back
// within ResumeGrace of its loss makes the agent ready again, as it was: a
// reloaded page resumes its session.

// AgentMedia is the audio path an agent works with.
type AgentMedia string

// Agent media.
const (
	// MediaNone: an API client that takes calls without audio; only its page,
	// once it opened one, is watched.
	MediaNone AgentMedia = ""
	// MediaBrowser: the agent page's WebRTC leg.
	MediaBrowser AgentMedia = "webrtc"
	// MediaPhone: a call to the agent's registered SIP phone.
	MediaPhone AgentMedia = "phone"
	// MediaAudio: an agent logged in without saying, whose audio came up since:
	// from then on it needs it.
	MediaAudio AgentMedia = "audio"
)

// Pause reasons the engine sets itself when an agent's path is lost.
const (
	// ReasonConnectionLost: the agent's page (its event socket) closed.
	ReasonConnectionLost = "connection_lost"
	// ReasonNoAudio: the agent's audio leg is down, silent, or never came up.
	ReasonNoAudio = "no_audio"
	// ReasonReconnected: the path came back after the grace period; the agent
	// says when it is ready.
	ReasonReconnected = "reconnected"
)

// ResumeGrace is how long after its path was lost an agent that comes back
// (a page reloaded, a phone that answers again) is made ready again by itself.
// Later, it is left paused and says when it is ready. A reload takes a few
// seconds; an agent gone for longer may not be at the desk.
const ResumeGrace = 30 * time.Second

// ErrNoPath means the agent's audio path is not live: it cannot take calls.
var ErrNoPath = errors.New("the agent's audio path is not live")

// PathError says what an agent's path lacks. It wraps ErrNoPath.
type PathError struct {
	AgentID int64
	// Reason is the pause reason code: ReasonConnectionLost or ReasonNoAudio.
	Reason string
	// Missing says what is missing, for the person.
	Missing string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("agent %d cannot take calls: %s", e.AgentID, e.Missing)
}

// Unwrap makes a PathError an ErrNoPath.
func (e *PathError) Unwrap() error { return ErrNoPath }

// missing is the reason the agent's path is not live, "" when it is.
func (a *Agent) missing() string {
	switch {
	case a.needPage && !a.Page:
		return ReasonConnectionLost
	case a.Media != MediaNone && !a.Audio:
		return ReasonNoAudio
	}
	return ""
}

// pathErr is nil when the agent's path is live, else what it lacks.
func (a *Agent) pathErr() *PathError {
	var what string
	switch a.missing() {
	case "":
		return nil
	case ReasonConnectionLost:
		what = "the agent page is not connected (its event stream /api/v1/agent/events is closed)"
	default:
		switch a.Media {
		case MediaBrowser:
			what = "the browser's audio (WebRTC) is not connected"
		case MediaPhone:
			what = "the SIP phone is not connected: it must be registered and answer Turbina's call"
		default:
			what = "the agent's audio leg is down"
		}
	}
	return &PathError{AgentID: a.ID, Reason: a.missing(), Missing: what}
}

// awayIfLost pauses a ready agent whose path is not live, with the reason, and
// notes that it may resume (from now, unless an earlier loss is being waited
// out).
func (a *Agent) awayIfLost(now time.Time) {
	r := a.missing()
	if r == "" || a.State != AgentReady {
		return
	}
	a.State, a.Reason, a.Since = AgentPaused, r, now
	if !a.resume {
		a.resume, a.resumeBy = true, now.Add(ResumeGrace)
	}
}

// pathChanged applies a change of the agent's page or audio at now: a ready
// agent that lost its path is paused; a paused one whose path is back resumes
// within the grace, else is told it may go ready; an agent on a call or in
// wrap-up keeps its state (the run ends a call whose audio died) and resumes
// once the wrap-up ends, if the path is back by then.
func (a *Agent) pathChanged(now time.Time) {
	if a.State == AgentLoggedOut {
		return
	}
	r := a.missing()
	lost := a.State == AgentPaused && (a.Reason == ReasonConnectionLost || a.Reason == ReasonNoAudio)
	switch {
	case r != "" && a.State == AgentReady:
		a.awayIfLost(now)
	case r != "" && lost:
		a.Reason = r // what is missing now
	case r != "" && !a.resume && a.State != AgentPaused:
		// On a call, reserved or in wrap-up: the grace runs from the loss.
		a.resume, a.resumeBy = true, now.Add(ResumeGrace)
	case r == "" && lost && a.resume && now.Before(a.resumeBy):
		a.State, a.Reason, a.Since, a.resume = AgentReady, "", now, false
	case r == "" && lost:
		a.Reason, a.resume = ReasonReconnected, false
	case r == "" && a.State != AgentPaused:
		a.resume = false
	}
}

// presence applies fn to the agent's page or audio, and the change to its
// state; the agent (logged out too) is told, and its campaigns' runs.
func (p *Agents) presence(id int64, now time.Time, fn func(a *Agent) bool) {
	p.mu.Lock()
	a, ok := p.byID[id]
	if !ok {
		a = &Agent{ID: id, State: AgentLoggedOut, Since: now}
		p.byID[id] = a
	}
	if !fn(a) {
		p.mu.Unlock()
		return
	}
	a.pathChanged(now)
	out := snapshotLocked(a)
	p.mu.Unlock()
	p.notify(out.Campaigns)
	p.changed(out)
}

// setAudio records whether an agent's media leg is up.
func (p *Agents) setAudio(id int64, up bool, now time.Time) {
	p.presence(id, now, func(a *Agent) bool {
		if a.Audio == up {
			return false
		}
		a.Audio = up
		if up && a.Media == MediaNone && a.State != AgentLoggedOut {
			a.Media = MediaAudio
		}
		return true
	})
}

// PageOpened records that one of the agent's pages connected its event
// stream: from then on the agent needs one open to take calls.
func (p *Agents) PageOpened(id int64, now time.Time) {
	p.presence(id, now, func(a *Agent) bool {
		a.pages++
		a.Page = true
		if a.State != AgentLoggedOut {
			a.needPage = true
		}
		return true
	})
}

// PageClosed records that one of the agent's pages closed its event stream:
// with none left, a ready agent is paused (connection_lost) at once.
func (p *Agents) PageClosed(id int64, now time.Time) {
	p.presence(id, now, func(a *Agent) bool {
		if a.pages == 0 {
			return false
		}
		a.pages--
		a.Page = a.pages > 0
		return true
	})
}
