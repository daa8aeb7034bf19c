package web

import (
	"net/http"
	"slices"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
)

// policyActions are the actions GET …/policy answers for.
var policyActions = []campaigns.ContactAction{campaigns.ActionSIPCall, campaigns.ActionWhatsAppCall, campaigns.ActionTemplate, campaigns.ActionText}

// contactPolicy answers "why is this person not being called?": the decision the
// engine would take on an action at an instant (now by default).
func (s *Server) contactPolicy(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	id, err := s.contactFromPath(r, p)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	action := campaigns.ContactAction(q.Get("action"))
	if action == "" {
		action = campaigns.ActionSIPCall
	}
	if !slices.Contains(policyActions, action) {
		return badRequest("action: want sip_call, whatsapp_call, whatsapp_template or whatsapp_text")
	}
	at := time.Now()
	if v := q.Get("at"); v != "" {
		if at, err = time.Parse(time.RFC3339, v); err != nil {
			return badRequest("at: want an RFC 3339 instant such as 2026-03-01T14:00:00-03:00")
		}
	}
	d, err := e.CheckPolicy(r.Context(), id, action, at)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// refusalStatus is the status of an action the gate refused: 422 when another
// instant would be allowed (the request's time is what is wrong), else 409 (the
// contact's state forbids it).
func refusalStatus(d campaigns.Decision) int {
	if d.NextAllowedAt != nil {
		return http.StatusUnprocessableEntity
	}
	return http.StatusConflict
}
