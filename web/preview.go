package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
)

// previewRoutes are a preview agent's controls: see the contact offered, dial it
// or skip it.
func (s *Server) previewRoutes() []route {
	return []route{
		{"GET", "/api/v1/agent/preview", agentOnly, s.atHome(s.agentPreview)},
		{"POST", "/api/v1/agent/preview/{id}/dial", agentOnly, s.atHome(s.agentPreviewDial)},
		{"POST", "/api/v1/agent/preview/{id}/skip", agentOnly, s.atHome(s.agentPreviewSkip)},
	}
}

// previewError maps the engine's preview refusals.
func previewError(err error) error {
	switch {
	case errors.Is(err, dialer.ErrNoPreviewOffer):
		return errorf(http.StatusConflict, "no_preview_offer", err.Error())
	case errors.Is(err, dialer.ErrPreviewNotPlaced):
		return errorf(http.StatusConflict, "not_placed", err.Error())
	case errors.Is(err, dialer.ErrDraining):
		return errorf(http.StatusServiceUnavailable, "draining", err.Error())
	case errors.Is(err, dialer.ErrBadSkipReason):
		return unprocessable(err.Error())
	}
	return agentError(err)
}

func (s *Server) agentPreview(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	o, ok := e.Preview(p.ID)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

func (s *Server) agentPreviewDial(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	contactID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	attemptID, err := e.PreviewDial(r.Context(), p.ID, contactID)
	if refused := new(campaigns.RefusedError); errors.As(err, &refused) {
		// The refusal reads as every refused action's (toAPIError), but a preview
		// dial's is a 409 whatever lifts it, as its contract says: the offer is
		// taken back and the agent goes on with the next contact.
		e := toAPIError(err)
		e.Status = http.StatusConflict
		writeError(w, e)
		return nil
	}
	if err != nil {
		return previewError(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"attempt_id": strconv.FormatInt(attemptID, 10)})
	return nil
}

func (s *Server) agentPreviewSkip(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	contactID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in dialer.PreviewSkip
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := e.SkipPreview(r.Context(), p.ID, contactID, in); err != nil {
		return previewError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
