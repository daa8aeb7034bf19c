package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// conversationRoutes are a contact's WhatsApp conversation: read it, and write in it
// from the agent page.
func (s *Server) conversationRoutes() []route {
	writers := []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleAgent}
	return []route{
		{"GET", "/api/v1/contacts/{id}/messages", allRoles, s.listMessages},
		{"POST", "/api/v1/contacts/{id}/messages", writers, s.sendMessage},
	}
}

// contactFromPath loads the {id} contact if the caller may see its campaign.
func (s *Server) contactFromPath(r *http.Request, p principal) (int64, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return 0, err
	}
	ct, err := s.store.GetContact(r.Context(), id)
	if err != nil {
		return 0, err
	}
	if _, err := s.campaignFor(r.Context(), p, ct.CampaignID); err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := s.contactFromPath(r, p)
	if err != nil {
		return err
	}
	msgs, err := s.store.ListWAMessages(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "whatsapp": s.cfg.Engine != nil && s.cfg.Templates != nil})
	return nil
}

// sendMessage sends {"text":"…"} inside the 24 h window, or {"template":true} (the
// campaign's template) at any time. An Idempotency-Key header makes a retried
// request send nothing twice, across restarts: it answers the first result.
func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request, p principal) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	id, err := s.contactFromPath(r, p)
	if err != nil {
		return err
	}
	var in struct {
		Text     string `json:"text"`
		Template bool   `json:"template"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	in.Text = strings.TrimSpace(in.Text)
	if (in.Text == "") == !in.Template || len(in.Text) > 4096 {
		return unprocessable("send either text (at most 4096 characters) or template: true")
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		b := make([]byte, 12)
		rand.Read(b)
		key = hex.EncodeToString(b)
	}
	msg, err := e.SendWhatsApp(r.Context(), id, in.Text, key)
	var apiErr *whatsapp.Error
	switch {
	case errors.Is(err, dialer.ErrWhatsAppNotConfigured):
		return errorf(http.StatusConflict, "whatsapp_not_configured", err.Error())
	case errors.Is(err, dialer.ErrNoTemplateRung), errors.Is(err, campaigns.ErrMissingColumn):
		return unprocessable(err.Error())
	case whatsapp.ErrorKind(err) == whatsapp.KindOutsideWindow:
		return errorf(http.StatusUnprocessableEntity, "outside_window", "the contact has not written in the last 24 hours: only a template can be sent")
	case errors.Is(err, dialer.ErrSendInDoubt):
		return errorf(http.StatusBadGateway, "send_in_doubt", err.Error())
	case errors.As(err, &apiErr), errors.Is(err, dialer.ErrSendFailed):
		return errorf(http.StatusBadGateway, "whatsapp_error", err.Error())
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusCreated, msg)
	return nil
}
