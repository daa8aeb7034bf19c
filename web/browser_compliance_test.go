package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserSupervisorComplianceSection: on the wallboard a supervisor sees the
// campaign's abandonment over the law's periods, the 30 days marked above its cap; the
// compliance report opens on the card with the call placed outside the calling hours,
// the refusals, DNC hits and opt-outs; the CSV link downloads the export; and the
// section reads in Portuguese after the language switch.
func TestBrowserSupervisorComplianceSection(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	id, _ := complianceFixture(t, e)
	// Paused, the campaign has a card and the engine dials nothing more.
	decode[any](t, e.action(t, id, "start", storage.RoleSupervisor), http.StatusOK)
	decode[any](t, e.action(t, id, "pause", storage.RoleSupervisor), http.StatusOK)

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("abandonment by law", fmt.Sprintf(
		`(() => { const s = document.querySelector('#law-%s [data-period="days_30"]'); return s && s.dataset.over === 'true' && s.textContent === '30 days 25%%'; })()`, id), 10*time.Second)
	if got := p.text(fmt.Sprintf(`#law-%s [data-period="today"]`, id)); got != "today 0%" {
		t.Errorf("today %q, want 0%% (yesterday's calls are not today's)", got)
	}

	p.do("open the report", chromedp.Click(chromedp.CSS(fmt.Sprintf("#compliance-btn-%s", id))))
	p.waitJS("report", fmt.Sprintf(`document.getElementById('compliance-%s').dataset.outside === '1'`, id), 5*time.Second)
	p.shot("compliance-en")
	sec := fmt.Sprintf("#compliance-%s", id)
	for _, want := range []struct{ item, text string }{
		{"outside", "1 calls placed outside the calling hours (of 5 calls placed in 30 days)"},
		{"refused", "3 actions refused: on the do-not-call list 2 · opted out 1 · outside the calling window in the person's time 1"},
		{"dnc", "2 do-not-call hits"},
		{"optouts", "2 opt-outs"},
		{"ambiguous", "0 contacts with an ambiguous time zone"},
	} {
		if got := p.text(fmt.Sprintf(`%s li[data-item="%s"]`, sec, want.item)); got != want.text {
			t.Errorf("%s: %q, want %q", want.item, got, want.text)
		}
	}
	p.waitJS("a day over the cap", fmt.Sprintf(`document.querySelectorAll('%s tbody tr[data-over="true"]').length === 2`, sec), time.Second)

	// The CSV link works with the page's session, as a click would download it.
	csv := eval[string](p, fmt.Sprintf(
		`fetch(document.getElementById('compliance-csv-%s').href, {credentials: 'same-origin'}).then((r) => r.text())`, id))
	if !strings.Contains(csv, "abandonment;days_30;4;1;0,2500;0,0300") {
		t.Errorf("CSV from the page:\n%s", csv)
	}

	p.do("switch language", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang-switch').dispatchEvent(new Event('change'))`))
	p.waitJS("Portuguese", fmt.Sprintf(
		`document.querySelector('#law-%s [data-period="days_30"]')?.textContent === '30 dias 25%%'`, id), 5*time.Second)
	p.do("open the report", chromedp.Click(chromedp.CSS(fmt.Sprintf("#compliance-btn-%s", id))))
	p.waitJS("report in Portuguese", fmt.Sprintf(
		`document.querySelector('#compliance-%s li[data-item="dnc"]')?.textContent === '2 bloqueios pela lista de não ligar'`, id), 5*time.Second)
	p.shot("compliance-pt-BR")
}
