package web

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserSalesSetsTheSafeHarbourMessage: on the sales page a campaign's editor says
// the built-in message plays; a file that is not audio is refused with the reason, in
// Portuguese after the language switch, and nothing is stored; a 22.05 kHz stereo WAV is
// stored converted; "use the built-in message" removes it.
func TestBrowserSalesSetsTheSafeHarbourMessage(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Mensagem")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "mensagem.wav"), filepath.Join(dir, "lista.wav")
	if err := os.WriteFile(good, toneWAV(t, 22050, 2, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("phone\n+5511987650001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := mustID(t, c.ID)
	stored := func() bool {
		t.Helper()
		_, err := e.db.GetSafeHarbour(context.Background(), id)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.do("edit", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#campaigns tr[data-id="%s"] .actions button`, c.ID))))
	p.waitJS("built-in", `document.getElementById('safe-harbour').dataset.source === 'builtin'`, 5*time.Second)
	if got := p.text("#sh-status"); got != "Abandoned calls hear the built-in message (Portuguese)." {
		t.Errorf("status %q", got)
	}

	p.do("switch language", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang-switch').dispatchEvent(new Event('change'))`))
	p.do("choose a list", chromedp.SetUploadFiles(chromedp.CSS("#sh-file"), []string{bad}),
		chromedp.Click(chromedp.CSS("#sh-upload")))
	p.waitJS("refused", `document.getElementById('safe-harbour').dataset.result === 'refused'`, 5*time.Second)
	if got := p.text("#sh-status"); got != "Arquivo recusado: não é um arquivo WAV" {
		t.Errorf("refusal %q", got)
	}
	// The picker, in the page's words, names the file chosen.
	if got := p.text("#sh-file-name"); got != "lista.wav" {
		t.Errorf("beside the picker %q, want the file's name", got)
	}
	if stored() {
		t.Fatal("a refused file was stored")
	}

	p.do("choose the message", chromedp.SetUploadFiles(chromedp.CSS("#sh-file"), []string{good}),
		chromedp.Click(chromedp.CSS("#sh-upload")))
	p.waitJS("stored", `document.getElementById('safe-harbour').dataset.result === 'stored'`, 5*time.Second)
	p.shot("safe-harbour-pt-BR")
	if got := p.text("#sh-status"); got != "Mensagem guardada (2 s); as chamadas abandonadas passam a ouvi-la." {
		t.Errorf("stored status %q", got)
	}
	if got := p.text("#sh-file-name"); got != "Nenhum arquivo escolhido" {
		t.Errorf("beside the picker once the message is stored %q", got)
	}
	if !stored() {
		t.Fatal("the page said stored, the database has nothing")
	}

	p.do("back to the built-in", chromedp.Click(chromedp.CSS("#sh-default")))
	p.waitJS("built-in again", `document.getElementById('safe-harbour').dataset.source === 'builtin'`, 5*time.Second)
	if stored() {
		t.Fatal("the campaign's message is still stored")
	}
}
