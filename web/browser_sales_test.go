package web

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// salesTemplates are the WhatsApp account's templates in the editor's tests: one
// filled by position, one by name, and one not approved (never offered).
var salesTemplates = []emulator.Template{
	{Name: "renovacao", Language: "pt_BR", Status: "APPROVED", Category: "MARKETING", Body: "Olá {{1}}, seu plano vence. Ligue {{2}}."},
	{Name: "lembrete", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY", Body: "Oi {{nome}}!", ParameterFormat: "NAMED"},
	{Name: "rascunho", Language: "pt_BR", Status: "PENDING", Category: "MARKETING", Body: "Em análise {{1}}"},
}

// newSalesEnv is a server whose WhatsApp account (the emulator) has salesTemplates.
func newSalesEnv(t *testing.T) *apiEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	_, client := startWhatsApp(t, log, salesTemplates)
	return newUIEnv(t, Config{Templates: NewTemplateCache(client)})
}

// setLang chooses the page's language as the header's switch remembers it, and
// reloads: a switch dispatched before the page's module runs would be lost.
func (p *page) setLang(lang string) {
	p.t.Helper()
	p.do("choose "+lang, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem('turbina.lang', %q)`, lang)), chromedp.Reload())
	p.waitJS("page in "+lang, fmt.Sprintf(`document.documentElement.lang === %q && document.getElementById('lang-switch').value === %q`, lang, lang), 10*time.Second)
}

// choose sets a select's value and tells the page, as a person's pick does.
func (p *page) choose(sel, value string) {
	p.t.Helper()
	p.do("choose "+value+" in "+sel, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); })()`, sel, value)))
}

// fieldError returns the error shown beside the field sel, checking that the
// field points at it (aria-describedby) and says it is invalid.
func (p *page) fieldError(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(() => {
		const f = document.querySelector(%q);
		if (!f || f.getAttribute('aria-invalid') !== 'true') return '';
		const ids = (f.getAttribute('aria-describedby') || '').split(' ');
		const e = ids.map((id) => document.getElementById(id)).find((x) => x?.classList.contains('field-error'));
		return e ? e.textContent : '';
	})()`, sel))
}

// fitsPhone checks at a 390×844 phone's width that the page needs no sideways scroll.
func (p *page) fitsPhone(what string) {
	p.t.Helper()
	p.do("phone width", chromedp.EmulateViewport(390, 844))
	p.waitJS("layout at 390 px", `window.innerWidth === 390`, 5*time.Second)
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		wide := eval[string](p, `[...document.querySelectorAll('body *')].filter((x) => x.getBoundingClientRect().right > 391)
			.slice(0, 8).map((x) => x.tagName + (x.id ? '#' + x.id : '') + '.' + x.className + ' ' + Math.round(x.getBoundingClientRect().right)).join(', ')`)
		p.t.Errorf("%s at 390 px is %d px wide: it scrolls sideways (%s)", what, w, wide)
	}
	p.shot(strings.ReplaceAll(what, " ", "-") + "-390")
	p.do("laptop width", chromedp.EmulateViewport(1366, 768))
}

// campaignJSON reads a campaign through the API as a generic object, without
// what differs between any two campaigns (id, name, times).
func campaignJSON(t *testing.T, e *apiEnv, id string) map[string]any {
	t.Helper()
	var m map[string]any
	r := e.get(t, "/api/v1/campaigns/"+id, e.tokens[storage.RoleSales])
	if r.status != http.StatusOK || json.Unmarshal(r.body, &m) != nil {
		t.Fatalf("%v", r)
	}
	for _, k := range []string{"id", "name", "created_at", "updated_at"} {
		delete(m, k)
	}
	return m
}

// TestBrowserEditorMakesTheSameCampaignAsTheAPI: a campaign made in the editor's
// business words (days and hours, waits in minutes, hours and days, an approved
// template with a column for each placeholder, one more disposition) is the same
// campaign JSON as the one a direct API create gives.
func TestBrowserEditorMakesTheSameCampaignAsTheAPI(t *testing.T) {
	t.Parallel()
	e := newSalesEnv(t)
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.do("new campaign", chromedp.Click(chromedp.CSS("#new-campaign")), chromedp.WaitVisible(chromedp.CSS("#f-name")),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Pelo editor"),
		chromedp.SendKeys(chromedp.CSS("#f-caller"), "(11) 3000-0000"))
	// With templates to choose from, the ladder has its message step.
	p.waitJS("three steps", `document.querySelectorAll('#rungs .rung').length === 3 && document.querySelector('.rung:nth-child(3) .r-template').options.length === 3`, 10*time.Second)
	p.do("runs Monday to Friday, 09:00 to 18:30", chromedp.Click(chromedp.CSS("#f-sched-on")),
		chromedp.SetValue(chromedp.CSS("#f-sched-close"), "18:30"))
	p.do("waits: 45 minutes, then 2 days",
		chromedp.SetValue(chromedp.CSS(".rung:nth-child(1) .r-delay"), "45"),
		chromedp.SetValue(chromedp.CSS(".rung:nth-child(2) .r-delay"), "2"))
	p.choose(".rung:nth-child(2) .r-unit", "days")
	p.choose(".rung:nth-child(3) .r-template", "renovacao\x00pt_BR")
	p.waitJS("placeholders", `document.querySelectorAll('.rung:nth-child(3) .r-param').length === 2`, 5*time.Second)
	p.choose(".rung:nth-child(3) .r-params li:nth-child(1) .r-param", "name")
	p.choose(".rung:nth-child(3) .r-params li:nth-child(2) .r-param", "phone")
	p.do("add a disposition", chromedp.Click(chromedp.CSS("#add-dispo")),
		chromedp.SendKeys(chromedp.CSS("#dispos li:last-child .d-label"), "Promessa de pagamento"),
		chromedp.Click(chromedp.CSS("#dispos li:last-child .d-callback")))
	// The script, with the placeholders the editor lists.
	if got := p.text("#script-cols"); got != "You may use: {{name}}, {{phone}}, {{whatsapp}}, {{campaign}}" {
		t.Errorf("script's placeholders listed %q", got)
	}
	p.do("write the script", chromedp.SendKeys(chromedp.CSS("#f-script"), editorScript))
	p.shot("editor")
	p.do("save", chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("saved", `document.getElementById('editor-status').textContent === 'Saved.'`, 10*time.Second)
	list := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", e.tokens[storage.RoleSales]), http.StatusOK)
	if len(list.Campaigns) != 1 {
		t.Fatalf("campaigns %+v", list.Campaigns)
	}

	direct := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Pela API", "caller_id": "+551130000000", "default_country": "BR",
		"schedule": map[string]string{"open": "0 9 * * 1-5", "close": "30 18 * * 1-5", "timezone": "America/Sao_Paulo"},
		"calling_hours": map[string]any{"mon": map[string]string{"start": "09:00", "end": "21:00"}, "tue": map[string]string{"start": "09:00", "end": "21:00"},
			"wed": map[string]string{"start": "09:00", "end": "21:00"}, "thu": map[string]string{"start": "09:00", "end": "21:00"}, "fri": map[string]string{"start": "09:00", "end": "21:00"}},
		"holidays": map[string]any{"national": true, "dates": []string{}},
		"ladder": []map[string]any{
			{"channel": "sip", "max_attempts": 2, "retry_delay": "45m"},
			{"channel": "whatsapp_call", "max_attempts": 1, "retry_delay": "48h"},
			{"channel": "whatsapp_template", "max_attempts": 1, "retry_delay": "0s", "template": "renovacao", "language": "pt_BR", "params": []string{"name", "phone"}},
		},
		"dispositions": []map[string]any{
			{"code": "sale", "label": "Venda"}, {"code": "callback", "label": "Retornar a ligação", "callback": true},
			{"code": "not_interested", "label": "Sem interesse"}, {"code": "wrong_person", "label": "Pessoa errada"},
			{"code": "do_not_call", "label": "Não ligar novamente"}, {"code": "other", "label": "Outro"},
			{"code": "promessa_de_pagamento", "label": "Promessa de pagamento", "callback": true},
		},
		"script": editorScript,
	}), http.StatusCreated)
	got, want := campaignJSON(t, e, list.Campaigns[0].ID), campaignJSON(t, e, direct.ID)
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("the editor made\n%s\nthe API made\n%s", g, w)
	}

	// Opened again, the editor shows the business words it saved.
	p.do("reopen", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#campaigns tr[data-id="%s"] .actions button`, list.Campaigns[0].ID))))
	p.waitJS("editor filled", `document.querySelector('.rung:nth-child(3) .r-params li:nth-child(2) .r-param')?.value === 'phone'`, 10*time.Second)
	shown := eval[string](p, `[
		[...document.querySelectorAll('.s-day')].filter((b) => b.checked).map((b) => b.dataset.day).join(','),
		document.getElementById('f-sched-open').value, document.getElementById('f-sched-close').value,
		...[...document.querySelectorAll('.rung')].map((r) => r.querySelector('.r-delay').value + ' ' + r.querySelector('.r-unit').value),
	].join('|')`)
	if want := "mon,tue,wed,thu,fri|09:00|18:30|45 minutes|2 days|0 minutes"; shown != want {
		t.Errorf("editor shows %q, want %q", shown, want)
	}
	if got := eval[string](p, `document.getElementById('f-script').value`); got != editorScript {
		t.Errorf("script in the editor %q, want %q", got, editorScript)
	}
}

// editorScript is the script TestBrowserEditorMakesTheSameCampaignAsTheAPI writes.
const editorScript = "Bom dia, {{name}}! Falo da campanha {{campaign}}."

// TestBrowserEditorChecksBeforeSaving: a template step without a template is not
// saved (it used to be, and Start then said "ladder[2].template: / is not an
// approved template"); each problem shows in red beside its field, tied to it, in
// the page's language and in the field's own unit; steps count from 1.
func TestBrowserEditorChecksBeforeSaving(t *testing.T) {
	t.Parallel()
	e := newSalesEnv(t)
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.setLang("pt-BR")
	p.do("new campaign", chromedp.Click(chromedp.CSS("#new-campaign")), chromedp.WaitVisible(chromedp.CSS("#f-name")),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Sem modelo"),
		chromedp.SendKeys(chromedp.CSS("#f-caller"), "+551130000000"))
	p.waitJS("three steps", `document.querySelectorAll('#rungs .rung').length === 3`, 10*time.Second)
	if got := eval[string](p, `[...document.querySelectorAll('#rungs .step-h')].map(h => h.textContent).join('|')`); got != "Passo 1|Passo 2|Passo 3" {
		t.Errorf("steps %q", got)
	}
	p.do("a negative wait and a zone that does not exist", chromedp.SetValue(chromedp.CSS(".rung:nth-child(2) .r-delay"), "-1"),
		chromedp.SetValue(chromedp.CSS("#f-tz"), "America/Brasilia"))
	p.choose(".rung:nth-child(2) .r-unit", "hours")
	p.do("save", chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("refused", `document.getElementById('editor-status').textContent !== ''`, 5*time.Second)
	p.shot("refused-pt-BR")
	if got := p.text("#editor-status"); got != "3 campos para corrigir, em vermelho." {
		t.Errorf("status %q", got)
	}
	if got := p.fieldError("#f-tz"); got != `"America/Brasilia" não é um fuso horário: escolha um da lista (America/Sao_Paulo…).` {
		t.Errorf("time zone error %q", got)
	}
	if got := p.fieldError(".rung:nth-child(3) .r-template"); got != "Escolha o modelo aprovado que este passo envia." {
		t.Errorf("template error %q", got)
	}
	if got := p.fieldError(".rung:nth-child(2) .r-delay"); got != "Um número de horas, 0 ou mais." {
		t.Errorf("wait error %q", got)
	}
	if got := eval[string](p, `getComputedStyle(document.querySelector('.field-error')).color`); got != "rgb(179, 38, 30)" {
		t.Errorf("error colour %s, want the alarm red", got)
	}
	if n := len(decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", e.tokens[storage.RoleSales]), http.StatusOK).Campaigns); n != 0 {
		t.Fatalf("%d campaigns saved, want none", n)
	}

	// A named template fills each placeholder from the column of its name.
	p.do("fix the wait and the zone", chromedp.SetValue(chromedp.CSS(".rung:nth-child(2) .r-delay"), "1"),
		chromedp.SetValue(chromedp.CSS("#f-tz"), "America/Recife"))
	p.choose(".rung:nth-child(3) .r-template", "lembrete\x00pt_BR")
	p.waitJS("placeholder", `document.querySelector('.rung:nth-child(3) .r-param')?.dataset.placeholder === 'nome'`, 5*time.Second)
	p.choose(".rung:nth-child(3) .r-param", "name")
	p.do("save again", chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("refused again", `document.getElementById('editor-status').textContent === '1 campo para corrigir, em vermelho.'`, 5*time.Second)
	if got := p.fieldError(".rung:nth-child(3) .r-param"); got != `Este modelo preenche {{nome}} com a coluna chamada "nome".` {
		t.Errorf("named placeholder error %q", got)
	}
	p.choose(".rung:nth-child(3) .r-param", "__other")
	p.do("type the column", chromedp.SendKeys(chromedp.CSS(".rung:nth-child(3) .r-param-other"), "nome"),
		chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("saved", `document.getElementById('editor-status').textContent === 'Salvo.'`, 10*time.Second)
	if n := eval[int](p, `document.querySelectorAll('.field-error').length`); n != 0 {
		t.Errorf("%d errors left after saving", n)
	}
	c := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", e.tokens[storage.RoleSales]), http.StatusOK).Campaigns
	if len(c) != 1 || c[0].Ladder[1].RetryDelay != "1h0m0s" || c[0].Ladder[2].Template != "lembrete" {
		t.Errorf("saved %+v", c)
	}
	p.fitsPhone("editor pt-BR")
}

// TestBrowserSalesActionsShowNoFalse: a campaign's Actions cell lists its buttons
// and nothing else; it used to read "falseUploadfalse" for sales on a running
// campaign, the `cond && el(…)` of the buttons not offered printed as text.
func TestBrowserSalesActionsShowNoFalse(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Em curso")
	decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	cell := fmt.Sprintf(`document.querySelector('#campaigns tr[data-id="%s"] .actions')`, c.ID)
	p.waitJS("campaign listed", cell+` !== null`, 10*time.Second)
	if got := eval[string](p, cell+`.textContent`); got != "Upload contacts" {
		t.Errorf("actions cell %q, want only the Upload contacts button", got)
	}
}

// TestBrowserFinishedCampaignIsNotPending: the contacts a finished campaign never
// called are shown as not called; the page used to count them as pending
// ("252 pendentes") although nothing will call them.
func TestBrowserFinishedCampaignIsNotPending(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Encerrada")
	e.importCSV(t, c.ID, "phone\n11987650001\n11987650002\n11987650003\n")
	decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	decode[campaignView](t, e.action(t, c.ID, "finish", storage.RoleSupervisor), http.StatusOK)
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.setLang("pt-BR")
	label := fmt.Sprintf(`document.querySelector('#campaigns tr[data-id="%s"] .progress-cell small')?.textContent || ''`, c.ID)
	p.waitJS("progress", label+`.startsWith('3 contatos')`, 10*time.Second)
	got := eval[string](p, label)
	if strings.Contains(got, "pendente") || !strings.Contains(got, "3 não chamados (campanha encerrada)") {
		t.Errorf("finished campaign's progress %q, want its 3 contacts not called and none pending", got)
	}
}

// TestBrowserFinishAndArchiveAskFirst: a supervisor finishes a running campaign
// and archives it from the campaigns page, each after a question that says what
// it means; saying no changes nothing.
func TestBrowserFinishAndArchiveAskFirst(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Cobrança")
	e.importCSV(t, c.ID, "phone\n11987650001\n11987650002\n")
	decode[campaignView](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.do("open the campaigns", chromedp.Navigate(e.srv.URL+"/sales"))
	row := fmt.Sprintf(`#campaigns tr[data-id="%s"]`, c.ID)
	p.waitJS("progress known", fmt.Sprintf(`document.querySelector('%s .progress-cell small')?.textContent.startsWith('2 contacts')`, row), 10*time.Second)
	if got := eval[string](p, fmt.Sprintf(`[...document.querySelectorAll('%s .actions button')].map(b => b.textContent).join('|')`, row)); got != "Edit|Finish" {
		t.Errorf("supervisor's buttons %q, want Edit|Finish", got)
	}
	if eval[bool](p, `!document.getElementById('new-campaign').hidden || !document.getElementById('upload').hidden`) {
		t.Error("a supervisor is offered to create campaigns or upload contacts, which the API refuses")
	}
	state := func() string {
		return decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSupervisor]), http.StatusOK).State
	}
	finish := row + ` .actions button:last-child`
	p.do("finish", chromedp.Click(chromedp.CSS(finish)))
	p.waitJS("question", `document.getElementById('confirm').open`, 5*time.Second)
	p.shot("finish-question")
	if got := p.text("#confirm-text"); !strings.HasPrefix(got, "2 contacts have not been reached yet and will not be called.") {
		t.Errorf("question %q", got)
	}
	p.do("say no", chromedp.Click(chromedp.CSS("#confirm-no")))
	p.waitJS("closed", `!document.getElementById('confirm').open`, 5*time.Second)
	if s := state(); s != "running" {
		t.Fatalf("after no, the campaign is %s", s)
	}
	p.do("finish again", chromedp.Click(chromedp.CSS(finish)))
	p.waitJS("question again", `document.getElementById('confirm').open`, 5*time.Second)
	p.do("confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
	p.waitJS("finished", fmt.Sprintf(`document.querySelector('%s .badge')?.dataset.state === 'finished'`, row), 10*time.Second)
	if s := state(); s != "finished" {
		t.Fatalf("the campaign is %s, want finished", s)
	}
	p.do("archive", chromedp.Click(chromedp.CSS(row+` .actions button:last-child`)))
	p.waitJS("archive question", `document.getElementById('confirm').open && document.getElementById('confirm-yes').textContent === 'Archive'`, 5*time.Second)
	p.do("confirm archive", chromedp.Click(chromedp.CSS("#confirm-yes")))
	p.waitJS("gone", fmt.Sprintf(`document.querySelector('%s') === null`, row), 10*time.Second)
	if n := len(decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", e.tokens[storage.RoleSupervisor]), http.StatusOK).Campaigns); n != 0 {
		t.Errorf("%d campaigns listed after archiving", n)
	}
}

// TestBrowserImportReportForPeople: on the Portuguese page an upload's report
// gives totals by reason and each rejected row as it was sent, in words; the CSV
// link gives the file's own columns, line and reason, for Excel in Brazil; a
// number with letters is refused; the example file imports with no rejection.
func TestBrowserImportReportForPeople(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Mailing")
	dir := t.TempDir()
	file := filepath.Join(dir, "mailing.csv")
	data := "Telefone;Nome;Plano\n(62) 9ABCD-1234;Ana;Ouro\n(62) 99999-1234;Bia;Prata\n62 99999 1234;Bia de novo;Prata\n;Caio;Bronze\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.setLang("pt-BR")
	p.waitJS("campaign offered", fmt.Sprintf(`document.getElementById('upload-campaign').value === %q`, c.ID), 10*time.Second)
	p.do("upload", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{file}))
	p.waitJS("report", `!document.getElementById('report').hidden`, 10*time.Second)
	p.shot("report-pt-BR")
	if got := p.text("#report-summary"); got != "1 contato importado, 3 linhas rejeitadas." {
		t.Errorf("summary %q", got)
	}
	totals := eval[string](p, `[...document.querySelectorAll('#report-totals tbody tr')].map(r => r.textContent).sort().join('|')`)
	if want := "sem telefone1|telefone inválido1|telefone repetido numa linha anterior do arquivo1"; totals != want {
		t.Errorf("totals %q, want %q", totals, want)
	}
	rows := eval[string](p, `[...document.querySelectorAll('#rejections tbody tr')].map(r => r.textContent).join('|')`)
	if want := "2telefone inválido: (62) 9ABCD-1234Telefone: (62) 9ABCD-1234Nome: AnaPlano: Ouro|" +
		"4telefone repetido numa linha anterior do arquivo: +5562999991234Telefone: 62 99999 1234Nome: Bia de novoPlano: Prata|" +
		"5sem telefoneTelefone: —Nome: CaioPlano: Bronze"; rows != want {
		t.Errorf("rejected rows\n%q\nwant\n%q", rows, want)
	}
	if eval[bool](p, `/[a-z]+_[a-z]+/.test(document.getElementById('report').textContent)`) {
		t.Errorf("a raw reason code is shown: %q", p.text("#report"))
	}
	csvBody := eval[string](p, `fetch(document.getElementById('rejections-csv').href).then(r => r.text())`)
	if want := "Telefone;Nome;Plano;linha;motivo;código do motivo\r\n(62) 9ABCD-1234;Ana;Ouro;2;telefone inválido: (62) 9ABCD-1234;invalid_number\r\n"; !strings.HasPrefix(csvBody, want) {
		t.Errorf("rejections CSV %q, want it to start %q", csvBody, want)
	}
	contacts := e.contacts(t, c.ID, "")
	if len(contacts.Contacts) != 1 || contacts.Contacts[0].Phone != "+5562999991234" {
		t.Errorf("imported %+v, want Bia's number alone", contacts.Contacts)
	}

	// The example file the page offers imports as it is.
	example := eval[string](p, `fetch(document.getElementById('example-csv').href).then(r => r.text())`)
	if !strings.HasPrefix(example, "telefone;nome;") {
		t.Fatalf("example file %q", example)
	}
	exFile := filepath.Join(dir, "contatos-exemplo.csv")
	if err := os.WriteFile(exFile, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("upload the example", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{exFile}))
	p.waitJS("example imported", `document.getElementById('report-summary').textContent === '3 contatos importados, nenhuma linha rejeitada.'`, 10*time.Second)

	// A file that cannot be imported at all says why, in Portuguese too.
	noPhone := filepath.Join(dir, "sem-telefone.csv")
	if err := os.WriteFile(noPhone, []byte("nome;cidade\nAna;Recife\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("upload a file without phones", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{noPhone}))
	p.waitJS("refused", `document.getElementById('upload-status').textContent.startsWith('O arquivo não foi importado')`, 10*time.Second)
	if got, want := p.text("#upload-status"), "O arquivo não foi importado: nenhuma coluna se chama telefone, celular ou phone (a primeira linha deve ter os nomes das colunas)."; got != want {
		t.Errorf("refusal %q, want %q", got, want)
	}
	p.fitsPhone("report pt-BR")
}

// TestBrowserDoNotCallPage: sales add numbers to the do-not-call list and search
// it; only a supervisor takes one off, and must say why; the audit log keeps it.
func TestBrowserDoNotCallPage(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.do("open do not call", chromedp.Navigate(e.srv.URL+"/dnc"), chromedp.WaitVisible(chromedp.CSS("#dnc-phones")))
	p.do("add three", chromedp.SendKeys(chromedp.CSS("#dnc-phones"), "(11) 98765-0001\n11987650002\n(62) 9ABCD-1234"),
		chromedp.SendKeys(chromedp.CSS("#dnc-reason"), "pediu por telefone"),
		chromedp.Click(chromedp.CSS("#dnc-add")))
	p.waitJS("added", `document.getElementById('dnc-status').textContent !== '' && document.querySelectorAll('#dnc-list tbody tr').length === 2`, 10*time.Second)
	if got := p.text("#dnc-status"); got != "2 numbers added. 1 not added:" {
		t.Errorf("status %q", got)
	}
	if got := p.text("#dnc-rejected"); got != "(62) 9ABCD-1234: not a valid phone number" {
		t.Errorf("rejected %q", got)
	}
	p.do("search", chromedp.SendKeys(chromedp.CSS("#dnc-search"), "0002"), chromedp.Click(chromedp.CSS("#dnc-search-btn")))
	p.waitJS("one found", `document.querySelectorAll('#dnc-list tbody tr').length === 1`, 5*time.Second)
	if got := p.text("#dnc-list tbody th"); got != "(11) 98765-0002" {
		t.Errorf("found %q", got)
	}
	if n := eval[int](p, `document.querySelectorAll('#dnc-list tbody button').length`); n != 0 {
		t.Errorf("sales are offered %d removals, which the API refuses them", n)
	}
	// A file of numbers goes on the list with the reason typed.
	file := filepath.Join(t.TempDir(), "nao-ligar.csv")
	if err := os.WriteFile(file, []byte("telefone;nome\n(21) 99876-0003;Caio\nsem número;Duda\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("import", chromedp.Evaluate[chromedp.Void](`document.getElementById('dnc-search').value = ''`),
		chromedp.SetUploadFiles(chromedp.CSS("#dnc-file"), []string{file}))
	p.waitJS("imported", `document.getElementById('dnc-status').textContent === '1 number added. 1 not added:'`, 10*time.Second)
	if got := p.text("#dnc-rejected"); got != "line 3: not a valid phone number" {
		t.Errorf("file's rejected %q", got)
	}
	p.waitJS("three listed", `document.querySelectorAll('#dnc-list tbody tr').length === 3`, 5*time.Second)
	if got := p.text(`#dnc-list tr[data-phone="+5521998760003"] td`); got != "pediu por telefone" {
		t.Errorf("imported number's reason %q", got)
	}
	p.fitsPhone("dnc")

	s := openBrowser(t, e)
	s.signIn("supervisor1", "/supervisor")
	s.setLang("pt-BR")
	s.do("open do not call", chromedp.Navigate(e.srv.URL+"/dnc"))
	s.waitJS("listed", `document.querySelectorAll('#dnc-list tbody tr button').length === 3`, 10*time.Second)
	s.do("take one off", chromedp.Click(chromedp.CSS(`#dnc-list tr[data-phone="+5511987650001"] button`)))
	s.waitJS("asked why", `document.getElementById('remove-dlg').open`, 5*time.Second)
	s.do("without a reason", chromedp.Click(chromedp.CSS("#remove-yes")))
	if got := s.fieldError("#remove-reason"); got != "Diga por que o número pode voltar a receber ligações." {
		t.Errorf("reason error %q", got)
	}
	s.do("with a reason", chromedp.SendKeys(chromedp.CSS("#remove-reason"), "cliente voltou a ser cliente"),
		chromedp.Click(chromedp.CSS("#remove-yes")))
	s.waitJS("removed", `document.querySelectorAll('#dnc-list tbody tr').length === 2`, 10*time.Second)
	s.shot("dnc-pt-BR")
	audit := decode[auditList](t, e.get(t, "/api/v1/audit?object_type=dnc", testAdminToken), http.StatusOK)
	if en := audit.Entries[0]; en.Action != "dnc.remove" || en.Username != "supervisor1" || field(t, en.After, "reason") != `"cliente voltou a ser cliente"` {
		t.Errorf("audit %+v", en)
	}
}

// TestBrowserUsersPage: an admin creates a user, changes its role and blocks it
// (after a question); nobody else opens the page.
func TestBrowserUsersPage(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("admin", "/supervisor")
	p.do("open users", chromedp.Navigate(e.srv.URL+"/users"), chromedp.WaitVisible(chromedp.CSS("#u-username")))
	p.waitJS("users listed", `document.querySelectorAll('#users tbody tr').length === 4`, 10*time.Second)
	// An admin cannot lock themselves out from here.
	self := fmt.Sprintf(`#users tr[data-id="%d"]`, e.users[storage.RoleAdmin].ID)
	if !eval[bool](p, fmt.Sprintf(`document.querySelector('%s .u-role').disabled && document.querySelector('%s button').disabled`, self, self)) {
		t.Error("the admin may block or demote their own account")
	}
	p.do("a short password", chromedp.SendKeys(chromedp.CSS("#u-username"), "vendas2"), chromedp.SendKeys(chromedp.CSS("#u-password"), "curta"),
		chromedp.Click(chromedp.CSS("#u-create")))
	if got := p.fieldError("#u-password"); got != "At least 10 characters." {
		t.Errorf("password error %q", got)
	}
	p.choose("#u-role", "sales")
	p.do("create", chromedp.SendKeys(chromedp.CSS("#u-password"), " bem longa"), chromedp.Click(chromedp.CSS("#u-create")))
	p.waitJS("created", `document.querySelectorAll('#users tbody tr').length === 5`, 10*time.Second)
	u := e.userByName(t, "vendas2")
	if u.Role != storage.RoleSales {
		t.Fatalf("created %+v", u)
	}
	row := fmt.Sprintf(`#users tr[data-id="%d"]`, u.ID)
	p.choose(row+" .u-role", "supervisor")
	p.waitJS("saved", `document.getElementById('users-status').textContent === 'vendas2 saved.'`, 10*time.Second)
	if u := e.userByName(t, "vendas2"); u.Role != storage.RoleSupervisor {
		t.Errorf("role after the change: %s", u.Role)
	}
	p.do("block", chromedp.Click(chromedp.CSS(row+" button")))
	p.waitJS("asked", `document.getElementById('confirm').open`, 5*time.Second)
	p.do("confirm", chromedp.Click(chromedp.CSS("#confirm-yes")))
	p.waitJS("blocked", fmt.Sprintf(`document.querySelector('%s')?.dataset.disabled === 'true'`, row), 10*time.Second)
	if u := e.userByName(t, "vendas2"); !u.Disabled {
		t.Error("the user is not blocked")
	}
	p.fitsPhone("users")

	s := openBrowser(t, e)
	s.signIn("sales1", "/sales")
	if eval[bool](s, `[...document.querySelectorAll('header nav a')].some(a => a.getAttribute('href') === '/users')`) {
		t.Error("sales are offered the users page")
	}
	s.do("open users", chromedp.Navigate(e.srv.URL+"/users"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if got := eval[string](s, `document.documentElement.dataset.page`); got != "forbidden" {
		t.Errorf("sales opened the users page: %q", got)
	}
}

// userByName finds a user through the API.
func (e *apiEnv) userByName(t *testing.T, name string) storage.User {
	t.Helper()
	for _, u := range decode[struct{ Users []storage.User }](t, e.get(t, "/api/v1/users", testAdminToken), http.StatusOK).Users {
		if u.Username == name {
			return u
		}
	}
	t.Fatalf("no user %s", name)
	return storage.User{}
}

// TestBrowserStartRefusalInWords: a draft made through the API without its
// template is refused at Start with the step and field in the page's words, not
// the server's "ladder[2].template: / is not an approved template".
func TestBrowserStartRefusalInWords(t *testing.T) {
	t.Parallel()
	e := newSalesEnv(t)
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": "Sem modelo", "caller_id": "+551130000000",
		"ladder": []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}, {"channel": "whatsapp_template", "max_attempts": 1}},
	}), http.StatusCreated)
	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.do("open the campaigns", chromedp.Navigate(e.srv.URL+"/sales"))
	p.setLang("pt-BR")
	start := fmt.Sprintf(`#campaigns tr[data-id="%s"] .actions button:nth-child(2)`, c.ID)
	p.waitJS("start offered", fmt.Sprintf(`document.querySelector(%q)?.textContent === 'Iniciar'`, start), 10*time.Second)
	p.do("start", chromedp.Click(chromedp.CSS(start)))
	p.waitJS("refused", `document.getElementById('list-status').textContent !== ''`, 10*time.Second)
	if got, want := p.text("#list-status"), "Sem modelo não foi iniciada. Corrija antes: passo 2: modelo."; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
}

// TestBrowserEditorWordsToJSON: the editor's translations between business words
// and the campaign JSON, run in Chromium as the page runs them.
func TestBrowserEditorWordsToJSON(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	got := eval[string](p, `import(new URL('sales-model.js', document.querySelector('script[type=module]').src).href).then((m) => JSON.stringify([
		m.cronFromDays(['mon', 'tue', 'wed', 'thu', 'fri'], '09:00', '18:30'),
		m.cronFromDays(['sat', 'sun'], '08:05', '12:00'),
		m.cronFromDays(['mon', 'wed', 'thu', 'fri', 'sun'], '09:00', '17:00'),
		m.daysFromCron('0 9 * * 1-5', '30 18 * * 1-5'),
		m.daysFromCron('0 8 * * MON-FRI', '0 12 * * MON-FRI'),
		m.daysFromCron('0 9 1 * *', '0 18 1 * *'),
		m.daysFromCron('0 22 * * *', '0 6 * * *'),
		m.daysFromCron('@every 1h', '0 18 * * *'),
		[m.durationSeconds('1h30m0s'), m.durationSeconds('0s'), m.durationSeconds('48h0m0s')],
		[m.splitDelay(1800), m.splitDelay(7200), m.splitDelay(172800), m.splitDelay(90), m.splitDelay(0)],
		[m.delayText(45, 'minutes'), m.delayText(1.5, 'hours'), m.delayText(2, 'days')],
	]))`)
	want := `[{"open":"0 9 * * 1-5","close":"30 18 * * 1-5"},{"open":"5 8 * * 0,6","close":"0 12 * * 0,6"},` +
		`{"open":"0 9 * * 0,1,3-5","close":"0 17 * * 0,1,3-5"},` +
		`{"days":["mon","tue","wed","thu","fri"],"open":"09:00","close":"18:30"},` +
		`{"days":["mon","tue","wed","thu","fri"],"open":"08:00","close":"12:00"},null,null,null,` +
		`[5400,0,172800],[[30,"minutes"],[2,"hours"],[2,"days"],[1.5,"minutes"],[0,"minutes"]],["2700s","5400s","172800s"]]`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestBrowserDictionariesHaveTheSameKeys: every string has both languages, so a
// Portuguese page never falls back to English (t uses the English text for a key
// Portuguese lacks).
func TestBrowserDictionariesHaveTheSameKeys(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	got := eval[string](p, `(async () => {
		const base = document.querySelector('script[type=module]').src;
		const en = (await import(new URL('i18n/en.js', base).href)).default;
		const pt = (await import(new URL('i18n/pt-BR.js', base).href)).default;
		return [...Object.keys(en).filter((k) => !(k in pt)).map((k) => 'no pt-BR: ' + k),
			...Object.keys(pt).filter((k) => !(k in en)).map((k) => 'no en: ' + k)].join(', ');
	})()`)
	if got != "" {
		t.Error(got)
	}
}
