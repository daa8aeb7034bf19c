package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/storage"
)

// onCall signs agent1 in on p, makes it ready with its audio up and imports one
// contact whose call sipp answers; it returns once the page shows the call.
func onCall(t *testing.T, p *page, e *apiEnv, slot *engineSlot, c campaignView, phone string) int64 {
	t.Helper()
	agentID := e.users[storage.RoleAgent].ID
	agentTab(t, p, slot, agentID)
	e.importCSV(t, c.ID, "phone,name,timezone,plan\n"+phone+",Maria Souza,UTC,<img src=x onerror=window.__xss=1>Gold\n")
	p.waitJS("the call on the page", `document.getElementById('state').dataset.state === 'on_call' && !document.getElementById('screen-pop').hidden`, 20*time.Second)
	return agentID
}

// reload reloads p as the agent pressing F5 does.
func (p *page) reload() {
	p.t.Helper()
	p.do("reload", chromedp.Reload())
}

// TestBrowserAgentReloadMidCallKeepsTheCall: a Chromium agent talking to a sipp
// customer reloads the page. The page comes back with everything: the state and
// its timer counted from the server's change (not the reload), the screen-pop
// with the contact's history, the hang-up button, and the audio: the browser
// hears the customer again on its new session. The customer was never given
// up (the attempt ends connected, hung up by the agent). Reloaded again in
// wrap-up with a callback half filled in, the disposition box is back as it
// was (code, time, notes) and the disposition saves; the agent is ready again.
func TestBrowserAgentReloadMidCallKeepsTheCall(t *testing.T) {
	t.Parallel()
	e, slot, c := presenceEnv(t, "answer-rtp.xml", 1)
	p := openBrowser(t, e)
	p.watchPeerConnections()
	agentID := onCall(t, p, e, slot, c, "+5511960000082")
	a, _ := slot.Agents().Get(agentID)
	// The timer must show the time since the call began, so let it grow first.
	for time.Since(a.Since) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
	}

	p.reload()
	p.waitJS("the call after the reload", `document.getElementById('state').dataset.state === 'on_call' &&
		!document.getElementById('screen-pop').hidden && !document.getElementById('hangup').hidden &&
		!document.getElementById('hangup').disabled && document.querySelectorAll('#history tbody tr').length === 1`, 15*time.Second)
	if got := p.text("#contact-name"); got != "Maria Souza" {
		t.Errorf("contact after the reload %q", got)
	}
	// The timer counts from the server's state change: at least the 3 s before
	// the reload.
	secs := eval[int](p, `(() => { const [m, s] = document.getElementById('state-time').textContent.split(':').map(Number); return m * 60 + s; })()`)
	if secs < 3 {
		t.Errorf("state timer after the reload shows %d s, want it counted from the call's start (≥ 3 s)", secs)
	}
	p.waitJS("audio after the reload", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	p.wantHeard("sipp after the reload", "audio/PCMU", "audio/opus")
	if a, _ := slot.Agents().Get(agentID); a.State != dialer.AgentOnCall {
		t.Fatalf("agent after the reload %+v, want still on the call", a)
	}
	p.shot("reloaded-on-call")
	p.wantFits(390, 844, "on-call-phone")

	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("wrap-up", `document.getElementById('state').dataset.state === 'wrap_up' && !document.getElementById('dispo').hidden`, 10*time.Second)
	// A callback half filled in, then the reload: the form comes back as it was.
	p.do("choose callback", chromedp.Click(chromedp.CSS("#code-callback")))
	p.do("callback time", chromedp.Evaluate[chromedp.Void](`(() => { const i = document.getElementById('callback-at');
		i.value = '2099-01-02T10:30'; i.dispatchEvent(new Event('input', { bubbles: true })); })()`))
	p.do("notes", chromedp.Focus(chromedp.CSS("#dispo-notes")), chromedp.KeyEvent("liga amanhã"))
	p.reload()
	p.waitJS("disposition box after the reload", `document.getElementById('state').dataset.state === 'wrap_up' &&
		!document.getElementById('dispo').hidden && document.querySelectorAll('#dispo-codes input').length > 0 &&
		!document.getElementById('screen-pop').hidden`, 15*time.Second)
	if got := eval[string](p, `[document.getElementById('code-callback').checked, !document.getElementById('callback-fields').hidden,
		document.getElementById('callback-at').value, document.getElementById('dispo-notes').value].join('|')`); got != "true|true|2099-01-02T10:30|liga amanhã" {
		t.Errorf("disposition form after the reload %q, want the callback, its time and the notes as they were", got)
	}
	p.shot("reloaded-wrap-up")
	// Clicked in the page: the reloaded page may draw the codes again (a late
	// event), and a node looked up from the test before that is gone.
	p.do("choose sale", chromedp.Evaluate[chromedp.Void](`document.getElementById('code-sale').click()`))
	p.waitJS("sale chosen", `document.getElementById('code-sale').checked`, 5*time.Second)
	p.do("save disposition", chromedp.Evaluate[chromedp.Void](`document.getElementById('dispo-submit').click()`))
	// Ready again by itself once its audio is back; or paused with Ready to press.
	p.waitJS("ready after the disposition", `document.getElementById('dispo').hidden && (document.getElementById('state').dataset.state === 'ready' ||
		(document.getElementById('state').dataset.state === 'paused' && !document.getElementById('ready').disabled))`, 10*time.Second)

	id, _ := strconv.ParseInt(e.contacts(t, c.ID, "").Contacts[0].ID, 10, 64)
	attempts, err := e.db.ListAttempts(context.Background(), id)
	if err != nil || len(attempts) != 1 {
		t.Fatalf("attempts %+v (%v)", attempts, err)
	}
	if at := attempts[0]; at.Outcome != string(campaigns.OutcomeConnected) || at.HangupBy != "agent" || at.SafeHarbour != "" || at.Disposition != "sale" || at.Notes != "liga amanhã" {
		t.Errorf("attempt %+v, want connected, hung up by the agent, without the safe-harbour message, disposition sale, the notes kept", at)
	}
}

// watchAnnouncements grants the page notifications and, on every document it
// loads, counts the tones it generates (window.__tones: oscillators started),
// the notifications it shows (window.__notes) and its API requests still
// waiting for their answer (window.__pending). The page is in Portuguese.
func (p *page) watchAnnouncements() {
	p.t.Helper()
	const spy = `(() => {
		localStorage.setItem('turbina.lang', 'pt-BR');
		window.__tones = 0;
		const osc = AudioContext.prototype.createOscillator;
		AudioContext.prototype.createOscillator = function () { window.__tones++; return osc.call(this); };
		window.__notes = [];
		const N = window.Notification;
		window.Notification = class extends N {
			constructor(title, o) { super(title, o); window.__notes.push(title + ' | ' + (o && o.body)); }
		};
		window.__pending = 0;
		const f = window.fetch;
		window.fetch = async (...a) => { window.__pending++; try { return await f(...a); } finally { window.__pending--; } };
	})();`
	p.do("watch the announcements", func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		if _, err := chromedp.Call(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: p.e.srv.URL,
			// The test's own browser context (openBrowser), not the shared browser's default one.
			BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: spy})
		return chromedp.Void{}, err
	})
}

// key presses one key on the page, as the agent does.
func (p *page) key(k string) {
	p.t.Helper()
	p.do("press "+k, chromedp.KeyEvent(k))
}

// statusIs waits for the page's message line to say want, in the style kind
// ("note" or "error"), with the colour of that style, once no API request is
// waiting: a request's answer must not wipe what an event wrote.
func (p *page) statusIs(what, kind, want string) {
	p.t.Helper()
	color := map[string]string{"note": "rgb(30, 125, 50)", "error": "rgb(179, 38, 30)"}[kind]
	p.waitJS(what, `(() => { const s = document.getElementById('agent-status');
		return window.__pending === 0 && !s.hidden && s.className === '`+kind+`' && s.textContent === `+strconv.Quote(want)+` &&
			getComputedStyle(s).color === '`+color+`'; })()`, 10*time.Second)
}

// TestBrowserAgentDesk: a Chromium agent working in Portuguese. A call
// announces itself: a tone, the tab's title, a notification, the focus on Hang
// up. The contact's number is written as in Brazil and the history's outcome in
// words. The keyboard works the session, as the page's list of shortcuts says:
// M mutes, H hangs up, a digit picks a disposition, R and P make ready and
// pause; not while the agent types in a field. The call's end stays said after
// the hang-up request returns; a callback time in the past, or too far ahead
// (refused by the server), is an error, in the error style, beside the field.
// The campaign's script is shown with the contact's fields filled in, as text
// (a field holding HTML stays text). The notes typed with the disposition are
// kept with the attempt, and the callback is then in "my callbacks".
func TestBrowserAgentDesk(t *testing.T) {
	t.Parallel()
	e, slot, c := presenceEnv(t, "answer-rtp.xml", 1)
	decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSupervisor],
		map[string]any{"script": "Olá {{name}}! Seu plano: {{plan}}. {{unknown}}"}), http.StatusOK)
	p := openBrowser(t, e)
	p.watchAnnouncements()
	onCall(t, p, e, slot, c, "+5511960000082")

	p.waitJS("the call announced", `document.title === '● Chamada — Turbina' && document.activeElement?.id === 'hangup' &&
		window.__tones >= 2 && window.__notes.length === 1`, 10*time.Second)
	if got := eval[string](p, `window.__notes[0]`); got != "Chamada — Presence | Maria Souza — (11) 96000-0082" {
		t.Errorf("notification %q", got)
	}
	if got := p.text("#contact-phone"); got != "(11) 96000-0082" {
		t.Errorf("phone on the screen-pop %q, want (11) 96000-0082", got)
	}
	if got := p.text("#history tbody tr td:nth-child(3)"); got != "atendida" {
		t.Errorf("the call's outcome in the history %q, want it in words (atendida)", got)
	}
	if got := p.text("#script"); got != "Olá Maria Souza! Seu plano: <img src=x onerror=window.__xss=1>Gold. {{unknown}}" {
		t.Errorf("script %q", got)
	}
	if eval[bool](p, `document.querySelector('#script img') !== null || window.__xss === 1`) {
		t.Error("a contact's field was read as HTML in the script")
	}
	if got := p.text("#cb-none"); got != "Nenhum retorno agendado." {
		t.Errorf("my callbacks before any %q", got)
	}
	if got := p.text("#shortcuts"); !strings.Contains(got, "Disponível") || !strings.Contains(got, "Desligar") {
		t.Errorf("shortcuts listed %q", got)
	}
	p.shot("announced")
	// Disabled controls (Ready, Pause on a call) are still readable: AA contrast.
	if low := eval[[]string](p, `(() => {
		const lum = (rgb) => { const c = rgb.match(/\d+/g).slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
			return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
		return [...document.querySelectorAll('button:disabled')].filter((b) => b.offsetParent).flatMap((b) => {
			const cs = getComputedStyle(b);
			const [x, y] = [lum(cs.color), lum(cs.backgroundColor)];
			const ratio = (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
			return ratio < 4.5 || cs.opacity !== '1' ? [b.id + ' ' + ratio.toFixed(2) + ' opacity ' + cs.opacity] : [];
		}); })()`); len(low) > 0 {
		t.Errorf("disabled controls under 4.5:1 contrast: %v", low)
	}

	// The server's refusals are said in the page's language (a page whose Pause
	// button was left enabled, pressed on a call).
	p.do("pause on a call", chromedp.Evaluate[chromedp.Void](`document.getElementById('pause').disabled = false; document.getElementById('pause').click()`))
	p.statusIs("the refusal in Portuguese", "error", "Não é possível durante uma chamada ou a tabulação: termine a chamada primeiro.")
	p.key("m")
	p.waitJS("muted", `document.getElementById('mute').getAttribute('aria-pressed') === 'true'`, 5*time.Second)
	p.key("m")
	p.waitJS("unmuted", `document.getElementById('mute').getAttribute('aria-pressed') === 'false'`, 5*time.Second)
	p.key("h")
	p.waitJS("wrap-up", `document.getElementById('state').dataset.state === 'wrap_up' && !document.getElementById('dispo').hidden`, 10*time.Second)
	p.statusIs("the call's end said", "note", "A chamada terminou. Escolha a tabulação.")

	// 2 is the callback; typing 1 in the time field picks nothing.
	p.key("2")
	p.waitJS("callback picked", `document.getElementById('code-callback').checked && !document.getElementById('callback-fields').hidden`, 5*time.Second)
	p.do("type in the callback time", chromedp.Focus(chromedp.CSS("#callback-at")), chromedp.KeyEvent("1"))
	if !eval[bool](p, `document.getElementById('code-callback').checked`) {
		t.Fatal("a digit typed in the callback time changed the disposition")
	}
	setTime := func(offset string) {
		t.Helper()
		p.do("callback time", chromedp.Evaluate[chromedp.Void](`(() => { const d = new Date(Date.now() + (`+offset+`));
			const pad = (n) => String(n).padStart(2, '0');
			document.getElementById('callback-at').value = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes()); })()`))
		p.do("save", chromedp.Click(chromedp.CSS("#dispo-submit")))
	}
	setTime("-3600e3")
	p.statusIs("a past callback refused", "error", "O horário do retorno já passou. Escolha um horário futuro.")
	if got := p.text("#callback-error"); got != "O horário do retorno já passou. Escolha um horário futuro." {
		t.Errorf("error beside the callback time %q", got)
	}
	setTime("120 * 86400e3")
	p.statusIs("a callback too far ahead refused by the server", "error", "O retorno deve ser agendado para os próximos 90 dias.")
	p.shot("callback-refused")

	p.key("1")
	p.waitJS("sale picked, focus on save", `document.getElementById('code-sale').checked && document.activeElement?.id === 'dispo-submit'`, 5*time.Second)
	p.key("2")
	p.waitJS("callback picked again", `document.getElementById('code-callback').checked && document.activeElement?.id === 'dispo-submit'`, 5*time.Second)
	p.do("callback time", chromedp.Evaluate[chromedp.Void](`(() => { const d = new Date(Date.now() + 2 * 3600e3);
		const pad = (n) => String(n).padStart(2, '0');
		document.getElementById('callback-at').value = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes()); })()`))
	// Letters of the shortcuts typed in the notes are text, not commands.
	const notes = "Prefere manhã; ligar para o Hugo 1 vez"
	p.do("type notes", chromedp.Focus(chromedp.CSS("#dispo-notes")), chromedp.KeyEvent(notes))
	if st := eval[string](p, `document.getElementById('state').dataset.state + ' ' + document.getElementById('mute').getAttribute('aria-pressed') + ' ' + document.getElementById('code-callback').checked`); st != "wrap_up false true" {
		t.Fatalf("typing the notes worked the shortcuts: %s", st)
	}
	p.do("focus save", chromedp.Focus(chromedp.CSS("#dispo-submit")))
	p.key(kb.Enter)
	p.waitJS("ready", `document.getElementById('state').dataset.state === 'ready' && document.getElementById('dispo').hidden`, 10*time.Second)
	p.waitJS("my callbacks", `document.querySelectorAll('#cb-list tbody tr').length === 1 && !document.getElementById('cb-list').hidden`, 10*time.Second)
	if got := p.text("#cb-list tbody tr td:nth-child(2)"); got != "Maria Souza — (11) 96000-0082" {
		t.Errorf("my callback's contact %q", got)
	}
	id, _ := strconv.ParseInt(e.contacts(t, c.ID, "").Contacts[0].ID, 10, 64)
	if as, err := e.db.ListAttempts(context.Background(), id); err != nil || len(as) != 1 || as[0].Notes != notes || as[0].Disposition != "callback" {
		t.Errorf("attempts %+v (%v), want the callback with the notes %q", as, err, notes)
	}
	if got := eval[string](p, `document.title`); got != "Turbina — softphone" {
		t.Errorf("title after the call %q", got)
	}
	p.key("p")
	p.waitJS("paused by P", `document.getElementById('state').dataset.state === 'paused'`, 5*time.Second)
	p.key("r")
	p.waitJS("ready by R", `document.getElementById('state').dataset.state === 'ready'`, 5*time.Second)

	p.wantFits(390, 844, "phone")
}

// wantFits shows the page at width×height, checks that nothing makes it scroll
// sideways, saves a screenshot as name, and goes back to 1366×768.
func (p *page) wantFits(width, height int64, name string) {
	p.t.Helper()
	p.do("narrow window", chromedp.EmulateViewport(width, height))
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > int(width) {
		wide := eval[[]string](p, fmt.Sprintf(`[...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > %d).slice(0, 8).map((el) => el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))`, width))
		p.t.Errorf("the agent page is %d px wide in a %d px window: %v", w, width, wide)
	}
	p.shot(name)
	p.do("wide window", chromedp.EmulateViewport(1366, 768))
}

// TestBrowserAgentPausedForLostAudioSaysHowToComeBack: the audio session of a
// ready Chromium agent ends. The engine pauses the agent (no_audio) and the page
// says why and what to do; Connect audio brings it back, ready again, and the
// advice goes away.
func TestBrowserAgentPausedForLostAudioSaysHowToComeBack(t *testing.T) {
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	// The calls ring on and on: the agent stays ready.
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: &holdChannel{}}))
	runningCampaign(t, e, "Presence", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}, "+5511987650040")
	p := openBrowser(t, e)
	p.watchPeerConnections()
	agentID := e.users[storage.RoleAgent].ID
	agentTab(t, p, slot, agentID)
	if !eval[bool](p, `document.getElementById('presence-hint').hidden`) {
		t.Error("advice shown to a ready agent")
	}
	lost := time.Now()
	p.do("end the audio", chromedp.Evaluate[chromedp.Void](`window.__pcs.at(-1).close()`))
	waitPaused(t, slot, agentID, dialer.ReasonNoAudio, lost)
	p.waitJS("the advice", `!document.getElementById('presence-hint').hidden && document.getElementById('state').dataset.state === 'paused'`, 10*time.Second)
	if got := p.text("#presence-hint"); got != "You were paused because your audio is not connected. Press Connect audio (allow the microphone), then Ready." {
		t.Errorf("advice %q", got)
	}
	if got := eval[string](p, `getComputedStyle(document.getElementById('presence-hint')).color`); got != "rgb(179, 38, 30)" {
		t.Errorf("advice in %s, want the error colour", got)
	}
	p.shot("no-audio")
	p.do("connect audio", chromedp.Click(chromedp.CSS("#audio-connect")))
	p.waitJS("ready again", `document.getElementById('state').dataset.state === 'ready' && document.getElementById('presence-hint').hidden &&
		document.getElementById('audio-status').dataset.state === 'connected'`, 20*time.Second)
}

// TestBrowserAdminOnTheAgentPageIsToldItIsForAgents: an admin may open the agent
// page but has no agent session: the page says so and does not knock on the
// agents' event stream (it used to say "reconnecting…" for ever).
func TestBrowserAdminOnTheAgentPageIsToldItIsForAgents(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("admin", "/supervisor")
	p.do("open the agent page", chromedp.Navigate(e.srv.URL+"/agent"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	p.waitJS("the note", `!document.getElementById('agent-status').hidden`, 5*time.Second)
	p.setLanguage("pt-BR")
	if got := p.text("#agent-status"); !strings.Contains(got, "conta de um agente") {
		t.Errorf("the agent page tells an admin %q, want that it is for agents", got)
	}
	time.Sleep(2 * time.Second) // a page knocking on the event stream would say so by now
	if got := p.text("#agent-status"); !strings.Contains(got, "conta de um agente") {
		t.Errorf("after 2 s the agent page tells an admin %q", got)
	}
	if eval[bool](p, `[...document.querySelectorAll('main button')].some((b) => !b.disabled)`) {
		t.Error("an admin is offered the agent's buttons")
	}
}

// TestBrowserAgentToldTheServerDrains: the server starts to drain (a rolling
// restart) while an agent's page is open: the page says that no new call comes
// there and what to do, in the agent's language.
func TestBrowserAgentToldTheServerDrains(t *testing.T) {
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	// The calls ring on and on: the drain goes on until the test ends.
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: &holdChannel{}}))
	runningCampaign(t, e, "Drain", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}}, "+5511987650041")
	p := openBrowser(t, e)
	agentTab(t, p, slot, e.users[storage.RoleAgent].ID)
	if !eval[bool](p, `document.getElementById('draining').hidden`) {
		t.Error("the drain's notice shown before any drain")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go slot.get().Drain(ctx)
	p.waitJS("the notice", `!document.getElementById('draining').hidden`, 10*time.Second)
	if got := p.text("#draining"); got != "This server is restarting: no new call comes here. Finish your call and its disposition; the page then reconnects by itself." {
		t.Errorf("notice %q", got)
	}
	p.setLanguage("pt-BR")
	if got := p.text("#draining"); !strings.Contains(got, "Este servidor está reiniciando") {
		t.Errorf("notice in Portuguese %q", got)
	}
}
