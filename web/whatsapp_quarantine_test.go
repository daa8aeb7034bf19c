package web

import (
	"bytes"
	"net/http"
	"regexp"
	"testing"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/storage"
)

// TestQuarantineShownToAdmins: a signed webhook that does not parse, posted to
// the server's webhook mount, is answered 200, kept in the database whole, and
// listed to an administrator (not to a supervisor) with its reason; a batch
// with one bad change has the change kept alone; the scrape counts the rows.
func TestQuarantineShownToAdmins(t *testing.T) {
	const secret = "quarantine-secret"
	var hook http.Handler
	e := newEnv(t, Config{Webhooks: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hook.ServeHTTP(w, r) })})
	h, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: secret}, whatsapp.NewMemorySink(), nil, whatsapp.WithQuarantine(e.db))
	if err != nil {
		t.Fatal(err)
	}
	hook = h
	post := func(body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/webhooks/whatsapp", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(whatsapp.SignatureHeader, whatsapp.Sign(secret, []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook answered %d, want 200", resp.StatusCode)
		}
	}
	poison := `{"object":"page","entry":[]}`
	post(poison)
	post(poison) // Meta's resend is kept once
	badChange := `{"field":"messages","value":{"statuses":[{"id":"wamid.X","status":"sent","timestamp":[1]}]}}`
	post(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[` + badChange + `]}]}`)

	type list struct {
		Webhooks []struct {
			ID, Part, Reason, Body string
			Bytes                  int
		}
		Total int
	}
	got := decode[list](t, e.get(t, "/api/v1/whatsapp/quarantine", e.tokens[storage.RoleAdmin]), http.StatusOK)
	if got.Total != 2 || len(got.Webhooks) != 2 {
		t.Fatalf("listed %+v, want 2", got)
	}
	change, batch := got.Webhooks[0], got.Webhooks[1] // newest first
	if batch.Part != "batch" || batch.Body != poison || batch.Bytes != len(poison) || !regexp.MustCompile(`"page"`).MatchString(batch.Reason) {
		t.Errorf("batch row %+v", batch)
	}
	if change.Part != "change" || change.Body != badChange {
		t.Errorf("change row %+v, want the bad change alone", change)
	}
	page := decode[list](t, e.get(t, "/api/v1/whatsapp/quarantine?limit=1&before="+change.ID, e.tokens[storage.RoleAdmin]), http.StatusOK)
	if len(page.Webhooks) != 1 || page.Webhooks[0].ID != batch.ID {
		t.Errorf("page before %s: %+v, want the batch", change.ID, page.Webhooks)
	}
	wantError(t, e.get(t, "/api/v1/whatsapp/quarantine", e.tokens[storage.RoleSupervisor]), http.StatusForbidden, "forbidden")
	wantError(t, e.get(t, "/api/v1/whatsapp/quarantine?limit=x", e.tokens[storage.RoleAdmin]), http.StatusBadRequest, "bad_request")
	scrape := e.get(t, "/metrics", "").body
	if !regexp.MustCompile(`(?m)^turbina_whatsapp_webhook_quarantine 2$`).Match(scrape) {
		t.Errorf("scrape lacks turbina_whatsapp_webhook_quarantine 2")
	}
}
