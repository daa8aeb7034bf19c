package web

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserFailoverBanner: the carrier simulator's link is cut; within
// seconds the supervisor's page says at its top that the trunk is down, since
// when, how it was found and that calls go to WhatsApp, with the people caught
// moved to WhatsApp and the conversations resumed, counted live from storage;
// the trunk table says since when it is down. The link comes back: the banner
// says the trunk is back and how long it was down. In English and Portuguese,
// with screenshots of each.
func TestBrowserFailoverBanner(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	link, err := carrier.Start(ctx, carrier.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	var server atomic.Pointer[Server] // the originator starts before the server it tells
	o, err := sip.New(ctx, sip.Config{
		Trunks:        []sip.TrunkConfig{{Name: "carrier-sim", Address: link.Addr()}},
		InviteTimeout: sip.Duration(time.Second), ProbeInterval: sip.Duration(500 * time.Millisecond),
		OnTrunkChange: func(st sip.TrunkStatus) {
			if s := server.Load(); s != nil {
				s.TrunkChanged(st)
			}
		},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	// WhatsApp configured (templates known): the banner says the calls go there.
	e := newUIEnv(t, Config{TrunkControl: o, TrunkStatus: func() any { return o.Trunks() }, Templates: noTemplates{}})
	server.Store(e.server)

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("trunk up", `document.querySelector('#trunks tbody .badge')?.dataset.state === 'in_service'`, 10*time.Second)
	if !eval[bool](p, `document.getElementById('failover').hidden`) {
		t.Fatal("failover banner shown while the trunk is up")
	}

	cutAt := time.Now()
	link.Cut(true)
	p.waitJS("banner: trunk down", `document.querySelector('#failover .fo[data-state="down"]') !== null`, 5*time.Second)
	st := o.Trunks()[0]
	if st.DownSince.IsZero() {
		t.Fatalf("banner shown, trunk not down: %+v", st)
	}
	t.Logf("trunk down +%s after the cut, found in %.2f s (%s)", st.DownSince.Sub(cutAt), st.LastDetection, st.Sign)
	// Open, or half-open while a recovery probe is out: down either way.
	if got := p.text("#trunks tbody .badge"); got != "Down" && got != "Testing whether it is back" {
		t.Errorf("trunk badge %q, want it to say down", got)
	}
	downAt := eval[string](p, `new Date(`+strconv.FormatInt(st.DownSince.UnixMilli(), 10)+`).toLocaleTimeString('en', {hour: '2-digit', minute: '2-digit'})`)
	if got, want := p.text("#failover h2"), "SIP trunk carrier-sim down since "+downAt+" — WhatsApp taking over"; got != want {
		t.Errorf("banner heading %q, want %q", got, want)
	}
	if got, want := p.text("#failover .fo-lead"), "Calls are going to WhatsApp — nothing to do."; got != want {
		t.Errorf("banner lead %q, want %q", got, want)
	}
	wantDetail := "Down since " + eval[string](p, `new Date(`+strconv.FormatInt(st.DownSince.UnixMilli(), 10)+`).toLocaleTimeString('en')`) +
		" · found in " + strconv.FormatFloat(float64(int(st.LastDetection*10+0.5))/10, 'f', -1, 64) + " s: "
	if got := p.text("#failover .fo-detail"); len(got) <= len(wantDetail) || got[:len(wantDetail)] != wantDetail {
		t.Errorf("banner detail %q, want it to start %q and name the sign", got, wantDetail)
	}
	if got := p.text("#trunks tbody .trunk-down"); got == "—" || got == "" {
		t.Errorf("trunk table's down since %q, want the time", got)
	}

	// Two contacts caught: one moved to WhatsApp, one conversation resumed there.
	c := e.createCampaign(t, "Renovação")
	e.importCSV(t, c.ID, "phone\n+5511987650201\n+5511987650202\n")
	cid, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := e.db.ListContacts(ctx, cid, storage.ContactFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("contacts %v %v", list, err)
	}
	// The ladder's trunk_down row: on to the WhatsApp call rung, at once.
	toWhatsApp := func(_ campaigns.Contact, pos campaigns.Position) (campaigns.Position, error) {
		pos.Status, pos.Rung, pos.NextAt = campaigns.ContactPending, 1, time.Now()
		return pos, nil
	}
	caught := func(contactID int64, outcome campaigns.Outcome, hangupBy string) storage.Attempt {
		a, err := e.db.StartAttempt(ctx, contactID, campaigns.ChannelSIP, 0)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a.State, a.Outcome, a.HangupBy, a.EndAt = "ended", string(outcome), hangupBy, &now
		if outcome == campaigns.OutcomeConnected {
			a.ConnectAt = &now
		}
		var move storage.MoveFunc
		if outcome == campaigns.OutcomeTrunkDown {
			move = toWhatsApp
		}
		if err := e.db.FinishAttempt(ctx, a, move); err != nil {
			t.Fatal(err)
		}
		return a
	}
	caught(list[0].ID, campaigns.OutcomeTrunkDown, "")
	if _, err := e.db.StartAttempt(ctx, list[0].ID, campaigns.ChannelWhatsAppCall, 1); err != nil {
		t.Fatal(err)
	}
	talk := caught(list[1].ID, campaigns.OutcomeConnected, "trunk")
	back, err := e.db.StartResumeAttempt(ctx, talk, campaigns.ChannelWhatsAppCall, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	back.State, back.AnswerAt = "answered", &now
	if err := e.db.UpdateAttempt(ctx, back); err != nil {
		t.Fatal(err)
	}
	p.waitJS("live counts", `document.querySelector('#failover .fo-moved')?.textContent === '2' && document.querySelector('#failover .fo-resumed')?.textContent === '1'`, 5*time.Second)
	if got, want := p.text("#failover .fo-counts"), "2 of 2 calls caught moved to WhatsApp\n1 conversation resumed on WhatsApp with its agent"; got != want {
		t.Errorf("banner counts %q, want %q", got, want)
	}
	p.shot("down-en")
	p.do("switch to Portuguese", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"))
	eval[bool](p, `(document.getElementById('lang-switch').dispatchEvent(new Event('change')), true)`)
	// The banner is drawn anew on each wallboard update, so a node read apart
	// from its check may be gone: each text is checked within one evaluation.
	p.waitJS("banner in Portuguese", `document.querySelector('#failover h2')?.textContent.startsWith('Tronco SIP carrier-sim fora do ar desde ') && document.querySelector('#failover h2').textContent.endsWith(' — WhatsApp assumindo')`, 5*time.Second)
	p.waitJS("banner lead in Portuguese", `document.querySelector('#failover .fo-lead')?.textContent === 'As ligações estão indo pelo WhatsApp — nada a fazer.'`, 5*time.Second)
	p.shot("down-pt-BR")

	link.Cut(false)
	p.waitJS("banner: trunk back, for how long it was down", `(() => {
		const h = document.querySelector('#failover .fo[data-state="recovered"] h2')?.textContent || '';
		return /^Tronco carrier-sim voltou após \S*\d/.test(h);
	})()`, 10*time.Second)
	p.shot("back-pt-BR")
	p.do("switch to English", chromedp.SetValue(chromedp.CSS("#lang-switch"), "en"))
	eval[bool](p, `(document.getElementById('lang-switch').dispatchEvent(new Event('change')), true)`)
	p.waitJS("back in English", `document.querySelector('#failover h2')?.textContent.startsWith('Trunk carrier-sim is back after ')`, 5*time.Second)
	p.shot("back-en")
}
