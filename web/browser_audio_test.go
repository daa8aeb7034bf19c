package web

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/storage"
)

// watchPeerConnections makes every RTCPeerConnection the page creates reachable
// as window.__pcs, so that a test can read its negotiation and statistics: the
// agent page keeps its own in a module.
func (p *page) watchPeerConnections() {
	p.t.Helper()
	const spy = `(() => {
		const Native = window.RTCPeerConnection;
		window.__pcs = [];
		window.RTCPeerConnection = class extends Native {
			constructor(...args) { super(...args); window.__pcs.push(this); }
		};
	})();`
	p.do("watch peer connections", func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: spy})
		return chromedp.Void{}, err
	})
}

// audioPaths returns the codecs the page's audio session negotiated, one entry
// per transceiver ("audio/PCMU", "audio/opus"; several codecs joined by commas).
func (p *page) audioPaths() []string {
	p.t.Helper()
	return eval[[]string](p, `window.__pcs.at(-1).getTransceivers().map((t) =>
		t.receiver.getParameters().codecs.map((c) => c.mimeType).join(','))`)
}

// packetsHeard returns the RTP packets the page's audio session received so far,
// by codec MIME type, from the browser's own statistics.
func (p *page) packetsHeard() map[string]float64 {
	p.t.Helper()
	return eval[map[string]float64](p, `(async () => {
		const stats = await window.__pcs.at(-1).getStats();
		const heard = {};
		stats.forEach((s) => {
			if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
			const mime = stats.get(s.codecId)?.mimeType || 'unknown';
			heard[mime] = (heard[mime] || 0) + (s.packetsReceived || 0);
		});
		return heard;
	})()`)
}

// wantHeard waits up to 10 s for the browser to have heard at least 25 packets of
// from on its path of codec, and checks none reached its path of other.
func (p *page) wantHeard(from, codec, other string) {
	p.t.Helper()
	var heard map[string]float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if heard = p.packetsHeard(); heard[codec] >= 25 {
			break
		}
	}
	if heard[codec] < 25 || heard[other] != 0 {
		p.t.Errorf("the browser heard %v of %s, want ≥ 25 %s packets and no %s", heard, from, codec, other)
	}
}

// bytesSent returns what the page's audio session sent so far on each of its
// transceivers (outbound-rtp bytesSent and headerBytesSent: RTP payloads and
// headers, told apart by mid), in transceiver order.
func (p *page) bytesSent() []float64 {
	p.t.Helper()
	return eval[[]float64](p, `(async () => {
		const pc = window.__pcs.at(-1);
		const trs = pc.getTransceivers();
		const sent = trs.map(() => 0);
		(await pc.getStats()).forEach((s) => {
			const i = trs.findIndex((t) => t.mid === s.mid);
			if (s.type === 'outbound-rtp' && s.kind === 'audio' && i >= 0) sent[i] += (s.bytesSent || 0) + (s.headerBytesSent || 0);
		});
		return sent;
	})()`)
}

// wantSending waits up to 10 s for the browser to send its microphone on audio
// path want alone: over 2 s, that path's bytesSent grows and no other's does.
// It logs the upload it measured then, all paths together, in kbit/s of RTP
// (SRTP, UDP and IP overheads not counted).
func (p *page) wantSending(when string, want int) {
	p.t.Helper()
	const window = 2 * time.Second
	var rates []float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		before := p.bytesSent()
		time.Sleep(window)
		after := p.bytesSent()
		if len(before) != len(after) {
			continue
		}
		rates = make([]float64, len(after))
		alone := len(after) > want
		for i := range after {
			rates[i] = (after[i] - before[i]) * 8 / window.Seconds() / 1000
			if (i == want) != (rates[i] > 0) {
				alone = false
			}
		}
		if alone {
			total := 0.0
			for _, r := range rates {
				total += r
			}
			p.t.Logf("%s: the browser sends %.1f kbit/s of audio (by path %.1f)", when, total, rates)
			return
		}
	}
	p.t.Errorf("%s: the browser's audio upload by path %.1f kbit/s, want path %d alone", when, rates, want)
}

// wantPaths fails the test unless the page's session carries a PCMU and an Opus
// path, each with its codec alone.
func (p *page) wantPaths() {
	p.t.Helper()
	if got := p.audioPaths(); len(got) != 2 || !strings.EqualFold(got[0], "audio/PCMU") || !strings.EqualFold(got[1], "audio/opus") {
		p.t.Fatalf("the agent page's audio paths negotiated %q, want PCMU and Opus alone each", got)
	}
}

// TestBrowserAgentHearsAWhatsAppCallInOpus: Chromium's agent page nails up a PCMU
// and an Opus path; a WhatsApp call (the Cloud API emulator's user, Opus) is
// bridged to the Opus path, where the browser's own statistics count its
// packets as Opus, none reaching the PCMU path, and the agent's microphone
// reaches the WhatsApp user: the browser, which sent it on the PCMU path alone
// until then, sends it on the Opus path alone.
func TestBrowserAgentHearsAWhatsAppCallInOpus(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	waMedia, err := whatsapp.NewMedia(whatsapp.MediaConfig{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	emu, client := startWhatsApp(t, log, nil, whatsapp.WithMedia(waMedia), whatsapp.WithLogger(log))
	slot := &engineSlot{}
	e := newUIEnv(t, Config{Engine: slot})
	slot.set(runEngine(t, e, map[campaigns.Channel]channel.Channel{
		campaigns.ChannelWhatsAppCall: wachannel.NewCalls(client, e.db, "Podemos ligar?"),
	}, func(c *dialer.Config) { c.WhatsApp = client }))
	hooks, err := whatsapp.NewWebhookHandler(whatsapp.WebhookConfig{AppSecret: "secret", VerifyToken: "v"}, slot.get().WhatsAppSink(), log)
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)
	emu.SetCallbackURL(hookSrv.URL)
	const phone = "+5511987650066"
	emu.Script(strings.TrimPrefix(phone, "+"), emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 100 * time.Millisecond})
	runningCampaign(t, e, "Opus", "progressive", []map[string]any{{"channel": "whatsapp_call", "max_attempts": 1}}, phone)

	p := openBrowser(t, e)
	p.watchPeerConnections()
	p.signIn("agent1", "/agent")
	p.waitJS("campaigns listed", `document.querySelectorAll('#campaign-list input[name=campaign]').length === 1`, 5*time.Second)
	p.do("log in to campaigns", chromedp.Click(chromedp.CSS("#agent-login")))
	p.waitJS("audio connected", `document.getElementById('audio-status').dataset.state === 'connected'`, 15*time.Second)
	p.wantPaths()
	agentID := e.users[storage.RoleAgent].ID
	for a, _ := slot.get().Agents().Get(agentID); !a.Audio; a, _ = slot.get().Agents().Get(agentID) {
		time.Sleep(20 * time.Millisecond)
	}
	// The microphone goes up once, on the PCMU path, until a call moves it.
	p.wantSending("no call yet", 0)
	p.do("ready", chromedp.Click(chromedp.CSS("#ready")))
	p.waitJS("screen-pop", `!document.getElementById('screen-pop').hidden && document.getElementById('state').dataset.state === 'on_call'`, 20*time.Second)

	p.wantHeard("the WhatsApp user", "audio/opus", "audio/PCMU")
	p.wantSending("a WhatsApp call", 1)
	var user emulator.CallStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if calls := emu.Calls(); len(calls) == 1 {
			if user = calls[0]; user.PacketsReceived >= 25 {
				break
			}
		}
	}
	if !user.Accepted || user.PacketsReceived < 25 {
		t.Errorf("the WhatsApp user: %+v, want the call accepted and ≥ 25 packets of the agent", user)
	}
	p.shot("whatsapp-call")
}
