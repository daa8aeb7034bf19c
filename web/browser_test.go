package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/agentaudio"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// page is one headless Chromium tab on the test server, with fake media devices.
type page struct {
	t   *testing.T
	ctx context.Context
	e   *apiEnv
	mu  sync.Mutex
	log []string // console messages, shown when the test fails
}

// screenshotDir is where the browser tests save what each page looked like:
// $TURBINA_SCREENSHOTS when set, else a temporary directory of the test.
func screenshotDir(t *testing.T) string {
	if dir := os.Getenv("TURBINA_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// chromium is the one Chromium process the package's browser tests share,
// started by the first test that needs it and stopped by TestMain: starting one
// per test cost each test a second or more of the two cores. Each test gets a
// browser context of its own (openBrowser), so that cookies, storage and
// permissions stay its own as in a fresh profile.
var chromium sharedBrowser

// sharedBrowser is a Chromium started on first use and started again when it has
// died (a crash, or the kernel's OOM killer on a loaded machine).
type sharedBrowser struct {
	mu     sync.Mutex
	ctx    context.Context // the browser's first chromedp context; done once the browser is gone
	cancel func()
}

// get returns the running browser's context, starting Chromium when there is
// none or the last one died.
func (b *sharedBrowser) get(t *testing.T) context.Context {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx != nil && b.ctx.Err() == nil {
		return b.ctx
	}
	if b.cancel != nil {
		b.cancel()
	}
	bin := testenv.RequireTool(t, "chromium", "chromium")
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromiumOptions(bin)...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first action starts the browser; it must not run under a timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx, b.cancel = ctx, func() { cancel(); cancelAlloc() }
	return ctx
}

// close stops the browser, if one was started.
func (b *sharedBrowser) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		b.cancel()
		b.ctx, b.cancel = nil, nil
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	chromium.close()
	pg.Stop()
	os.Exit(code)
}

// chromiumOptions start Chromium as the issue describes: headless, no sandbox
// (tests run as root), no network but loopback, a fresh profile (chromedp's
// temporary one), 1366×768 windows and a fake microphone that needs no
// permission prompt.
func chromiumOptions(bin string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		// WebRTC on loopback, with real addresses rather than mDNS names (the
		// server's ICE has no multicast DNS).
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("accept-lang", "en-US"),
	}
}

// openBrowser opens a tab on the test server in a browser context of its own in
// the shared Chromium: a fresh profile's cookies, storage and permissions.
func openBrowser(t *testing.T, e *apiEnv) *page {
	t.Helper()
	var ctx context.Context
	var cancel context.CancelFunc
	// A browser found dead is started again (chromium.get), once.
	for try := 0; ; try++ {
		ctx, cancel = chromedp.NewContext(chromium.get(t), chromedp.WithNewBrowserContext())
		err := chromedp.Do(ctx)
		if err == nil {
			break
		}
		cancel()
		if try == 1 {
			t.Fatalf("open a tab in chromium: %v", err)
		}
		t.Logf("open a tab in chromium: %v; trying again", err)
	}
	p := &page{t: t, ctx: ctx, e: e}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.log = append(p.log, m.String())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(p.log, "\n"))
		}
	})
	return p
}

// do runs steps with a deadline of 20 s.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	p.doWithin(what, 20*time.Second, steps...)
}

// doWithin runs steps with a deadline of d.
func (p *page) doWithin(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval runs JavaScript and returns its value.
func eval[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy, within the time given
// (do's 20 s used to cut a longer wait short).
func (p *page) waitJS(what, js string, within time.Duration) {
	p.t.Helper()
	p.doWithin(what, within+5*time.Second, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(within))(ctx, t)
		return chromedp.Void{}, err
	})
}

// text waits for the element sel and returns its text as shown (innerText;
// empty when not rendered). One evaluation finds and reads it: a page that
// re-renders the element between a query and a read (the wallboard's tables at
// each snapshot) cannot lose the node under it.
func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q);
		return el && { s: el.offsetWidth || el.offsetHeight || el.getClientRects().length ? el.innerText : '' }; })()`, sel)
	v, err := chromedp.Run(ctx, chromedp.Poll[struct{ S string }](js))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return v.S
}

// shot saves a screenshot of the viewport as name.png.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	// A subtest's name has a slash: the picture stays in the one directory.
	path := filepath.Join(screenshotDir(p.t), strings.ReplaceAll(p.t.Name(), "/", "-")+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// signIn fills the sign-in form and waits for the role's page.
func (p *page) signIn(username, wantPath string) {
	p.t.Helper()
	p.do("sign in as "+username,
		chromedp.Navigate(p.e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#sign-out")),
	)
	if got := eval[string](p, "location.pathname"); got != wantPath {
		p.t.Fatalf("after sign-in at %s, want %s", got, wantPath)
	}
}

func TestBrowserSalesUploadsAFileAndSeesTheReport(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.do("open login", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.shot("login")
	p.signIn("sales1", "/sales")

	// A campaign made in the editor.
	p.do("create a campaign",
		chromedp.Click(chromedp.CSS("#new-campaign")),
		chromedp.WaitVisible(chromedp.CSS("#f-name")),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Renovação"),
		chromedp.SendKeys(chromedp.CSS("#f-caller"), "+551130000000"),
	)
	// Without a WhatsApp account there are no templates: the ladder starts with its
	// two call steps, numbered from 1.
	p.waitJS("ladder steps", `document.querySelectorAll('#rungs .rung').length === 2`, 5*time.Second)
	if got := eval[string](p, `[...document.querySelectorAll('#rungs .step-h')].map(h => h.textContent).join('|')`); got != "Step 1|Step 2" {
		t.Errorf("steps %q", got)
	}
	p.shot("editor")
	p.do("save", chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("campaign listed", `[...document.querySelectorAll('#campaigns tbody th')].some(th => th.textContent === 'Renovação')`, 5*time.Second)
	list := decode[struct{ Campaigns []campaignView }](t, e.get(t, "/api/v1/campaigns", e.tokens[storage.RoleSales]), http.StatusOK)
	if len(list.Campaigns) != 1 || len(list.Campaigns[0].Ladder) != 2 || list.Campaigns[0].Ladder[1].Channel != "whatsapp_call" {
		t.Fatalf("campaigns %+v", list.Campaigns)
	}

	// A file with good rows and bad ones, large enough for the progress bar to move.
	var csv strings.Builder
	csv.WriteString("phone,name,plano\n")
	for i := range 3000 {
		fmt.Fprintf(&csv, "+55119%08d,Cliente %d,ouro\n", i, i)
	}
	csv.WriteString("not a phone,Bad,prata\n+5511900000001,Duplicate,ouro\n,Missing,ouro\n")
	file := filepath.Join(t.TempDir(), "contatos.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("upload", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{file}))
	p.waitJS("report shown", `!document.getElementById('report').hidden`, 30*time.Second)
	p.shot("report")
	if got := eval[int](p, `document.querySelectorAll('#rejections tbody tr').length`); got != 3 {
		t.Errorf("%d rejected rows shown, want 3", got)
	}
	reasons := p.text("#rejections tbody")
	for _, want := range []string{"not a valid phone number: not a phone", "number already on an earlier line of the file: +5511900000001", "no phone number"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("report %q lacks %q", reasons, want)
		}
	}
	if got := p.text("#report-summary"); !strings.Contains(got, "3,000 contacts imported, 3 rows rejected") {
		t.Errorf("summary %q", got)
	}
	if got := eval[float64](p, `document.getElementById('upload-progress').value`); got != 100 {
		t.Errorf("progress bar at %v", got)
	}
	// The rejection report downloads as CSV with the session cookie.
	// (text() drops the byte-order mark a spreadsheet needs; the bytes keep it.)
	csvBody := eval[string](p, `fetch(document.getElementById('rejections-csv').href).then(r => r.text())`)
	if !strings.HasPrefix(csvBody, "phone;name;plano;line;reason;reason code\r\nnot a phone;Bad;prata;3002;") || strings.Count(csvBody, "\n") != 4 {
		t.Errorf("rejections CSV %q", csvBody)
	}
	if bom := eval[string](p, `fetch(document.getElementById('rejections-csv').href).then(r => r.arrayBuffer()).then(b => [...new Uint8Array(b, 0, 3)].join(','))`); bom != "239,187,191" {
		t.Errorf("rejections CSV starts with bytes %s, want the UTF-8 byte-order mark", bom)
	}
	p.waitJS("progress shows contacts", `document.querySelector('#campaigns .progress-cell small')?.textContent.startsWith('3,000 contacts')`, 10*time.Second)

	// The language switch turns the page to Portuguese, and it stays so.
	p.do("switch language", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang-switch').dispatchEvent(new Event('change'))`))
	if got := p.text("#campaigns-h"); got != "Campanhas" {
		t.Errorf("heading in Portuguese: %q", got)
	}
	p.shot("pt-BR")
	p.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#campaigns-h")))
	p.waitJS("still Portuguese", `document.getElementById('campaigns-h').textContent === 'Campanhas' && document.documentElement.lang === 'pt-BR'`, 5*time.Second)

	// Another role's page is refused.
	p.do("open wallboard", chromedp.Navigate(e.srv.URL+"/supervisor"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if got := eval[string](p, `document.documentElement.dataset.page`); got != "forbidden" {
		t.Errorf("sales opened the wallboard: page %q", got)
	}
}

// holdChannel is a channel.Channel whose calls ring until hung up: it shows when the
// engine decides to dial, without a carrier.
type holdChannel struct {
	mu     sync.Mutex
	placed []time.Time
	rings  []time.Duration // each placed call's RingTimeout
}

type holdAttempt struct {
	events chan channel.AttemptEvent
	once   sync.Once
}

func (c *holdChannel) Place(ctx context.Context, req channel.PlaceRequest) (channel.Attempt, error) {
	c.mu.Lock()
	c.placed = append(c.placed, time.Now())
	c.rings = append(c.rings, req.RingTimeout)
	c.mu.Unlock()
	l := &holdAttempt{events: make(chan channel.AttemptEvent, 4)}
	l.events <- channel.AttemptEvent{Kind: channel.AttemptSetup, At: time.Now()}
	return l, nil
}

// waitFirstDial waits for the channel's first dial after a supervisor's click on
// button, which must have reached the engine within a second.
func (c *holdChannel) waitFirstDial(t *testing.T, clicked time.Time, button string) {
	t.Helper()
	for {
		if at, ok := c.firstPlaced(); ok {
			t.Logf("first dial %s after %s", at.Sub(clicked).Round(time.Millisecond), button)
			if at.Sub(clicked) > time.Second {
				t.Errorf("the engine dialled %s after %s, want within 1 s", at.Sub(clicked), button)
			}
			return
		}
		if time.Since(clicked) > 3*time.Second {
			t.Fatalf("the engine did not dial after %s", button)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *holdChannel) firstPlaced() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.placed) == 0 {
		return time.Time{}, false
	}
	return c.placed[0], true
}

// placedTimes returns when each call was placed.
func (c *holdChannel) placedTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.placed)
}

// firstRing returns the RingTimeout the first call was placed with.
func (c *holdChannel) firstRing() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rings) == 0 {
		return 0
	}
	return c.rings[0]
}

func (l *holdAttempt) Events() <-chan channel.AttemptEvent { return l.events }

func (l *holdAttempt) Hangup(ctx context.Context) error {
	l.once.Do(func() {
		l.events <- channel.AttemptEvent{Kind: channel.AttemptEnded, At: time.Now(), Outcome: campaigns.OutcomeNoAnswer}
		close(l.events)
	})
	return nil
}

// engineSlot is the server's Engine, filled in once the engine exists: the engine
// needs the database that the test server opens.
type engineSlot struct{ p atomic.Pointer[dialer.Engine] }

func (s *engineSlot) set(e *dialer.Engine)                       { s.p.Store(e) }
func (s *engineSlot) get() *dialer.Engine                        { return s.p.Load() }
func (s *engineSlot) CampaignChanged()                           { s.get().CampaignChanged() }
func (s *engineSlot) Agents() *dialer.Agents                     { return s.get().Agents() }
func (s *engineSlot) AgentAudio() *agentaudio.Hub                { return s.get().AgentAudio() }
func (s *engineSlot) Hangup(ctx context.Context, id int64) error { return s.get().Hangup(ctx, id) }
func (s *engineSlot) Disposition(ctx context.Context, id int64, cl dialer.Close) error {
	return s.get().Disposition(ctx, id, cl)
}
func (s *engineSlot) SendWhatsApp(ctx context.Context, id int64, text, key string) (storage.WAMessage, error) {
	return s.get().SendWhatsApp(ctx, id, text, key)
}
func (s *engineSlot) Subscribe(id int64) (<-chan dialer.AgentEvent, func()) {
	return s.get().Subscribe(id)
}
func (s *engineSlot) PacerViews() []dialer.PacerView { return s.get().PacerViews() }
func (s *engineSlot) Draining() bool                 { e := s.get(); return e != nil && e.Draining() }
func (s *engineSlot) InboundQueues(ctx context.Context, loc *time.Location) ([]dialer.InboundQueue, error) {
	return s.get().InboundQueues(ctx, loc)
}
func (s *engineSlot) CheckPolicy(ctx context.Context, id int64, a campaigns.ContactAction, at time.Time) (campaigns.Decision, error) {
	return s.get().CheckPolicy(ctx, id, a, at)
}
func (s *engineSlot) Preview(id int64) (dialer.PreviewOffer, bool) { return s.get().Preview(id) }
func (s *engineSlot) PreviewDial(ctx context.Context, id, contactID int64) (int64, error) {
	return s.get().PreviewDial(ctx, id, contactID)
}
func (s *engineSlot) SkipPreview(ctx context.Context, id, contactID int64, sk dialer.PreviewSkip) error {
	return s.get().SkipPreview(ctx, id, contactID, sk)
}
func (s *engineSlot) StopRinging(ctx context.Context, campaignID int64, numbers []string) int {
	return s.get().StopRinging(ctx, campaignID, numbers)
}

func (s *engineSlot) Cluster() dialer.ClusterStatus { return s.get().Cluster() }

// runEngine starts an engine over e's database with channels, quick to react;
// configure, when given, changes its configuration first.
func runEngine(t *testing.T, e *apiEnv, channels map[campaigns.Channel]channel.Channel, configure ...func(*dialer.Config)) *dialer.Engine {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	peers, err := media.NewAgentPeers(media.ICEConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := dialer.Config{Tick: 50 * time.Millisecond, Sync: 200 * time.Millisecond, RingTimeout: 5 * time.Second, AgentPeers: peers}
	for _, f := range configure {
		f(&cfg)
	}
	eng := dialer.New(e.db, channels, dialer.NewAgents(), cfg, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return eng
}

// runningCampaign creates a campaign open all day with contacts and starts it.
func runningCampaign(t *testing.T, e *apiEnv, name, mode string, ladder any, phones ...string) campaignView {
	t.Helper()
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], map[string]any{
		"name": name, "default_country": "BR", "caller_id": "+551130000000", "ladder": ladder,
		"calling_window": map[string]string{"start": "00:00", "end": "23:59"},
		"schedule":       map[string]string{"timezone": "UTC"},
		// Open every day of the year: a test run on a national holiday still dials.
		"holidays": map[string]any{"national": false},
	}), http.StatusCreated)
	decode[any](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor], map[string]any{"mode": mode}), http.StatusOK)
	e.importCSV(t, c.ID, "phone,name,timezone\n"+strings.Join(phones, ",Cliente,UTC\n")+",Cliente,UTC\n")
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)
	decode[any](t, e.action(t, c.ID, "start", storage.RoleSupervisor), http.StatusOK)
	return c
}

// healthChannel is a channel that says whether it is up (channel.Health), as the
// SIP channel does from its trunks' circuits.
type healthChannel struct {
	channel.Channel
	down atomic.Bool
}

func (c *healthChannel) Up() bool { return !c.down.Load() }

func TestBrowserSupervisorChangesPacingAndTheEngineUsesIt(t *testing.T) {
	ch := &holdChannel{}
	sipCh := &healthChannel{Channel: ch}
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: sipCh}))
	c := runningCampaign(t, e, "Pacing", "preview", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"+5511987650001", "+5511987650002")
	// A ready agent: in preview mode the engine still places no call.
	agent := e.tokens[storage.RoleAgent]
	decode[any](t, e.send(t, "POST", "/api/v1/agent/login", agent, map[string]any{}), http.StatusOK)
	decode[any](t, e.send(t, "POST", "/api/v1/agent/ready", agent, map[string]any{}), http.StatusOK)

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("campaign card", fmt.Sprintf(`document.getElementById('mode-%s')?.value === 'preview'`, c.ID), 10*time.Second)
	p.waitJS("agent row", `document.querySelector('#agents tbody tr .badge')?.dataset.state === 'ready'`, 5*time.Second)
	p.shot("wallboard")
	time.Sleep(500 * time.Millisecond)
	if _, ok := ch.firstPlaced(); ok {
		t.Fatal("the engine dialled in preview mode")
	}

	// The ring timeout starts automatic: an empty field that says so.
	if got := eval[string](p, fmt.Sprintf(`(() => { const r = document.getElementById('ring-%s'); return r.value + '|' + r.placeholder; })()`, c.ID)); got != "|auto" {
		t.Errorf("ring timeout field %q, want empty with the placeholder auto", got)
	}
	// The pacer's line: nothing learned outside predictive mode, and calls would ring for
	// the engine's 5 s.
	pacerLine := "#pacer-" + c.ID + "-sip"
	p.waitJS("pacer line", fmt.Sprintf(`document.querySelector(%q)?.textContent.includes('ring default 5 s')`, pacerLine), 5*time.Second)
	if got, want := p.text(pacerLine), "SIP call: answer — · risk accepted — · ring default 5 s · talk —"; got != want {
		t.Errorf("pacer line %q, want %q", got, want)
	}
	p.do("choose progressive", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const s = document.getElementById('mode-%s'); s.value = 'progressive'; s.dispatchEvent(new Event('input', {bubbles: true})); })()`, c.ID)))
	// A fixed ring timeout longer than this engine's 5 s default: fixed values are used as they are.
	p.do("set ring timeout", chromedp.SendKeys(chromedp.CSS("#ring-"+c.ID), "12"))
	clicked := time.Now()
	p.do("apply", chromedp.Click(chromedp.CSS("#apply-"+c.ID)))
	// The settings in force change within a second…
	for {
		pc := decode[pacingView](t, e.get(t, "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor]), http.StatusOK)
		if pc.Mode == "progressive" {
			if pc.RingTimeout != "12s" {
				t.Errorf("stored ring_timeout %q, want 12s", pc.RingTimeout)
			}
			break
		}
		if time.Since(clicked) > time.Second {
			t.Fatalf("pacing still %+v a second after Apply", pc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// …and the engine's next decision uses them: it dials for the ready agent.
	ch.waitFirstDial(t, clicked, "Apply")
	if got := ch.firstRing(); got != 12*time.Second {
		t.Errorf("the engine placed the call with a %v ring timeout, want the 12s set on the page", got)
	}
	// The change shows in the audit log on the page, and the status line.
	p.waitJS("audit entry", `[...document.querySelectorAll('#audit li[data-action="campaign.pacing"]')].some(li => li.textContent.includes('User supervisor1 (Supervisor) changed the pacing of campaign Pacing: mode Preview → Progressive'))`, 3*time.Second)
	p.waitJS("card shows mode", fmt.Sprintf(`document.getElementById('mode-%s').value === 'progressive'`, c.ID), 3*time.Second)
	p.waitJS("card shows ring timeout", fmt.Sprintf(`document.getElementById('ring-%s').value === '12'`, c.ID), 3*time.Second)
	p.waitJS("pacer line shows the fixed ring timeout", fmt.Sprintf(`document.querySelector(%q).textContent.includes('ring fixed 12 s')`, pacerLine), 3*time.Second)

	// Emptying the field makes the ring timeout automatic again.
	p.do("clear ring timeout", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const r = document.getElementById('ring-%s'); r.value = ''; r.dispatchEvent(new Event('input', {bubbles: true})); })()`, c.ID)))
	p.do("apply automatic ring", chromedp.Click(chromedp.CSS("#apply-"+c.ID)))
	p.waitJS("saved", `document.getElementById('sup-status').textContent.includes('Ring timeout (s) auto')`, 3*time.Second)
	p.waitJS("pacer line shows the engine's ring timeout again", fmt.Sprintf(`document.querySelector(%q).textContent.includes('ring default 5 s')`, pacerLine), 3*time.Second)
	if pc := decode[pacingView](t, e.get(t, "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor]), http.StatusOK); pc.RingTimeout != "0s" || pc.Mode != "progressive" {
		t.Errorf("pacing after clearing the ring timeout = %+v, want progressive with ring_timeout 0s", pc)
	}
	// A ring timeout set elsewhere (another supervisor, the API) shows on the card.
	decode[pacingView](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID+"/pacing", e.tokens[storage.RoleSupervisor], map[string]any{"ring_timeout": "1m30s"}), http.StatusOK)
	p.do("leave the form", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	p.waitJS("card shows the stored ring timeout", fmt.Sprintf(`document.getElementById('ring-%s').value === '90'`, c.ID), 5*time.Second)

	// Pause from the wallboard.
	p.do("pause", chromedp.Click(chromedp.CSS("#toggle-"+c.ID)))
	p.waitJS("paused", fmt.Sprintf(`document.querySelector('#campaign-%s .badge').dataset.state === 'paused'`, c.ID), 3*time.Second)
	// Every trunk's circuit opens: the pacer's line says SIP is down, and that new dials
	// are forecast on it all the same, since the ladder has no other call channel.
	sipCh.down.Store(true)
	p.waitJS("pacer line shows SIP down", fmt.Sprintf(`document.querySelector(%q)?.dataset.down === 'true'`, pacerLine), 5*time.Second)
	if got, want := p.text(pacerLine), "SIP call: down: its contacts go to the next channel · new dials forecast here · answer — · risk accepted — · ring fixed 90 s · talk —"; got != want {
		t.Errorf("pacer line with SIP down %q, want %q", got, want)
	}
	// Trunk control: not wired on this server, so the API says 501 and the page shows it.
	p.shot("after-changes")
	if got := eval[string](p, `document.getElementById('whatsapp').textContent`); got != "Not configured" {
		t.Errorf("WhatsApp health %q", got)
	}
}

func TestBrowserAgentTakesACallFromSippAndDispositionsIt(t *testing.T) {
	t.Parallel()
	// The carrier streams audio once it answers; the agent's fake microphone talks back.
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	slot := &engineSlot{}
	var trunks atomic.Pointer[sip.Originator]
	e := newUIEnv(t, Config{Engine: slot, TrunkStatus: func() any {
		if o := trunks.Load(); o != nil {
			return o.Trunks()
		}
		return []any{}
	}})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := sip.New(context.Background(), sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr, KeepaliveInterval: sip.KeepaliveEvery(0)}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	trunks.Store(o)
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{campaigns.ChannelSIP: sipchannel.New(o)}))
	c := runningCampaign(t, e, "Agent call", "progressive", []map[string]any{{"channel": "sip", "max_attempts": 1, "retry_delay": "1h"}},
		"+5511987650009")

	p := openBrowser(t, e)
	p.watchPeerConnections()
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("paused after login", `document.getElementById('state').dataset.state === 'paused'`, 5*time.Second)
	// The browser leg: the fake microphone is granted and the server answers the
	// page's offer; the agent's audio is nailed up before any call, a PCMU and an
	// Opus path.
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected' && !document.getElementById('mute').disabled`, 15*time.Second)
	p.wantPaths()
	agentID := e.users[storage.RoleAgent].ID
	for a, _ := slot.get().Agents().Get(agentID); !a.Audio; a, _ = slot.get().Agents().Get(agentID) {
		time.Sleep(20 * time.Millisecond)
	}
	p.shot("logged-in")
	p.wantSending("no call yet", 0)
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))

	p.waitJS("screen-pop", `!document.getElementById('screen-pop').hidden && document.getElementById('state').dataset.state === 'on_call'`, 20*time.Second)
	if got := p.text("#contact-phone"); got != "(11) 98765-0009" {
		t.Errorf("screen-pop phone %q", got)
	}
	if got := p.text("#call-campaign"); got != "Agent call" {
		t.Errorf("screen-pop campaign %q", got)
	}
	if n := eval[int](p, `document.querySelectorAll('#history tbody tr').length`); n != 1 {
		t.Errorf("%d attempts in the history, want 1", n)
	}
	// Audio both ways through the bridge: sipp's tone to the browser, the browser's
	// microphone to sipp.
	var st media.CallStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, _ = slot.get().AgentAudio().Stats(agentID); st.ToAgent.Packets >= 25 && st.ToCustomer.Packets >= 25 {
			break
		}
	}
	if st.ToAgent.Packets < 25 || st.ToCustomer.Packets < 25 {
		t.Errorf("bridge forwarded %d packets from sipp to the browser and %d from the browser to sipp, want ≥ 25 each",
			st.ToAgent.Packets, st.ToCustomer.Packets)
	}
	// The browser itself heard sipp's PCMU on its PCMU path, and nothing on Opus,
	// and sends its microphone on the PCMU path alone.
	p.wantHeard("sipp", "audio/PCMU", "audio/opus")
	p.wantSending("a SIP call", 0)
	p.shot("screen-pop")
	p.do("hang up", chromedp.Click(chromedp.CSS("#hangup")))
	p.waitJS("disposition form", `!document.getElementById('dispo').hidden && document.querySelectorAll('#dispo-codes input').length > 0`, 10*time.Second)
	p.do("choose callback", chromedp.Click(chromedp.CSS("#code-callback")))
	p.waitJS("callback fields", `!document.getElementById('callback-fields').hidden`, 3*time.Second)
	p.do("choose sale", chromedp.Click(chromedp.CSS("#code-sale")))
	p.shot("disposition")
	p.do("save disposition", chromedp.Click(chromedp.CSS("#dispo-submit")))
	p.waitJS("ready again", `document.getElementById('state').dataset.state === 'ready' && document.getElementById('dispo').hidden`, 5*time.Second)
	p.shot("after-disposition")

	// The disposition is stored on the call's attempt.
	contacts := e.contacts(t, c.ID, "")
	if len(contacts.Contacts) != 1 {
		t.Fatalf("contacts %+v", contacts)
	}
	var cid int64
	fmt.Sscan(contacts.Contacts[0].ID, &cid)
	attempts, err := e.db.ListAttempts(context.Background(), cid)
	if err != nil || len(attempts) != 1 {
		t.Fatalf("attempts %+v %v", attempts, err)
	}
	if a := attempts[0]; a.Disposition != "sale" || a.Outcome != string(campaigns.OutcomeConnected) || a.HangupBy != "agent" || a.AgentID != e.users[storage.RoleAgent].ID {
		t.Errorf("attempt %+v", a)
	}
	carrier.Wait(t, 10*time.Second)
}
