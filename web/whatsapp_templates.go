package web

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

// TemplateInfo is an approved WhatsApp message template as the sales UI offers it
// for a campaign's whatsapp_template rung.
type TemplateInfo struct {
	Name     string `json:"name"`
	Language string `json:"language"`
	// Category is MARKETING, UTILITY or AUTHENTICATION.
	Category string `json:"category"`
	// Body is the body text with its {{1}} or {{name}} placeholders.
	Body string `json:"body"`
	// BodyParams is how many body parameters the rung's params must fill.
	BodyParams int `json:"body_params"`
	// ParameterFormat is "positional" or "named"; BodyParamNames are the
	// placeholders in order ("1", "2"… or the names a named template wants).
	ParameterFormat string   `json:"parameter_format"`
	BodyParamNames  []string `json:"body_param_names"`
}

// TemplateLister lists the WhatsApp account's approved templates.
type TemplateLister interface {
	ApprovedTemplates(ctx context.Context) ([]TemplateInfo, error)
}

// templateRefresh is how often TemplateCache asks Meta again; failureRetry is how
// soon it tries again after a failure when it has nothing to serve.
const (
	templateRefresh = time.Minute
	failureRetry    = 5 * time.Second
)

// TemplateSource is where TemplateCache gets templates: a whatsapp.Client.
type TemplateSource interface {
	ListTemplates(ctx context.Context, pageSize int) ([]whatsapp.Template, error)
}

// TemplateCache is a TemplateLister over the Cloud API that asks Meta at most once
// a minute; when Meta fails, the last list it gave is served.
type TemplateCache struct {
	src TemplateSource
	now func() time.Time

	mu      sync.Mutex // held while fetching, so concurrent requests share one fetch
	list    []TemplateInfo
	fetched time.Time // of list; zero before the first success
	tried   time.Time
	lastErr error
}

// NewTemplateCache returns a cache over src (a *whatsapp.Client).
func NewTemplateCache(src TemplateSource) *TemplateCache {
	return &TemplateCache{src: src, now: time.Now}
}

// ApprovedTemplates implements TemplateLister.
func (c *TemplateCache) ApprovedTemplates(ctx context.Context) ([]TemplateInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.fetched.IsZero() && now.Sub(c.fetched) < templateRefresh {
		return c.list, nil
	}
	if c.lastErr != nil {
		// The last try failed: the last list (if any) stands until the next try.
		wait := failureRetry
		if !c.fetched.IsZero() {
			wait = templateRefresh
		}
		if now.Sub(c.tried) < wait {
			if c.fetched.IsZero() {
				return nil, c.lastErr
			}
			return c.list, nil
		}
	}
	c.tried = now
	ts, err := c.src.ListTemplates(ctx, 0)
	if err != nil {
		c.lastErr = err
		if !c.fetched.IsZero() {
			return c.list, nil
		}
		return nil, err
	}
	list := []TemplateInfo{}
	for _, t := range whatsapp.ApprovedTemplates(ts) {
		list = append(list, TemplateInfo{Name: t.Name, Language: t.Language, Category: t.Category, Body: t.Body,
			BodyParams: t.BodyParamCount(), ParameterFormat: strings.ToLower(t.ParameterFormat), BodyParamNames: append([]string{}, t.BodyParams...)})
	}
	slices.SortFunc(list, func(a, b TemplateInfo) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Language, b.Language))
	})
	c.list, c.fetched, c.lastErr = list, now, nil
	return list, nil
}

// whatsappRoutes serve the WhatsApp account's templates to the sales UI. They also
// make starting (or resuming) a campaign check its template rungs against the
// approved templates, when a template lister is configured.
func (s *Server) whatsappRoutes() []route {
	for i, rt := range s.routes {
		if rt.method == "POST" && (rt.path == "/api/v1/campaigns/{id}/start" || rt.path == "/api/v1/campaigns/{id}/resume") {
			s.routes[i].handle = s.checkingTemplates(rt.handle)
		}
	}
	return []route{
		{"GET", "/api/v1/whatsapp/templates", staffRoles, s.listWhatsAppTemplates},
		{"GET", "/api/v1/whatsapp/quarantine", adminOnly, s.listQuarantinedWebhooks},
	}
}

func (s *Server) listWhatsAppTemplates(w http.ResponseWriter, r *http.Request, _ principal) error {
	if s.cfg.Templates == nil {
		// A 4xx: a server without a WhatsApp account is working as configured.
		return errorf(http.StatusConflict, "whatsapp_not_configured", "no WhatsApp account is configured")
	}
	list, err := s.cfg.Templates.ApprovedTemplates(r.Context())
	if err != nil {
		s.log.Warn("whatsapp templates", "err", err)
		return errorf(http.StatusBadGateway, "whatsapp_unavailable", "the WhatsApp templates could not be fetched: "+err.Error())
	}
	writeJSON(w, http.StatusOK, map[string]any{"templates": list})
	return nil
}

// checkingTemplates refuses to start a campaign whose template rung names a
// template that is not approved, or fills it with the wrong number of parameters.
// When Meta cannot be asked, the start goes ahead: the send reports the problem.
func (s *Server) checkingTemplates(next func(http.ResponseWriter, *http.Request, principal) error) func(http.ResponseWriter, *http.Request, principal) error {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		if s.cfg.Templates == nil {
			return next(w, r, p)
		}
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		c, err := s.store.GetCampaign(r.Context(), id)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(c.Ladder, func(r campaigns.Rung) bool { return r.Channel == campaigns.ChannelWhatsAppTemplate }) {
			return next(w, r, p)
		}
		list, err := s.cfg.Templates.ApprovedTemplates(r.Context())
		if err != nil {
			s.log.Warn("campaign start: whatsapp templates not checked", "campaign", id, "err", err)
			return next(w, r, p)
		}
		bad := map[string]string{}
		for i, rung := range c.Ladder {
			if rung.Channel != campaigns.ChannelWhatsAppTemplate {
				continue
			}
			j := slices.IndexFunc(list, func(t TemplateInfo) bool { return t.Name == rung.Template && t.Language == rung.Language })
			if j < 0 {
				bad[fmt.Sprintf("ladder[%d].template", i)] = fmt.Sprintf("%s/%s is not an approved template of the WhatsApp account", rung.Template, rung.Language)
				continue
			}
			t := list[j]
			err := whatsapp.ValidateTemplateParams(whatsapp.Template{Name: t.Name, Language: t.Language, Status: "APPROVED",
				ParameterFormat: t.ParameterFormat, BodyParams: t.BodyParamNames}, rung.Params)
			if err != nil {
				bad[fmt.Sprintf("ladder[%d].params", i)] = strings.TrimPrefix(err.Error(), "whatsapp: ")
			}
		}
		if len(bad) > 0 {
			return &campaigns.ValidationError{Fields: bad}
		}
		return next(w, r, p)
	}
}
