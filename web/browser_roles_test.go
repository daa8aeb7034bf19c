package web

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserSalesPageOffersWhatTheRoleMay: on the sales page, sales see Edit
// only on drafts and no Start, Finish or Archive at all (the API refuses them),
// a supervisor runs campaigns but uploads no contacts, and an admin does both.
func TestBrowserSalesPageOffersWhatTheRoleMay(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	draft := e.createCampaign(t, "Rascunho")
	running := e.createCampaign(t, "Em curso")
	decode[campaignView](t, e.action(t, running.ID, "start", storage.RoleSupervisor), http.StatusOK)

	buttons := func(p *page, id string) []string {
		t.Helper()
		return eval[[]string](p, `[...document.querySelectorAll('#campaigns tr[data-id="`+id+`"] .actions button')].map(b => b.textContent)`)
	}
	tests := []struct {
		user, home   string
		draft, runng []string
	}{
		{"sales1", "/sales", []string{"Edit", "Upload contacts"}, []string{"Upload contacts"}},
		{"supervisor1", "/supervisor", []string{"Edit", "Start", "Archive"}, []string{"Edit", "Finish"}},
		{"admin", "/supervisor", []string{"Edit", "Upload contacts", "Start", "Archive"}, []string{"Edit", "Upload contacts", "Finish"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			t.Parallel() // each only reads, in a browser context of its own
			p := openBrowser(t, e)
			p.signIn(tt.user, tt.home)
			p.do("open the sales page", chromedp.Navigate(e.srv.URL+"/sales"))
			p.waitJS("campaigns listed", `document.querySelectorAll('#campaigns tbody tr[data-id]').length === 2`, 10*time.Second)
			if got := buttons(p, draft.ID); !slices.Equal(got, tt.draft) {
				t.Errorf("draft's buttons = %q, want %q", got, tt.draft)
			}
			if got := buttons(p, running.ID); !slices.Equal(got, tt.runng) {
				t.Errorf("running campaign's buttons = %q, want %q", got, tt.runng)
			}
		})
	}
}
