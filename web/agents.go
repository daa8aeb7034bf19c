package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/storage"
)

// agentRoutes are an agent's controls of its own session, and the supervisors' view.
// The agent's session is in the engine of its home node, where atHome sends the
// controls; its callbacks are in the database, read on any node.
func (s *Server) agentRoutes() []route {
	return []route{
		{"GET", "/api/v1/agents", supervisors, s.listAgents},
		{"GET", "/api/v1/agent", agentOnly, s.atHome(s.getAgent)},
		{"GET", "/api/v1/agent/events", agentOnly, s.atHome(s.agentEvents)},
		{"POST", "/api/v1/agent/login", agentOnly, s.atHome(s.agentLogin)},
		{"POST", "/api/v1/agent/ready", agentOnly, s.atHome(s.agentReady)},
		{"POST", "/api/v1/agent/pause", agentOnly, s.atHome(s.agentPause)},
		{"POST", "/api/v1/agent/logout", agentOnly, s.atHome(s.agentLogout)},
		{"POST", "/api/v1/agent/hangup", agentOnly, s.atHome(s.agentHangup)},
		{"POST", "/api/v1/agent/disposition", agentOnly, s.atHome(s.agentDisposition)},
		{"GET", "/api/v1/agent/callbacks", agentOnly, s.agentCallbacks},
	}
}

// maxNotes bounds an agent's notes on a call, in characters.
const maxNotes = 2000

// maxAgentCallbacks bounds the callbacks an agent's list shows.
const maxAgentCallbacks = 100

// agentCallbacks lists the calling agent's own callbacks still to be made, each
// number also in its national form, as the page shows it.
func (s *Server) agentCallbacks(w http.ResponseWriter, r *http.Request, p principal) error {
	cbs, err := s.store.AgentCallbacks(r.Context(), p.ID, maxAgentCallbacks)
	if err != nil {
		return err
	}
	type view struct {
		storage.AgentCallback
		PhoneDisplay string `json:"phone_display"`
	}
	out := make([]view, len(cbs))
	for i, cb := range cbs {
		out[i] = view{cb, campaigns.DisplayPhone(cb.Phone)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"callbacks": out})
	return nil
}

func (s *Server) engine() (Engine, error) {
	if s.cfg.Engine == nil {
		return nil, errorf(http.StatusServiceUnavailable, "no_engine", "the dialing engine is not running")
	}
	return s.cfg.Engine, nil
}

// agentRefusals are the engine's refusals of an agent's action, each with the
// code the page translates (all 409).
var agentRefusals = []struct {
	err  error
	code string
}{
	{dialer.ErrAgentNotLoggedIn, "agent_logged_out"},
	{dialer.ErrAgentBusy, "agent_on_call"},
	{dialer.ErrNoCall, "agent_no_call"},
	{dialer.ErrDispositionPending, "disposition_pending"},
}

// agentError maps the engine's refusals. An agent without a live audio path is
// told what is missing, with the pause reason as the code.
func agentError(err error) error {
	if pe, ok := errors.AsType[*dialer.PathError](err); ok {
		return errorf(http.StatusConflict, pe.Reason, pe.Error())
	}
	for _, r := range agentRefusals {
		if errors.Is(err, r.err) {
			return errorf(http.StatusConflict, r.code, err.Error())
		}
	}
	return err
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request, _ principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": e.Agents().List()})
	return nil
}

func (s *Server) writeAgent(w http.ResponseWriter, e Engine, p principal) error {
	a, ok := e.Agents().Get(p.ID)
	if !ok {
		a = dialer.Agent{ID: p.ID, Name: p.Username, State: dialer.AgentLoggedOut, Campaigns: []int64{}}
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	return s.writeAgent(w, e, p)
}

func (s *Server) agentLogin(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	var in struct {
		CampaignIDs []flexID `json:"campaign_ids"`
		// Phone has Turbina call the agent's registered SIP phone and keep the call
		// up as the agent's audio (instead of the browser's WebRTC leg).
		Phone bool `json:"phone"`
		// Audio is the agent's audio path: "webrtc" (the agent page's), "phone"
		// (as Phone), or "none" (an API client without audio, the default).
		Audio string `json:"audio"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	media := dialer.MediaNone
	switch in.Audio {
	case "", "none":
	case string(dialer.MediaBrowser):
		// A server that takes no browser audio has none to wait for.
		if e.AgentAudio().TakesBrowsers() {
			media = dialer.MediaBrowser
		}
	case string(dialer.MediaPhone):
		in.Phone = true
	default:
		return unprocessable(fmt.Sprintf("audio: %q is not an audio path (webrtc, phone or none)", in.Audio))
	}
	if in.Phone {
		media = dialer.MediaPhone
	}
	assigned, err := s.store.AgentCampaigns(r.Context(), p.ID)
	if err != nil {
		return err
	}
	ids := make([]int64, 0, len(in.CampaignIDs))
	for _, id := range in.CampaignIDs {
		ids = append(ids, int64(id))
	}
	if len(ids) == 0 {
		ids = assigned
	}
	if len(ids) == 0 {
		return unprocessable("campaign_ids: the agent is assigned to no campaign")
	}
	for _, id := range ids {
		if !slices.Contains(assigned, id) {
			return forbidden(fmt.Sprintf("agent %s is not assigned to campaign %d", p.Username, id))
		}
	}
	name := p.DisplayName
	if name == "" {
		name = p.Username
	}
	e.Agents().LoginWith(p.ID, name, ids, media, time.Now())
	if in.Phone {
		if err := e.AgentAudio().Phone(r.Context(), p.ID); err != nil {
			// Logged in, but kept out of the calls until the phone answers.
			if _, perr := e.Agents().Pause(p.ID, dialer.ReasonNoAudio, time.Now()); perr != nil {
				s.log.Warn("pause agent without phone", "agent", p.ID, "err", perr)
			}
			return errorf(http.StatusConflict, "phone_unavailable",
				"logged in but paused (no_audio): the phone could not be connected, so no call can be put through: "+err.Error())
		}
	}
	return s.writeAgent(w, e, p)
}

func (s *Server) agentReady(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	if _, err := e.Agents().Ready(p.ID, time.Now()); err != nil {
		return agentError(err)
	}
	return s.writeAgent(w, e, p)
}

func (s *Server) agentPause(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Reason = strings.TrimSpace(in.Reason); in.Reason == "" || len(in.Reason) > 64 {
		return unprocessable("reason: a pause reason code is required (at most 64 characters)")
	}
	if _, err := e.Agents().Pause(p.ID, in.Reason, time.Now()); err != nil {
		return agentError(err)
	}
	return s.writeAgent(w, e, p)
}

func (s *Server) agentLogout(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	if _, err := e.Agents().Logout(p.ID, time.Now()); err != nil {
		return agentError(err)
	}
	return s.writeAgent(w, e, p)
}

func (s *Server) agentHangup(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	if err := e.Hangup(r.Context(), p.ID); err != nil {
		return agentError(err)
	}
	return s.writeAgent(w, e, p)
}

func (s *Server) agentDisposition(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	var in dialer.Close
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Code = strings.TrimSpace(in.Code); in.Code == "" || len(in.Code) > 64 {
		return unprocessable("code: a disposition code is required (at most 64 characters)")
	}
	if in.Notes = strings.TrimSpace(in.Notes); utf8.RuneCountInString(in.Notes) > maxNotes {
		return errorf(http.StatusUnprocessableEntity, "notes_too_long", fmt.Sprintf("notes: at most %d characters", maxNotes))
	}
	if err := e.Disposition(r.Context(), p.ID, in); err != nil {
		if errors.Is(err, dialer.ErrCallbackTime) {
			return errorf(http.StatusUnprocessableEntity, "callback_time", err.Error())
		}
		if errors.Is(err, dialer.ErrBadDisposition) {
			return unprocessable(err.Error())
		}
		return agentError(err)
	}
	return s.writeAgent(w, e, p)
}
