package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

// answerChannel is a holdChannel whose calls the test answers: a person who
// picks up while no agent is free waits on the wallboard.
type answerChannel struct {
	holdChannel
	mu       sync.Mutex
	attempts []*holdAttempt
}

func (c *answerChannel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	a, err := c.holdChannel.Place(ctx, req)
	if err == nil {
		c.mu.Lock()
		c.attempts = append(c.attempts, a.(*holdAttempt))
		c.mu.Unlock()
	}
	return a, err
}

// answer picks up the first call placed.
func (c *answerChannel) answer(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.attempts) == 0 {
		t.Fatal("no call to answer")
	}
	c.attempts[0].events <- channel.AttemptEvent{Kind: channel.AttemptAnswered, At: time.Now()}
}

// wallboardScene is a running progressive campaign "Fibra" whose one call rings
// (the agent was ready), then is answered after the agent paused: a customer
// waits. The supervisor's page is open on it.
// whileRinging, when given, looks at the page while the agent is still ready.
func wallboardScene(t *testing.T, whileRinging ...func(*page, campaignView)) (*apiEnv, *page, campaignView) {
	t.Helper()
	ch := &answerChannel{}
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: ch}, func(c *dialer.Config) {
		c.Patience, c.RingTimeout = time.Minute, time.Minute
	}))
	c := runningCampaign(t, e, "Fibra", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"+5511987650401", "+5511987650402")
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := ch.firstPlaced(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine placed no call for the ready agent")
		}
	}

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("a call ringing", fmt.Sprintf(`document.getElementById('ringing-%s')?.textContent === '1'`, c.ID), 10*time.Second)
	for _, f := range whileRinging {
		f(p, c)
	}
	decode[any](t, e.send(t, "POST", "/api/v1/agent/pause", agent, map[string]any{"reason": "break"}), http.StatusOK)
	p.waitJS("agent paused", fmt.Sprintf(`document.querySelector('#campaign-%s .chip[data-state="paused"]')?.dataset.n === '1'`, c.ID), 5*time.Second)
	ch.answer(t)
	p.waitJS("a customer waiting", fmt.Sprintf(`document.getElementById('waiting-%s')?.textContent === '1'`, c.ID), 5*time.Second)
	return e, p, c
}

// TestBrowserWallboardTiles: the headline figures of a campaign read in words in
// both languages: the call ringing, then the customer waiting and for how long, the
// agents by state with their plurals right, abandonment against its cap, attempts
// and reached per channel; the agents' summary says "1 disponível", not "1 disponíveis".
func TestBrowserWallboardTiles(t *testing.T) {
	t.Parallel()
	_, p, c := wallboardScene(t, func(p *page, c campaignView) {
		p.setLanguage("pt-BR")
		if got, want := eval[string](p, `document.getElementById('agent-summary').textContent`), "1 disponível · 0 em ligação ou tabulação · 0 em pausa"; got != want {
			t.Errorf("agent summary %q, want %q", got, want)
		}
		p.setLanguage("en")
	})
	card := "#campaign-" + c.ID
	p.waitJS("longest wait counts", fmt.Sprintf(`/^longest wait 00:0[1-9]/.test(document.querySelector('%s [data-tile="waiting"] .tile-sub').textContent)`, card), 10*time.Second)
	if got := p.text(card + ` [data-tile="waiting"]`); !strings.HasPrefix(got, "Customers waiting") {
		t.Errorf("waiting tile %q", got)
	}
	if got := eval[string](p, fmt.Sprintf(`document.querySelector('%s [data-tile="waiting"]').dataset.level`, card)); got != "warn" {
		t.Errorf("waiting tile level %q, want warn while someone waits", got)
	}
	if got, want := eval[string](p, `document.querySelector('`+card+` [data-tile="agents"] .tile-sub').textContent`), "0 ready0 on calls0 in wrap-up1 paused"; got != want {
		t.Errorf("agents by state %q, want %q", got, want)
	}
	if got, want := p.text(card+` [data-tile="abandon"] .tile-sub`), "cap 3%"; got != want {
		t.Errorf("abandonment tile %q, want %q", got, want)
	}
	if got, want := eval[string](p, `[...document.querySelectorAll('`+card+` table.channels tbody td, `+card+` table.channels tbody th')].map((c) => c.textContent).join('|')`), "SIP call|1|0|0% answered"; got != want {
		t.Errorf("channels %q, want %q", got, want)
	}
	// A message is delivered, not answered: a template's rate says so.
	var pending int64
	for _, ct := range p.e.contacts(t, c.ID, "").Contacts {
		if ct.Status == "pending" {
			fmt.Sscan(ct.ID, &pending)
		}
	}
	if _, err := p.e.db.StartAttempt(context.Background(), pending, campaigns.ChannelWhatsAppTemplate, 0); err != nil {
		t.Fatal(err)
	}
	p.waitJS("template row", fmt.Sprintf(`document.querySelector('%s table.channels tr[data-channel="whatsapp_template"]') !== null`, card), 5*time.Second)
	if got, want := eval[string](p, `[...document.querySelectorAll('`+card+` table.channels tr[data-channel="whatsapp_template"] > *')].map((c) => c.textContent).join('|')`),
		"WhatsApp template|1|0|0% delivered"; got != want {
		t.Errorf("template channel %q, want %q", got, want)
	}
	p.setLanguage("pt-BR")
	p.waitJS("tiles in Portuguese", fmt.Sprintf(`document.querySelector('%s [data-tile="waiting"] .tile-label')?.textContent === 'Clientes aguardando'`, card), 5*time.Second)
	if got, want := eval[string](p, `document.querySelector('`+card+` [data-tile="agents"] .tile-sub').textContent`), "0 disponíveis0 em ligação0 em tabulação1 em pausa"; got != want {
		t.Errorf("agents by state in Portuguese %q, want %q", got, want)
	}
	if got := p.text(card + ` [data-tile="waiting"] .tile-sub`); !strings.HasPrefix(got, "maior espera 00:") {
		t.Errorf("longest wait in Portuguese %q", got)
	}
	if got, want := p.text("#agent-summary"), "0 disponíveis · 0 em ligação ou tabulação · 1 em pausa"; got != want {
		t.Errorf("agent summary %q, want %q", got, want)
	}
	// Ready again, the agent takes the waiting customer: one on a call, in the singular.
	decode[any](t, p.e.send(t, "POST", "/api/v1/agent/ready", p.e.tokens[storage.RoleAgent], map[string]any{}), http.StatusOK)
	p.waitJS("one on a call", `document.getElementById('agent-summary').textContent === '0 disponíveis · 1 em ligação ou tabulação · 0 em pausa'`, 5*time.Second)
	p.waitJS("nobody waits", fmt.Sprintf(`document.getElementById('waiting-%s').textContent === '0'`, c.ID), 5*time.Second)
}

// TestBrowserWallboardChart: the chart is drawn by uPlot with its axes, for the
// window chosen (15, 30 or 60 minutes); the data fills it from its left edge even
// when the campaign is younger than the window; its figures are in a table too.
func TestBrowserWallboardChart(t *testing.T) {
	t.Parallel()
	_, p, c := wallboardScene(t)
	box := "#plot-" + c.ID
	p.waitJS("points drawn", fmt.Sprintf(`Number(document.querySelector('%s').dataset.points) >= 1`, box), 30*time.Second)
	if got := eval[int](p, fmt.Sprintf(`document.querySelectorAll('%s .u-axis').length`, box)); got != 3 {
		t.Errorf("%d axes, want time, dials/min and abandonment %%", got)
	}
	if got := eval[string](p, fmt.Sprintf(`[...document.getElementById('window-%s').options].map((o) => o.value).join(',')`, c.ID)); got != "15,30,60" {
		t.Errorf("window choices %q", got)
	}
	for _, minutes := range []string{"60", "15"} {
		p.do("choose "+minutes+" min", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`(() => { const s = document.getElementById('window-%s'); s.value = '%s'; s.dispatchEvent(new Event('change')); })()`, c.ID, minutes)))
		// The first point sits at the plot's left edge, the last at its right.
		left := eval[float64](p, fmt.Sprintf(`(() => { const u = document.querySelector('%s').uplot; return u.valToPos(u.data[0][0], 'x') / u.bbox.width * devicePixelRatio; })()`, box))
		if left > 0.02 {
			t.Errorf("%s min window: the data starts %.0f%% into the chart, want at its left edge", minutes, 100*left)
		}
	}
	// The window chosen is remembered.
	p.do("choose 30 min and reload", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const s = document.getElementById('window-%s'); s.value = '30'; s.dispatchEvent(new Event('change')); })()`, c.ID)),
		chromedp.Reload())
	p.waitJS("30 min after the reload", fmt.Sprintf(`document.getElementById('window-%s')?.value === '30'`, c.ID), 10*time.Second)
	p.waitJS("points drawn again", fmt.Sprintf(`Number(document.querySelector('%s')?.dataset.points) >= 1`, box), 10*time.Second)
	if got := eval[int](p, fmt.Sprintf(`document.querySelectorAll('#figures-%s tbody tr').length`, c.ID)); got < 1 {
		t.Errorf("%d rows in the chart's table", got)
	}
	if got := eval[string](p, fmt.Sprintf(`document.querySelector('%s').getAttribute('aria-describedby')`, box)); got != "figures-"+c.ID {
		t.Errorf("chart described by %q, want its table", got)
	}
}

// TestBrowserWallboardTVMode: the TV mode enlarges the type and hides the controls;
// Escape leaves it.
func TestBrowserWallboardTVMode(t *testing.T) {
	t.Parallel()
	_, p, c := wallboardScene(t)
	size := fmt.Sprintf(`parseFloat(getComputedStyle(document.getElementById('waiting-%s')).fontSize)`, c.ID)
	before := eval[float64](p, size)
	p.do("TV mode", chromedp.Click(chromedp.CSS("#tv-mode")))
	p.waitJS("TV mode on", `document.documentElement.classList.contains('tv')`, 3*time.Second)
	if after := eval[float64](p, size); after < 1.4*before {
		t.Errorf("TV mode figure %.0f px, want at least 1.4 × %.0f px", after, before)
	}
	if eval[bool](p, fmt.Sprintf(`document.getElementById('apply-%s').checkVisibility()`, c.ID)) {
		t.Error("the pacing form shows in TV mode")
	}
	p.shot("tv")
	p.do("Escape", chromedp.KeyEvent("\x1b"))
	p.waitJS("TV mode off", `!document.documentElement.classList.contains('tv')`, 3*time.Second)
	if after := eval[float64](p, size); after != before {
		t.Errorf("after Escape the figure is %.0f px, want %.0f px", after, before)
	}
}

// TestBrowserWallboardAuditAndPacingErrors: the audit log says who did what in a
// sentence in the page's language; a pacing value out of range is refused beside
// its field, in the page's language and in the field's unit (%), before anything
// is sent.
func TestBrowserWallboardAuditAndPacingErrors(t *testing.T) {
	t.Parallel()
	e, p, c := wallboardScene(t)
	sup := e.tokens[storage.RoleSupervisor]
	for _, r := range []float64{2, 3} {
		decode[pacingView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", sup, map[string]any{"max_ratio": r}), http.StatusOK)
	}
	p.setLanguage("pt-BR")
	p.waitJS("audit sentence", `[...document.querySelectorAll('#audit li')].some((li) => li.textContent.endsWith(
		'User supervisor1 (Supervisor) mudou o ritmo da campanha Fibra: proporção máxima 2 → 3'))`, 5*time.Second)
	if got := p.text("#audit"); strings.Contains(got, "{") || strings.Contains(got, "campaign.pacing") {
		t.Errorf("audit log shows raw data: %q", got)
	}

	p.do("target 50 %", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const i = document.getElementById('target-%s'); i.focus(); i.value = '50'; i.dispatchEvent(new Event('input', {bubbles: true})); })()`, c.ID)))
	p.do("apply", chromedp.Click(chromedp.CSS("#apply-"+c.ID)))
	p.waitJS("error beside the field", fmt.Sprintf(`document.getElementById('target-%s-err').textContent !== ''`, c.ID), 3*time.Second)
	if got, want := p.text("#target-"+c.ID+"-err"), "O abandono alvo deve ser maior que 0 % e no máximo 3 %."; got != want {
		t.Errorf("field error %q, want %q", got, want)
	}
	if got := eval[string](p, fmt.Sprintf(`document.getElementById('target-%s').getAttribute('aria-invalid')`, c.ID)); got != "true" {
		t.Errorf("aria-invalid %q", got)
	}
	if pc := decode[pacingView](t, e.get(t, "/api/v1/campaigns/"+c.ID+"/pacing", sup), http.StatusOK); pc.TargetAbandon != 0.03 {
		t.Errorf("target_abandon %v stored, want the 0.03 it had", pc.TargetAbandon)
	}
	axeCheck(p)
}

// TestBrowserWallboardFacesAreAccessible: in both languages and at both widths the
// wallboard passes axe-core and the phone's page is no wider than the phone.
func TestBrowserWallboardFacesAreAccessible(t *testing.T) {
	t.Parallel()
	_, p, _ := wallboardScene(t)
	for _, lang := range []string{"en", "pt-BR"} {
		p.setLanguage(lang)
		for _, vp := range viewports {
			p.setViewport(vp.width, vp.height)
			p.waitJS("the chart fits its box", `[...document.querySelectorAll('.plot')].every((b) => b.uplot && Math.abs(b.uplot.width - Math.max(200, b.clientWidth)) < 2)`, 5*time.Second)
			p.shot(lang + "-" + vp.name)
			noHorizontalScroll(p)
			cardsFit(p)
			axeCheck(p)
		}
	}
}

// TestBrowserWallboardTrunkStates: each trunk's state in words and colours: in
// service, down with its last error, testing (the half-open circuit, coloured), and
// out of service by a supervisor, drawn unlike a failure; the WhatsApp API has a
// card of its own.
func TestBrowserWallboardTrunkStates(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{TrunkStatus: func() any {
		return []map[string]any{
			{"name": "a", "state": "closed"},
			{"name": "b", "state": "half-open", "last_error": "408 Request Timeout"},
			{"name": "c", "state": "open", "out_of_service": true},
			{"name": "d", "state": "open", "last_error": "transport error: connection refused"},
		}
	}})
	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("trunks", `document.querySelectorAll('#trunks tbody .badge').length === 4`, 10*time.Second)
	type badge struct{ State, Text, Background string }
	got := eval[[]badge](p, `[...document.querySelectorAll('#trunks tbody .badge')].map((b) => ({state: b.dataset.state, text: b.textContent, background: getComputedStyle(b).backgroundColor}))`)
	want := []struct{ state, text string }{{"in_service", "In service"}, {"testing", "Testing whether it is back"},
		{"manual", "Out of service (by a supervisor)"}, {"down", "Down"}}
	grey := "rgb(230, 235, 241)" // .badge's own background: no state's colour
	seen := map[string]string{}
	for i, w := range want {
		if got[i].State != w.state || got[i].Text != w.text {
			t.Errorf("trunk %d badge %+v, want %s %q", i, got[i], w.state, w.text)
		}
		if got[i].Background == grey {
			t.Errorf("trunk %d badge %s has no colour of its own", i, got[i].State)
		}
		if other, ok := seen[got[i].Background]; ok {
			t.Errorf("badges %s and %s look the same (%s)", other, got[i].State, got[i].Background)
		}
		seen[got[i].Background] = got[i].State
	}
	if got := p.text("#trunks tbody tr:nth-child(4) .trunk-error"); got != "Last error: transport error: connection refused" {
		t.Errorf("down trunk's error %q", got)
	}
	if eval[bool](p, `document.getElementById('trunks').closest('section').contains(document.getElementById('whatsapp'))`) {
		t.Error("the WhatsApp API is drawn inside the trunks' card")
	}
	p.setLanguage("pt-BR")
	p.waitJS("Portuguese", `document.querySelector('#trunks tbody .badge').textContent === 'Em serviço'`, 5*time.Second)
	if got := p.text("#trunks tbody tr:nth-child(4) .badge"); got != "Fora do ar" {
		t.Errorf("down badge in Portuguese %q", got)
	}
}

// cardsFit fails the test when a card's content is wider than the card (a table
// spilling over its neighbour) or a table hides columns in a sideways scroll of
// its own (only a tall data grid, .tall, may scroll).
func cardsFit(p *page) {
	p.t.Helper()
	wide := eval[[]string](p, `[...document.querySelectorAll('.card, .table-scroll:not(.tall)')].filter((c) => c.scrollWidth > c.clientWidth + 1)
		.map((c) => (c.id || c.getAttribute('aria-labelledby') || c.className) + ' ' + c.scrollWidth + '>' + c.clientWidth)`)
	if len(wide) > 0 {
		p.t.Errorf("cards whose content spills over, at %d px: %v", eval[int](p, `window.innerWidth`), wide)
	}
}
