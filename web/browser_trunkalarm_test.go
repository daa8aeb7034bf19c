package web

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// TestBrowserTrunkAlarm: a carrier whose prepaid credit is gone answers 402
// (sipp playing it); the supervisor's trunk table shows the trunk paused by the
// carrier with its alarm, naming the refusal, in English and Portuguese.
func TestBrowserTrunkAlarm(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	carrier := sipptest.Start(t, "payment-required.xml", sipptest.Options{})
	o, err := sip.New(ctx, sip.Config{Trunks: []sip.TrunkConfig{{Name: "prepaid", Address: carrier.Addr, CallerID: "+551130000000"}},
		KeepaliveInterval: sip.Duration(time.Hour)}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	e := newUIEnv(t, Config{TrunkControl: o, TrunkStatus: func() any { return o.Trunks() }})
	call, err := o.Dial(ctx, sip.DialRequest{To: "+5511987650301"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if r, err := call.Wait(wctx); err != nil || r.Status != 402 {
		t.Fatalf("call: %+v %v, want 402", r, err)
	}
	carrier.Wait(t, 10*time.Second)

	p := openBrowser(t, e)
	p.signIn("supervisor1", "/supervisor")
	p.waitJS("trunk held with its alarm", `document.querySelector('#trunks tbody .badge')?.dataset.state === 'held' &&
		document.querySelector('#trunks tbody .trunk-down')?.dataset.alarm === 'true'`, 10*time.Second)
	if got, want := p.text("#trunks tbody .badge"), "paused by the carrier"; got != want {
		t.Errorf("trunk badge %q, want %q", got, want)
	}
	if got := p.text("#trunks tbody .trunk-down"); !strings.Contains(got, "the carrier refuses calls: 402 Payment Required") ||
		!strings.Contains(got, "paused by the carrier until") {
		t.Errorf("trunk table %q, want the alarm and the hold", got)
	}
	p.do("switch to Portuguese", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"))
	eval[bool](p, `(document.getElementById('lang-switch').dispatchEvent(new Event('change')), true)`)
	p.waitJS("Portuguese", `document.querySelector('#trunks tbody .badge')?.textContent === 'pausado pela operadora'`, 5*time.Second)
	if got := p.text("#trunks tbody .trunk-down"); !strings.Contains(got, "a operadora recusa as ligações: 402 Payment Required") {
		t.Errorf("trunk table in Portuguese %q, want the alarm", got)
	}
	p.shot("trunk-alarm-pt-BR")
}
