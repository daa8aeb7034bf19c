package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core as vendored from npm. The pages never load it: a test
// injects it into the tab it checks.
const axeSource = "ui/static/vendor/axe-core/axe.min.js"

// viewports are the two widths every page is checked at: a 1366×768 laptop and a
// 390×844 phone.
var viewports = []struct {
	name          string
	width, height int64
}{{"laptop", 1366, 768}, {"phone", 390, 844}}

// axeViolation is one failed axe rule, with the elements that fail it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// disabledContrast is a disabled control whose text falls short of WCAG AA's 4.5:1
// against its background: axe leaves disabled controls out, this project does not.
type disabledContrast struct {
	Element string  `json:"element"`
	Text    string  `json:"text"`
	Ratio   float64 `json:"ratio"`
}

// axeCheck runs axe-core on p's page as it is now and fails the test on any
// serious or critical violation, and on any disabled control (button, input,
// select, textarea) whose text contrast is below 4.5:1. Call it once the page
// shows what is to be checked (data loaded, the language and width chosen).
func axeCheck(p *page) {
	p.t.Helper()
	if failed := axeProblems(p); len(failed) > 0 {
		where := fmt.Sprintf("%s (%s, %dpx)", eval[string](p, `location.pathname`), eval[string](p, `document.documentElement.lang`),
			eval[int](p, `window.innerWidth`))
		p.shot("axe-" + strings.NewReplacer("/", "", " ", "-", "(", "", ")", "", ",", "").Replace(where))
		p.t.Errorf("accessibility of %s:\n%s", where, strings.Join(failed, "\n"))
	}
}

// axeProblems lists what axeCheck fails on, one entry per rule or control.
func axeProblems(p *page) []string {
	p.t.Helper()
	if !eval[bool](p, `typeof window.axe === 'object'`) {
		src, err := os.ReadFile(axeSource)
		if err != nil {
			p.t.Fatalf("read axe-core: %v", err)
		}
		eval[bool](p, string(src)+";\ntrue")
	}
	raw := eval[string](p, `axe.run(document, {resultTypes: ['violations']}).then((r) => JSON.stringify(r.violations))`)
	var violations []axeViolation
	if err := json.Unmarshal([]byte(raw), &violations); err != nil {
		p.t.Fatalf("axe result %q: %v", raw, err)
	}
	var failed []string
	for _, v := range violations {
		if v.Impact != "serious" && v.Impact != "critical" {
			continue
		}
		var nodes []string
		for _, n := range v.Nodes {
			nodes = append(nodes, fmt.Sprintf("    %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " ")))
		}
		failed = append(failed, fmt.Sprintf("  %s [%s] %s\n%s", v.ID, v.Impact, v.Help, strings.Join(nodes, "\n")))
	}
	var low []disabledContrast
	if err := json.Unmarshal([]byte(eval[string](p, disabledContrastJS)), &low); err != nil {
		p.t.Fatal(err)
	}
	for _, d := range low {
		failed = append(failed, fmt.Sprintf("  disabled control %s %q: contrast %.2f:1, want ≥ 4.5:1", d.Element, d.Text, d.Ratio))
	}
	return failed
}

// disabledContrastJS measures each visible disabled control's text against its
// background as drawn: the backgrounds behind it composed from the page down and
// the control's own opacity applied to text and background alike.
const disabledContrastJS = `(() => {
  const rgba = (s) => { const m = (s.match(/[\d.]+/g) || [0, 0, 0, 0]).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const over = (top, a, under) => under.map((u, i) => top[i] * a + u * (1 - a));
  const behind = (el) => {
    const chain = [];
    for (let e = el.parentElement; e; e = e.parentElement) chain.unshift(e);
    let c = [255, 255, 255];
    for (const e of chain) { const b = rgba(getComputedStyle(e).backgroundColor); c = over(b, b[3], c); }
    return c;
  };
  const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const out = [];
  for (const el of document.querySelectorAll('button:disabled, input:disabled, select:disabled, textarea:disabled')) {
    if (!el.getClientRects().length || ['checkbox', 'radio', 'hidden', 'range', 'color'].includes(el.type)) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden') continue;
    let op = 1;
    for (let e = el; e; e = e.parentElement) op *= Number(getComputedStyle(e).opacity);
    const parent = behind(el);
    const b = rgba(cs.backgroundColor), f = rgba(cs.color);
    const own = over(b, b[3], parent);
    const bg = over(own, op, parent), fg = over(over(f, f[3], own), op, parent);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) out.push({ element: el.id ? '#' + el.id : el.tagName.toLowerCase(), text: (el.textContent || el.value || el.placeholder || '').trim().slice(0, 40), ratio });
  }
  return JSON.stringify(out);
})()`

// setViewport makes the tab width×height, as a window that size would be.
func (p *page) setViewport(width, height int64) {
	p.t.Helper()
	p.do(fmt.Sprintf("viewport %dx%d", width, height), chromedp.EmulateViewport(width, height))
}

// setLanguage chooses lang ("en" or "pt-BR") in the header's switch.
func (p *page) setLanguage(lang string) {
	p.t.Helper()
	p.do("language "+lang, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const s = document.getElementById('lang-switch'); s.value = %q; s.dispatchEvent(new Event('change')); })()`, lang)))
	p.waitJS("page in "+lang, fmt.Sprintf(`document.documentElement.lang === %q`, lang), 5*time.Second)
}

// noHorizontalScroll fails the test when the page is wider than the viewport.
func noHorizontalScroll(p *page) {
	p.t.Helper()
	if w, vw := eval[int](p, `document.documentElement.scrollWidth`), eval[int](p, `window.innerWidth`); w > vw {
		p.shot(fmt.Sprintf("overflow-%d", vw))
		p.t.Errorf("%s is %d px wide in a %d px viewport: %s", eval[string](p, `location.pathname`), w, vw,
			eval[string](p, widestJS))
	}
}

// widestJS names the elements that stick out past the viewport's right edge, deepest first.
const widestJS = `[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
  .reverse().slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') +
  ' right=' + Math.round(e.getBoundingClientRect().right)).join(', ')`

// TestAxeCheckFindsViolations: the helper fails a page with a serious violation
// (an unlabelled input) and a disabled button drawn faint, and passes a clean one.
func TestAxeCheckFindsViolations(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.do("open login", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	axeCheck(p)
	if t.Failed() {
		t.Fatal("the login page fails the accessibility check")
	}
	p.do("break the page", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.getElementById('login-form');
		const i = document.createElement('input'); i.type = 'text'; f.append(i);
		const b = document.createElement('button'); b.textContent = 'Faint'; b.disabled = true; b.id = 'faint'; b.style.color = '#ccc'; f.append(b);
	})()`))
	got := strings.Join(axeProblems(p), "\n")
	for _, want := range []string{"label [critical]", `disabled control #faint "Faint"`} {
		if !strings.Contains(got, want) {
			t.Errorf("axe problems lack %q:\n%s", want, got)
		}
	}
}

// TestAxeCoreIsNotServed: axe-core is for the tests alone; the server does not
// serve it to the pages.
func TestAxeCoreIsNotServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	if _, err := os.Stat(axeSource); err != nil {
		t.Fatalf("axe-core is not vendored: %v", err)
	}
	for _, version := range []string{e.server.ui.pages.Version(), "any"} {
		r := e.do(t, request{method: "GET", path: "/ui/" + version + "/vendor/axe-core/axe.min.js"})
		if r.status != http.StatusNotFound {
			t.Errorf("GET axe-core under version %s: %d, want 404", version, r.status)
		}
	}
	if r := e.do(t, request{method: "GET", path: "/ui/" + e.server.ui.pages.Version() + "/vendor/uplot/uPlot.esm.js"}); r.status != http.StatusOK {
		t.Errorf("GET uPlot: %d, want 200", r.status)
	}
}

// TestBrowserSharedPagesAreAccessible: the pages no role owns, sign-in and
// forbidden, pass the accessibility check in both languages and at both widths.
func TestBrowserSharedPagesAreAccessible(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.do("open login", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.signIn("agent1", "/agent")
	for _, path := range []string{"/", "/supervisor"} {
		if path == "/" {
			p.do("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
		} else {
			p.signIn("agent1", "/agent")
			p.do("open another role's page", chromedp.Navigate(e.srv.URL+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
		}
		for _, lang := range []string{"en", "pt-BR"} {
			p.setLanguage(lang)
			for _, vp := range viewports {
				p.setViewport(vp.width, vp.height)
				noHorizontalScroll(p)
				axeCheck(p)
			}
		}
	}
}
