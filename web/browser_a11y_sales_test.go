package web

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSalesFacesAreAccessible: the sales page (its campaign list, the
// editor open, an import's report), the do-not-call page and the users page pass
// axe-core in both languages and at both widths, and none scrolls sideways on a
// phone.
func TestBrowserSalesFacesAreAccessible(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	// A long name, as the demo's: it widens the do-not-call page's list chooser.
	e.createCampaign(t, "Demonstração — Renovação de planos pós-pagos")
	rejects := filepath.Join(t.TempDir(), "mailing.csv")
	if err := os.WriteFile(rejects, []byte("Telefone;Nome;Plano\n(62) 9ABCD-1234;Ana;Ouro\n(62) 99999-1234;Bia;Prata\n;Caio;Bronze\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, face := range []struct {
		name, user, home, path string
		// show brings the page to what is checked, once signed in and on path.
		show func(p *page)
	}{
		{"campaign list", "sales1", "/sales", "/sales", func(p *page) {
			p.waitJS("campaign listed", `document.querySelectorAll('#campaigns tbody tr').length === 1`, 10*time.Second)
		}},
		{"editor", "sales1", "/sales", "/sales", func(p *page) {
			p.do("open the editor", chromedp.WaitVisible(chromedp.CSS("#new-campaign")), chromedp.Click(chromedp.CSS("#new-campaign")),
				chromedp.WaitVisible(chromedp.CSS("#f-name")))
			p.waitJS("ladder drawn", `document.querySelectorAll('#rungs .rung').length > 0 && document.querySelectorAll('#hours tbody tr').length === 7`, 5*time.Second)
		}},
		{"import report", "sales1", "/sales", "/sales", func(p *page) {
			p.waitJS("campaign offered", `document.getElementById('upload-campaign').value !== ''`, 10*time.Second)
			p.do("upload", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{rejects}))
			p.waitJS("report", `!document.getElementById('report').hidden && document.querySelectorAll('#rejections tbody tr').length === 2`, 10*time.Second)
		}},
		{"do not call", "supervisor1", "/supervisor", "/dnc", func(p *page) {
			p.do("add numbers", chromedp.WaitVisible(chromedp.CSS("#dnc-phones")),
				chromedp.SendKeys(chromedp.CSS("#dnc-phones"), "(11) 98765-0001\n(62) 9ABCD-1234"),
				chromedp.SendKeys(chromedp.CSS("#dnc-reason"), "pediu por telefone"),
				chromedp.Click(chromedp.CSS("#dnc-add")))
			p.waitJS("listed with a rejection", `document.querySelectorAll('#dnc-list tbody tr button').length === 1 && document.getElementById('dnc-rejected').textContent !== ''`, 10*time.Second)
		}},
		{"users", "admin", "/supervisor", "/users", func(p *page) {
			p.waitJS("users listed", `document.querySelectorAll('#users tbody tr').length === 4`, 10*time.Second)
		}},
	} {
		t.Run(strings.ReplaceAll(face.name, " ", "_"), func(t *testing.T) {
			// Each face is its own: no face's data is on another's page, nor
			// its numbers counted there (the import goes to the campaign's
			// contacts, the do-not-call numbers to their list).
			t.Parallel()
			p := openBrowser(t, e)
			p.signIn(face.user, face.home)
			p.setViewport(viewports[0].width, viewports[0].height)
			p.do("open "+face.path, chromedp.Navigate(e.srv.URL+face.path), chromedp.WaitVisible(chromedp.CSS("main h1")))
			face.show(p)
			for _, lang := range []string{"en", "pt-BR"} {
				p.setLanguage(lang)
				for _, vp := range viewports {
					p.setViewport(vp.width, vp.height)
					p.waitJS("width applied", fmt.Sprintf(`window.innerWidth === %d`, vp.width), 5*time.Second)
					noHorizontalScroll(p)
					cardsFit(p)
					axeCheck(p)
				}
			}
		})
	}
}

// TestBrowserHoursLabelsFollowTheLanguage: a language switch with the editor open
// renames each weekday's fields for a screen reader too, not only the day's name.
func TestBrowserHoursLabelsFollowTheLanguage(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.setLang("en")
	p.do("open the editor", chromedp.Click(chromedp.CSS("#new-campaign")), chromedp.WaitVisible(chromedp.CSS("#f-name")))
	labels := `[...document.querySelectorAll('#hours tr[data-day=mon] [aria-label]')].map((f) => f.getAttribute('aria-label')).join('|')`
	if got, want := eval[string](p, labels), "Calls: Monday|From: Monday|Until: Monday"; got != want {
		t.Errorf("Monday's fields in English %q, want %q", got, want)
	}
	p.setLanguage("pt-BR")
	if got, want := eval[string](p, labels), "Liga: Segunda-feira|De: Segunda-feira|Até: Segunda-feira"; got != want {
		t.Errorf("Monday's fields after switching to Portuguese %q, want %q", got, want)
	}
	if got := p.text("#hours tr[data-day=mon] th"); got != "Segunda-feira" {
		t.Errorf("Monday's row heading %q", got)
	}
}
