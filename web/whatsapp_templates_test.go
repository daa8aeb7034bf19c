package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// fakeClock is a settable clock for the template cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// templateEnv is an API over a template cache whose client talks to the Cloud API
// emulator, holding more templates than one page of Graph's list.
func templateEnv(t *testing.T) (*apiEnv, *emulator.Emulator, *fakeClock) {
	t.Helper()
	templates := []emulator.Template{
		{Name: "lembrete", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Olá {{1}}, seu plano {{2}} vence em breve."},
		{Name: "boas_vindas", Language: "pt_BR", Status: "APPROVED", Category: "MARKETING", Body: "Seu plano {{plano}} está ativo.", ParameterFormat: "named"},
		{Name: "rascunho", Language: "pt_BR", Status: "PENDING", Category: "MARKETING", Body: "Oferta {{1}}"},
		{Name: "recusado", Language: "pt_BR", Status: "REJECTED", Category: "MARKETING", Body: "Promo"},
	}
	for i := range 120 {
		templates = append(templates, emulator.Template{Name: fmt.Sprintf("aviso_%03d", i), Language: "es", Status: "APPROVED", Category: "UTILITY", Body: "Aviso"})
	}
	emu, err := emulator.Start(context.Background(), emulator.Config{AccessToken: "tok", AppSecret: "secret", PhoneNumberID: "1000", WABAID: "2000", Templates: templates})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	client, err := whatsapp.NewClient(whatsapp.Config{BaseURL: emu.URL(), AccessToken: "tok", PhoneNumberID: "1000", WABAID: "2000",
		MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	cache := NewTemplateCache(client)
	cache.now = clock.now
	return newEnv(t, Config{Templates: cache}), emu, clock
}

func templateFetches(emu *emulator.Emulator) int {
	n := 0
	for _, r := range emu.Requests() {
		if strings.HasSuffix(r.Path, "/message_templates") {
			n++
		}
	}
	return n
}

type templateList struct {
	Templates []TemplateInfo `json:"templates"`
}

func TestWhatsAppTemplatesListsApprovedOnesCached(t *testing.T) {
	e, emu, clock := templateEnv(t)
	for _, role := range []storage.Role{storage.RoleAdmin, storage.RoleSales, storage.RoleSupervisor} {
		got := decode[templateList](t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[role]), http.StatusOK)
		if len(got.Templates) != 122 {
			t.Fatalf("%s: %d templates, want the 122 approved", role, len(got.Templates))
		}
		// Sorted by name: aviso_000… then boas_vindas, lembrete.
		bv, l := got.Templates[120], got.Templates[121]
		if l.Name != "lembrete" || l.Language != "pt_BR" || l.Category != "UTILITY" || l.BodyParams != 2 ||
			l.Body != "Olá {{1}}, seu plano {{2}} vence em breve." || l.ParameterFormat != "positional" {
			t.Errorf("lembrete listed as %+v", l)
		}
		if bv.Name != "boas_vindas" || bv.BodyParams != 1 || bv.ParameterFormat != "named" || len(bv.BodyParamNames) != 1 || bv.BodyParamNames[0] != "plano" {
			t.Errorf("boas_vindas listed as %+v", bv)
		}
	}
	wantError(t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[storage.RoleAgent]), http.StatusForbidden, "forbidden")
	// Three lists, two pages each time Meta is asked: asked once.
	if n := templateFetches(emu); n != 2 {
		t.Errorf("%d template list requests to Meta, want 2 (one list of two pages)", n)
	}
	clock.add(59 * time.Second)
	decode[templateList](t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[storage.RoleSales]), http.StatusOK)
	if n := templateFetches(emu); n != 2 {
		t.Errorf("asked Meta again within the minute: %d requests", n)
	}
	clock.add(2 * time.Second)
	decode[templateList](t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[storage.RoleSales]), http.StatusOK)
	if n := templateFetches(emu); n != 4 {
		t.Errorf("after a minute: %d requests, want 4", n)
	}
	// Meta unreachable: the last list is served.
	emu.Close()
	clock.add(2 * time.Minute)
	if got := decode[templateList](t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[storage.RoleSales]), http.StatusOK); len(got.Templates) != 122 {
		t.Errorf("with Meta down: %d templates", len(got.Templates))
	}
}

func TestWhatsAppTemplatesWithoutAccount(t *testing.T) {
	e := newEnv(t, Config{})
	wantError(t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[storage.RoleSales]), http.StatusConflict, "whatsapp_not_configured")
}

func TestWhatsAppTemplatesMetaDownNothingCached(t *testing.T) {
	_, emu, _ := templateEnv(t)
	client, _ := whatsapp.NewClient(whatsapp.Config{BaseURL: emu.URL(), AccessToken: "wrong", PhoneNumberID: "1000", WABAID: "2000"})
	e := newEnv(t, Config{Templates: NewTemplateCache(client)})
	wantError(t, e.get(t, "/api/v1/whatsapp/templates", e.tokens[storage.RoleSales]), http.StatusBadGateway, "whatsapp_unavailable")
}

// TestCampaignStartChecksTheTemplate: with a WhatsApp account, a campaign whose
// template rung names a template that is not approved, or fills it with the wrong
// number of parameters, does not start.
func TestCampaignStartChecksTheTemplate(t *testing.T) {
	e, _, _ := templateEnv(t)
	sales := e.tokens[storage.RoleSales]
	campaign := func(template string, params ...string) string {
		c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", sales, map[string]any{
			"name": "Lembrete " + template, "caller_id": "+551130000000",
			"ladder": []map[string]any{
				{"channel": "sip", "max_attempts": 1},
				{"channel": "whatsapp_template", "max_attempts": 1, "template": template, "language": "pt_BR", "params": params},
			},
		}), http.StatusCreated)
		e.importCSV(t, c.ID, "nome,telefone,plano\nAna,11987654321,Fibra\n")
		return c.ID
	}
	for _, tc := range []struct {
		id, field, says string
	}{
		{campaign("rascunho", "plano"), "ladder[1].template", "not an approved template"},
		{campaign("inexistente", "plano"), "ladder[1].template", "not an approved template"},
		{campaign("lembrete", "name"), "ladder[1].params", "2 body parameter(s), 1 column(s)"},
		{campaign("boas_vindas", "name"), "ladder[1].params", "{{plano}}"},
	} {
		got := wantError(t, e.action(t, tc.id, "start", storage.RoleSupervisor), http.StatusUnprocessableEntity, "validation_failed")
		if !strings.Contains(got.Fields[tc.field], tc.says) {
			t.Errorf("campaign %s: error fields %v, want %s saying %q", tc.id, got.Fields, tc.field, tc.says)
		}
	}
	decode[any](t, e.action(t, campaign("lembrete", "name", "plano"), "start", storage.RoleSupervisor), http.StatusOK)
	decode[any](t, e.action(t, campaign("boas_vindas", "plano"), "start", storage.RoleSupervisor), http.StatusOK)
}
