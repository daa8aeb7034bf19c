package web

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/storage"
)

// englishLeftJS lists the visible texts of the page (text nodes, and the
// placeholders and accessible names people read or hear) that are an English
// dictionary value whose Portuguese differs, as the pt-BR page would not show
// them, and any text that is a dictionary key (a string the page's own
// dictionary lacks shows as its key). A value with {placeholders} matches
// whatever fills them. Numbers, and what Portuguese itself says with the same
// words, are left alone.
const englishLeftJS = `(async () => {
  const base = document.querySelector('script[type=module]').src.replace(/[^/]*$/, '');
  const en = (await import(base + 'i18n/en.js')).default, pt = (await import(base + 'i18n/pt-BR.js')).default;
  const ptValues = new Set(Object.values(pt)), keys = new Set([...Object.keys(en), ...Object.keys(pt)]);
  const esc = (s) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  const wanted = [];
  for (const [k, v] of Object.entries(en)) {
    if (pt[k] === v || ptValues.has(v) || !/[A-Za-z]{2}/.test(v)) continue;
    // A template needs words of its own besides what fills it.
    if (v.includes('{')) {
      if (v.replace(/\{\w+\}/g, '').replace(/[^A-Za-z]/g, '').length < 4) continue;
      wanted.push({ k, re: new RegExp('^' + v.split(/\{\w+\}/).map(esc).join('.+') + '$', 's') });
    } else wanted.push({ k, text: v });
  }
  const seen = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const s = n.textContent.trim(), el = n.parentElement;
    if (s && el.checkVisibility({ visibilityProperty: true }) && !el.closest('script, style, [hidden]')) seen.push([s, el]);
  }
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    if (!el.checkVisibility({ visibilityProperty: true })) continue;
    for (const a of ['placeholder', 'aria-label', 'title']) if (el.getAttribute(a)) seen.push([el.getAttribute(a).trim(), el, a]);
  }
  const out = [];
  for (const [s, el, attr] of seen) {
    if (/^[\d\s.,:%/()+-]*$/.test(s)) continue;
    if (keys.has(s)) { out.push((el.id ? '#' + el.id : el.tagName.toLowerCase()) + (attr ? '[' + attr + ']' : '') + ' ' + JSON.stringify(s) + ' (a key, untranslated)'); continue; }
    const hit = wanted.find((w) => (w.text ? w.text === s : w.re.test(s)));
    if (hit) out.push((el.id ? '#' + el.id : el.tagName.toLowerCase()) + (attr ? '[' + attr + ']' : '') + ' ' + JSON.stringify(s) + ' (' + hit.k + ')');
  }
  return [...new Set(out)];
})()`

// englishLeft fails the test on every English text englishLeftJS finds on p's page.
func englishLeft(p *page, where string) {
	p.t.Helper()
	if left := eval[[]string](p, englishLeftJS); len(left) > 0 {
		p.shot("english-" + strings.Trim(strings.ReplaceAll(where, "/", "-"), "-"))
		p.t.Errorf("English on the pt-BR %s page:\n  %s", where, strings.Join(left, "\n  "))
	}
}

// TestBrowserPortuguesePagesHaveNoEnglish: every page, in Portuguese, shows no
// text of the English dictionary that Portuguese says otherwise: sign-in, the
// campaigns with the editor open, do-not-call, users, the wallboard, and the
// agent page, the admin's and the agent's before logging in to campaigns.
func TestBrowserPortuguesePagesHaveNoEnglish(t *testing.T) {
	e := newSalesEnv(t)
	c := e.createCampaign(t, "Varredura")
	e.assign(t, c.ID, e.users[storage.RoleAgent].ID)
	p := openBrowser(t, e)
	p.do("open sign-in", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.setLanguage("pt-BR")
	// The sweep sees English: a plain value and a template's, added for the check.
	p.do("add English", chromedp.Evaluate[chromedp.Void](`(() => { const d = document.createElement('div'); d.id = 'planted';
		d.append(Object.assign(document.createElement('p'), { textContent: 'Wrong username or password.' }),
			Object.assign(document.createElement('span'), { textContent: 'nav.dnc' }),
			Object.assign(document.createElement('input'), { placeholder: 'Search a number' }));
		d.lastChild.setAttribute('aria-label', 'Unit of the wait of step 3');
		document.body.append(d); })()`))
	got := strings.Join(eval[[]string](p, englishLeftJS), "\n")
	for _, want := range []string{`p "Wrong username or password."`, `input[placeholder] "Search a number"`, `input[aria-label] "Unit of the wait of step 3"`, `span "nav.dnc" (a key, untranslated)`} {
		if !strings.Contains(got, want) {
			t.Errorf("the sweep missed the English planted %s: %q", want, got)
		}
	}
	p.do("remove it", chromedp.Evaluate[chromedp.Void](`document.getElementById('planted').remove()`))
	englishLeft(p, "/")
	p.signIn("admin", "/supervisor")
	for _, pg := range []struct{ path, ready string }{
		{"/sales", `document.querySelectorAll('#campaigns tbody tr').length === 1`},
		{"/dnc", `document.readyState === 'complete'`},
		{"/users", `document.querySelectorAll('table tbody tr').length > 0`},
		{"/supervisor", `document.readyState === 'complete'`},
		{"/agent", `document.readyState === 'complete'`},
		{"agent1", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`},
	} {
		if pg.path == "agent1" {
			// The agent's own page, as the agent sees it before logging in to campaigns.
			p.do("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
			p.signIn("agent1", "/agent")
			pg.path = "/agent"
		}
		if eval[string](p, `location.pathname`) != pg.path {
			p.do("open "+pg.path, chromedp.Navigate(e.srv.URL+pg.path), chromedp.WaitVisible(chromedp.CSS("#sign-out")))
		}
		p.waitJS(pg.path+" in Portuguese, its data shown", `document.documentElement.lang === 'pt-BR' && `+pg.ready, 10*time.Second)
		if pg.path == "/sales" {
			p.do("open the editor", chromedp.Click(chromedp.CSS("#new-campaign")), chromedp.WaitVisible(chromedp.CSS("#f-name")))
			p.waitJS("the editor filled", `document.querySelectorAll('#rungs .rung').length > 0 && document.querySelectorAll('#dispos li').length > 0`, 10*time.Second)
		}
		// Whatever the page fetches after loading has had its chance to show.
		p.waitJS(pg.path+" settled", `new Promise((r) => setTimeout(() => r(true), 500))`, 5*time.Second)
		englishLeft(p, pg.path)
	}
}
