package web

import (
	"net/http"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// TestTemplateColumnsCheckedAtStart: a template parameter naming a column the
// campaign's contacts do not have stops the start with 422, before any send.
func TestTemplateColumnsCheckedAtStart(t *testing.T) {
	e := newEnv(t, Config{})
	sales := e.tokens[storage.RoleSales]
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", sales, map[string]any{
		"name": "Lembrete", "caller_id": "+551130000000",
		"ladder": []map[string]any{
			{"channel": "sip", "max_attempts": 1},
			{"channel": "whatsapp_template", "max_attempts": 1, "template": "lembrete", "language": "pt_BR", "params": []string{"name", "plano"}},
		},
	}), http.StatusCreated)
	e.importCSV(t, c.ID, "nome,telefone,valor\nAna,11987654321,10\n")
	got := wantError(t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusUnprocessableEntity, "validation_failed")
	if got.Fields["ladder[1].params"] == "" {
		t.Fatalf("error fields %v, want ladder[1].params", got.Fields)
	}
	e.importCSV(t, c.ID, "nome,telefone,plano\nBia,11987654322,Fibra\n")
	decode[any](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
}
