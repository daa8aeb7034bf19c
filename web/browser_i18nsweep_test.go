package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdpdom "github.com/chromedp/cdproto/dom"
	cdpruntime "github.com/chromedp/cdproto/runtime"
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

// nativeFileControls lists the file inputs of p's page that Chromium draws
// itself, each with the words of its own control ("Choose File", "No file
// chosen"): they are in the browser's language, not the page's, and no
// dictionary can change them. A file input visually hidden behind a label of
// the page's own (.file-pick) is not drawn. The words are in the control's
// user-agent shadow tree, which only the DevTools protocol reads.
func nativeFileControls(p *page) []string {
	p.t.Helper()
	n := eval[int](p, `[...document.querySelectorAll('input[type=file]')].length`)
	var out []string
	for i := range n {
		sel := fmt.Sprintf(`document.querySelectorAll('input[type=file]')[%d]`, i)
		// Drawn: a box a person sees, not clipped away as .visually-hidden does.
		if !eval[bool](p, fmt.Sprintf(`(() => { const f = %s, r = f.getBoundingClientRect(), s = getComputedStyle(f);
			return f.checkVisibility({ visibilityProperty: true, opacityProperty: true }) && r.width > 2 && r.height > 2 &&
				s.clip === 'auto' && s.clipPath === 'none'; })()`, sel)) {
			continue
		}
		var words []string
		p.do("read the file control's own words", func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
			obj, err := chromedp.Call(ctx, cdpruntime.Evaluate, cdpruntime.EvaluateParams{Expression: sel})
			if err != nil {
				return chromedp.Void{}, err
			}
			depth, pierce := int64(-1), true
			d, err := chromedp.Call(ctx, cdpdom.DescribeNode, cdpdom.DescribeNodeParams{ObjectID: obj.Result.ObjectID, Depth: &depth, Pierce: &pierce})
			if err != nil {
				return chromedp.Void{}, err
			}
			var walk func(n *cdp.Node, shadow bool)
			walk = func(n *cdp.Node, shadow bool) {
				if shadow && n.NodeType == 3 && strings.TrimSpace(n.NodeValue) != "" {
					words = append(words, strings.TrimSpace(n.NodeValue))
				}
				for i := 0; shadow && i+1 < len(n.Attributes); i += 2 {
					if n.Attributes[i] == "value" {
						words = append(words, n.Attributes[i+1])
					}
				}
				for _, s := range n.ShadowRoots {
					walk(s, true)
				}
				for _, c := range n.Children {
					walk(c, shadow)
				}
			}
			walk(d.Node, false)
			return chromedp.Void{}, nil
		})
		id := eval[string](p, sel+`.id`)
		out = append(out, fmt.Sprintf("#%s (Chromium's own file control) %q", id, strings.Join(words, " ")))
	}
	return out
}

// englishLeft fails the test on every English text englishLeftJS finds on p's
// page, and on every file control Chromium draws in its own words.
func englishLeft(p *page, where string) {
	p.t.Helper()
	if left := append(eval[[]string](p, englishLeftJS), nativeFileControls(p)...); len(left) > 0 {
		p.shot("english-" + strings.Trim(strings.ReplaceAll(where, "/", "-"), "-"))
		p.t.Errorf("English on the pt-BR %s page:\n  %s", where, strings.Join(left, "\n  "))
	}
}

// TestBrowserPortuguesePagesHaveNoEnglish: every page, in Portuguese, shows no
// text of the English dictionary that Portuguese says otherwise: sign-in, the
// campaigns with the editor open, do-not-call, users, the wallboard, and the
// agent page, the admin's and the agent's before logging in to campaigns.
func TestBrowserPortuguesePagesHaveNoEnglish(t *testing.T) {
	t.Parallel()
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

// TestBrowserLanguageSwitchRenamesGeneratedFields: what a page builds at run
// time (the agent's empty campaign list, the editor's template placeholders
// each mapped to a column, the wallboard's picker that moves an agent, the
// file pickers' "no file chosen") takes the new language when the header's
// switch changes it, without a reload: the sweep finds no English after the
// switch, and a screen reader hears the placeholders' fields in Portuguese,
// numbered as the steps are after one is removed.
func TestBrowserLanguageSwitchRenamesGeneratedFields(t *testing.T) {
	t.Parallel()
	e := newSalesEnv(t)
	p := openBrowser(t, e)

	p.signIn("agent1", "/agent")
	// Each page opens in English (a reload: a switch sent before the page's
	// module runs is lost), shows what it builds, then switches in place.
	p.setLang("en")
	p.waitJS("no campaign yet", `document.querySelector('#campaign-list p')?.textContent.startsWith('You are assigned to no campaign')`, 10*time.Second)
	p.setLanguage("pt-BR")
	englishLeft(p, "/agent, switched")

	c := e.createCampaign(t, "Troca de língua")
	e.assign(t, c.ID, e.users[storage.RoleAgent].ID)
	p.do("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.signIn("sales1", "/sales")
	p.setLang("en")
	p.do("new campaign", chromedp.Click(chromedp.CSS("#new-campaign")), chromedp.WaitVisible(chromedp.CSS("#f-name")))
	p.waitJS("three steps", `document.querySelectorAll('#rungs .rung').length === 3 && document.querySelector('.rung:nth-child(3) .r-template').options.length === 3`, 10*time.Second)
	p.choose(".rung:nth-child(3) .r-template", "renovacao\x00pt_BR")
	p.waitJS("placeholders", `document.querySelectorAll('.rung:nth-child(3) .r-param').length === 2`, 5*time.Second)
	p.choose(".rung:nth-child(3) .r-params li:nth-child(2) .r-param", "__other")
	p.setLanguage("pt-BR")
	englishLeft(p, "/sales, editor, switched")
	fields := func(step int) string {
		return eval[string](p, fmt.Sprintf(`(() => {
			const li = document.querySelector('.rung:nth-child(%d)');
			const sel = li.querySelectorAll('.r-param'), other = li.querySelectorAll('.r-param-other');
			return [sel[0].getAttribute('aria-label'), [...sel[0].options].map((o) => o.textContent).join(', '),
				other[1].getAttribute('aria-label'), li.querySelector('.r-template').options[0].textContent].join(' | ');
		})()`, step))
	}
	want := "Coluna para {{1}} no passo 3 | Escolha uma coluna…, nome (o nome do contato), telefone (o número chamado), Outra coluna… | " +
		"Nome da coluna para {{2}} no passo 3 | Escolha um modelo…"
	if got := fields(3); got != want {
		t.Errorf("the placeholders' fields after the switch:\n got %s\nwant %s", got, want)
	}
	if got := p.text("#sh-file-name"); got != "Nenhum arquivo escolhido" {
		t.Errorf("beside the safe-harbour file picker %q", got)
	}
	p.do("remove step 1", chromedp.Click(chromedp.CSS(".rung:nth-child(1) .remove-rung")))
	if got, want := fields(2), strings.ReplaceAll(want, "passo 3", "passo 2"); got != want {
		t.Errorf("the placeholders' fields once step 1 is gone:\n got %s\nwant %s", got, want)
	}

	p.do("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.signIn("supervisor1", "/supervisor")
	p.setLang("en")
	p.waitJS("the agent's row", `(() => { const tr = document.querySelector('#agents tbody tr'); return !!tr && tr.querySelector('.move').getAttribute('aria-label') === 'Move ' + tr.querySelector('th').textContent + ' to campaign'; })()`, 20*time.Second)
	p.setLanguage("pt-BR")
	englishLeft(p, "/supervisor, switched")
	name := p.text("#agents tbody tr th")
	if got := eval[string](p, `(() => { const tr = document.querySelector('#agents tbody tr'); return tr.querySelector('.move').getAttribute('aria-label') + ' | ' + tr.querySelector('.mv button').textContent; })()`); got != "Mover "+name+" para a campanha | Mover" {
		t.Errorf("the agent's move picker after the switch: %q", got)
	}
}
