package web

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserOneWordForOneThing: the Portuguese pages call wrap-up "tabulação",
// the trade's word, wherever it shows (the agent's state badge says what the
// wallboard's chips say), and the do-not-call list "não ligar" as its own page
// does, not "não perturbe" in the audit log.
func TestBrowserOneWordForOneThing(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	got := eval[string](p, `(async () => {
		const base = document.querySelector('script[type=module]').src;
		const pt = (await import(new URL('i18n/pt-BR.js', base).href)).default;
		return [...Object.entries(pt).filter(([, v]) => /p[óo]s-?\s?atendimento|perturbe/i.test(v)).map(([k, v]) => k + ': ' + v),
			...(pt['agentstate.wrap_up'] === 'Em tabulação' ? [] : ['agentstate.wrap_up: ' + pt['agentstate.wrap_up']])].join(', ');
	})()`)
	if got != "" {
		t.Errorf("one thing, another word: %s", got)
	}
}

// TestBrowserAuditSystemActor: an audited change no person made (the demo's
// seeding, a WhatsApp opt-out) is the system's in the log, in the page's
// language, not the code's name for it.
func TestBrowserAuditSystemActor(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Fibra")
	id, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.UpdateCampaign(context.Background(), storage.Actor{Username: "demo"}, id, "campaign.pacing", func(c *campaigns.Campaign) error {
		c.Pacing.MaxRatio = 2
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	entry := `(document.querySelector('#audit li[data-action="campaign.pacing"]')?.textContent || '')`
	p.waitJS("the system's entry", entry+`.includes('The system changed the pacing of campaign Fibra')`, 10*time.Second)
	p.setLanguage("pt-BR")
	p.waitJS("in Portuguese", entry+`.includes('O sistema mudou o ritmo da campanha Fibra')`, 5*time.Second)
	if got := eval[string](p, entry); got == "" || strings.Contains(got, "demo") {
		t.Errorf("audit entry %q names the code's actor", got)
	}
}
