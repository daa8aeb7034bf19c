package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// TestAgentWritesToAContactOnWhatsApp: the contact's message reaches its
// conversation through the signed webhook; the agent answers with free text inside
// the 24 h window (refused before the contact wrote) and sends the campaign's
// template; all of it shows in the conversation.
func TestAgentWritesToAContactOnWhatsApp(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	emu, client := startWhatsApp(t, log, []emulator.Template{{Name: "lembrete", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Olá {{1}}, plano {{2}}"}})
	var eng *dialer.Engine
	e := newEnvOver(t, Config{Templates: noTemplates{}}, func(db *storage.DB) Engine {
		eng = dialer.New(db, nil, dialer.NewAgents(), dialer.Config{WhatsApp: client}, log)
		return eng
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: "secret", VerifyToken: "v"}, eng.WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)
	emu.SetCallbackURL(hookSrv.URL)

	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Conversa", "caller_id": "+551130000000",
		// Open all day: the template an agent sends keeps to the calling window.
		"calling_window": map[string]string{"start": "00:00", "end": "23:59"}, "schedule": map[string]string{"timezone": "UTC"},
		"holidays": map[string]any{"national": false}, // and on national holidays
		"ladder": []map[string]any{
			{"channel": "sip", "max_attempts": 1},
			{"channel": "whatsapp_template", "max_attempts": 1, "template": "lembrete", "language": "pt_BR", "params": []string{"name", "plano"}},
		}}), http.StatusCreated)
	e.importCSV(t, c.ID, "nome,telefone,plano\nAna,11987650055,Fibra\n")
	contact := e.contacts(t, c.ID, "").Contacts[0]
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)
	path := "/api/v1/contacts/" + contact.ID + "/messages"

	// Free text before the contact wrote is outside WhatsApp's 24 h service window:
	// the policy gate refuses it for good (a template is the way), before WhatsApp.
	if r := e.send(t, "POST", path, agent, map[string]any{"text": "Olá, Ana"}); r.status != http.StatusConflict ||
		!strings.Contains(string(r.body), `"code":"policy_refused"`) || !strings.Contains(string(r.body), `"reasons":["outside_service_window"]`) {
		t.Fatalf("%v: want 409 policy_refused for outside_service_window", r)
	}
	wantError(t, e.send(t, "POST", path, agent, map[string]any{}), http.StatusUnprocessableEntity, "validation_failed")

	emu.UserMessage(contact.Phone, "Oi, vi a ligação de vocês")
	type conversation struct {
		Messages []storage.WAMessage
		WhatsApp bool
	}
	var conv conversation
	for deadline := time.Now().Add(10 * time.Second); len(conv.Messages) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the contact's message never reached its conversation")
		}
		conv = decode[conversation](t, e.get(t, path, agent), http.StatusOK)
	}
	if m := conv.Messages[0]; m.Direction != "in" || m.Body != "Oi, vi a ligação de vocês" || !conv.WhatsApp {
		t.Fatalf("conversation %+v", conv)
	}
	sent := decode[storage.WAMessage](t, e.send(t, "POST", path, agent, map[string]any{"text": "Olá, Ana! Sou a Bia."}), http.StatusCreated)
	tmpl := decode[storage.WAMessage](t, e.send(t, "POST", path, agent, map[string]any{"template": true}), http.StatusCreated)
	if sent.Type != "text" || sent.WAID == "" || tmpl.Type != "template" || tmpl.Body != "lembrete" {
		t.Errorf("sent %+v and %+v", sent, tmpl)
	}
	conv = decode[conversation](t, e.get(t, path, agent), http.StatusOK)
	if len(conv.Messages) != 3 {
		t.Fatalf("conversation %+v, want 3 messages", conv.Messages)
	}
	var texts, templates int
	for _, r := range emu.Requests() {
		switch {
		case r.Type == "text" && r.Status == http.StatusOK:
			texts++
			if !strings.Contains(string(r.Body), "Sou a Bia") {
				t.Errorf("text sent: %s", r.Body)
			}
		case r.Type == "template" && r.Status == http.StatusOK:
			templates++
			var body struct {
				Template struct {
					Components []struct{ Parameters []struct{ Text string } }
				}
			}
			json.Unmarshal(r.Body, &body)
			if p := body.Template.Components[0].Parameters; len(p) != 2 || p[0].Text != "Ana" || p[1].Text != "Fibra" {
				t.Errorf("template parameters %s", r.Body)
			}
		}
	}
	if texts != 1 || templates != 1 {
		t.Errorf("%d texts and %d templates reached WhatsApp, want 1 each", texts, templates)
	}
	// An agent of another campaign cannot read or write this conversation.
	_, other := e.createUser(t, "agent-elsewhere", storage.RoleAgent)
	wantError(t, e.get(t, path, other), http.StatusForbidden, "forbidden")
	wantError(t, e.send(t, "POST", path, other, map[string]any{"text": "oi"}), http.StatusForbidden, "forbidden")
}
