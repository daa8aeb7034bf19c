package web

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/storage"
)

// checkAgentPage runs the accessibility and width checks on the agent page as it
// is now, in both languages and at both widths, and leaves it in Portuguese at
// 1366×768.
func checkAgentPage(p *page) {
	p.t.Helper()
	for _, lang := range []string{"en", "pt-BR"} {
		p.setLanguage(lang)
		for _, vp := range viewports {
			p.setViewport(vp.width, vp.height)
			noHorizontalScroll(p)
			axeCheck(p)
		}
	}
	p.setViewport(1366, 768)
}

// TestBrowserAgentPageIsAccessible: the agent page passes the accessibility
// check in both languages at both widths, idle, during a call and in wrap-up.
// A refusal says which one it is (no call to hang up). The notes saved with a
// disposition are shown under it in the contact's history when the contact is
// called again.
func TestBrowserAgentPageIsAccessible(t *testing.T) {
	t.Parallel()
	e, slot, c := presenceEnv(t, "answer-rtp.xml", 2)
	p := openBrowser(t, e)
	agentID := e.users[storage.RoleAgent].ID
	agentTab(t, p, slot, agentID)
	checkAgentPage(p)
	p.shot("agent-idle")

	// A Hang up pressed with no call (a button left enabled): the page says so.
	p.do("hang up without a call", chromedp.Evaluate[chromedp.Void](`(() => { const b = document.getElementById('hangup');
		b.hidden = false; b.disabled = false; b.click(); })()`))
	p.waitJS("the refusal", `document.getElementById('agent-status').dataset.code === 'agent_no_call'`, 10*time.Second)
	if got := p.text("#agent-status"); got != "Não há chamada para desligar ou tabular agora." {
		t.Errorf("refusal of a hang-up without a call %q", got)
	}

	e.importCSV(t, c.ID, "phone,name\n+5511960000083,Ana Lima\n")
	p.waitJS("the call", `document.getElementById('state').dataset.state === 'on_call' && !document.getElementById('screen-pop').hidden`, 20*time.Second)
	checkAgentPage(p)
	p.shot("agent-on-call")

	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("wrap-up", `document.getElementById('state').dataset.state === 'wrap_up' && !document.getElementById('dispo').hidden`, 10*time.Second)
	checkAgentPage(p)
	p.shot("agent-wrap-up")

	// The callback, in a few seconds, with notes; the same agent takes it.
	const notes = "Prefere falar de manhã"
	decode[any](t, e.send(t, "POST", "/api/v1/agent/disposition", e.tokens[storage.RoleAgent], map[string]any{
		"code": "callback", "callback_at": time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano), "same_agent": true, "notes": notes,
	}), http.StatusOK)
	p.waitJS("the second call with the first in the history", `document.getElementById('state').dataset.state === 'on_call' &&
		document.querySelectorAll('#history tbody tr').length === 2`, 30*time.Second)
	got := eval[[]string](p, `[...document.querySelectorAll('#history tbody tr')].map((r) => r.cells[3].textContent + '|' + (r.cells[3].querySelector('p.notes')?.textContent || ''))`)
	want := "Retornar a ligação" + notes + "|" + notes
	if !slices.Contains(got, want) {
		t.Errorf("history's dispositions %q, want a row %q (the notes under the callback)", got, want)
	}
	p.shot("agent-second-call")
}
