package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sip/carrier"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/web"
)

// The demo campaign's template rung, which the emulated WABA holds approved.
const (
	demoTemplate         = "renovacao_plano"
	demoTemplateLanguage = "pt_BR"
	demoTrunk            = "carrier-sim"
	// demoExternalTrunk names the trunk --trunk points at.
	demoExternalTrunk = "external"
)

// demoWorld is what the demo simulates around Turbina: the carrier behind the SIP
// trunk, and Meta's Cloud API with the WhatsApp users behind it. Either may be
// absent (nil): the trunk is then an external carrier, or WhatsApp is off.
type demoWorld struct {
	carrier *carrier.Carrier
	emu     *emulator.Emulator
	log     *slog.Logger

	closeOnce sync.Once

	mu     sync.Mutex
	isCut  bool
	cutLog []cutEvent
}

// cutEvent is one use of the cut-the-trunk control.
type cutEvent struct {
	At  time.Time `json:"at"`
	Cut bool      `json:"cut"`
}

// startDemoWorld starts the carrier simulator and the WhatsApp emulator on loopback
// and points cfg's SIP trunk and WhatsApp account at them. With opts.trunk the SIP
// trunk is that external carrier instead (w.carrier stays nil); with
// opts.noWhatsApp there is no emulator (w.emu stays nil) and the WhatsApp rungs are
// skipped.
func startDemoWorld(ctx context.Context, cfg *config, opts demoOptions, log *slog.Logger) (*demoWorld, error) {
	w := &demoWorld{log: log}
	trunk := sip.TrunkConfig{Name: demoTrunk, Address: opts.trunk}
	if opts.trunk == "" {
		c, err := carrier.Start(ctx, carrier.Config{Seed: opts.seed, Logger: log})
		if err != nil {
			return nil, err
		}
		w.carrier = c
		trunk.Address = c.Addr()
	} else {
		trunk.Name = demoExternalTrunk
	}
	cfg.SIP = sip.Config{Trunks: []sip.TrunkConfig{trunk}}
	if w.carrier != nil {
		// A cut of the simulated carrier is noticed within a few seconds and its
		// return as quickly; an external carrier gets the usual timeouts.
		cfg.SIP.InviteTimeout = sip.Duration(time.Second)
		cfg.SIP.ProbeInterval = sip.Duration(2 * time.Second)
	}
	if !opts.noWhatsApp {
		if err := w.startWhatsApp(ctx, cfg); err != nil {
			w.close()
			return nil, err
		}
	}
	cfg.WebRTC.LoopbackOnly = true
	if cfg.Engine.RingTimeout <= 0 {
		cfg.Engine.RingTimeout = sip.Duration(15 * time.Second)
	}
	return w, nil
}

// startWhatsApp starts the WhatsApp emulator and points cfg's account at it.
func (w *demoWorld) startWhatsApp(ctx context.Context, cfg *config) error {
	// The emulator is the account: its token and secrets are new on every run.
	var secrets [3]string
	var err error
	for i := range secrets {
		if secrets[i], err = web.NewToken(); err != nil {
			return err
		}
	}
	token, appSecret, verify := secrets[0], secrets[1], secrets[2]
	w.emu, err = emulator.Start(ctx, emulator.Config{AccessToken: token, AppSecret: appSecret, Logger: w.log,
		Templates: []emulator.Template{{Name: demoTemplate, Language: demoTemplateLanguage, Status: "APPROVED", Category: "UTILITY",
			Body: "Olá {{1}}, seu plano {{2}} vence em {{3}}. Responda RENOVAR para mantê-lo."}}})
	if err != nil {
		return err
	}
	cfg.WhatsApp = whatsappConfig{
		Config: whatsapp.Config{BaseURL: w.emu.URL(), AccessToken: token, PhoneNumberID: w.emu.PhoneNumberID(), WABAID: w.emu.WABAID(),
			MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		Webhook:        whatsapp.WebhookConfig{AppSecret: appSecret, VerifyToken: verify},
		Media:          whatsapp.MediaConfig{LoopbackOnly: true},
		PermissionText: "Podemos ligar para você pelo WhatsApp sobre a renovação do seu plano?",
	}
	return nil
}

// setWebhookURL tells the emulator where the demo server takes webhooks.
func (w *demoWorld) setWebhookURL(u string) {
	if w.emu != nil {
		w.emu.SetCallbackURL(u)
	}
}

// scriptWhatsApp gives each contact's WhatsApp user a behaviour: most accept the
// call after 1–3 s, some decline it, some let it ring.
func (w *demoWorld) scriptWhatsApp(contacts []campaigns.Contact, seed uint64) {
	if w.emu == nil {
		return
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	for _, c := range contacts {
		b := emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: between(time.Second, 3*time.Second)}
		switch x := rng.Float64(); {
		case x < 0.10:
			b = emulator.Behaviour{Call: emulator.CallReject, AnswerAfter: between(2*time.Second, 5*time.Second)}
		case x < 0.18:
			b = emulator.Behaviour{Call: emulator.CallNoAnswer, RingTimeout: 30 * time.Second}
		}
		w.emu.Script(c.WhatsAppNumber(), b)
	}
}

// cut cuts the carrier's link (or restores it) and notes when; without the
// simulated carrier it does nothing.
func (w *demoWorld) cut(cut bool) {
	if w.carrier == nil {
		return
	}
	w.mu.Lock()
	now := time.Now()
	w.isCut = cut
	w.cutLog = append(w.cutLog, cutEvent{At: now, Cut: cut})
	w.mu.Unlock()
	w.carrier.Cut(cut)
	if cut {
		w.log.Warn("demo: the SIP trunk's carrier is cut; calls move to the WhatsApp rung")
	} else {
		w.log.Info("demo: the SIP trunk's carrier is back")
	}
}

// firstCut returns when the carrier was first cut, if it was.
func (w *demoWorld) firstCut() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.cutLog {
		if e.Cut {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// controls serves the demo's controls, outside the API:
//
//	GET  /demo/cut-trunk                  the carrier's state and counters
//	POST /demo/cut-trunk {"cut":true}     cut the carrier ({"cut":false} restores it)
func (w *demoWorld) controls() http.Handler {
	mux := http.NewServeMux()
	state := func(rw http.ResponseWriter) {
		w.mu.Lock()
		body := map[string]any{"cut": w.isCut, "events": append([]cutEvent{}, w.cutLog...), "carrier": w.carrierStats()}
		w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(body)
	}
	mux.HandleFunc("GET /demo/cut-trunk", func(rw http.ResponseWriter, r *http.Request) { state(rw) })
	mux.HandleFunc("POST /demo/cut-trunk", func(rw http.ResponseWriter, r *http.Request) {
		in := struct {
			Cut *bool `json:"cut"`
		}{}
		if err := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 1024)).Decode(&in); err != nil || in.Cut == nil {
			http.Error(rw, `want {"cut":true} or {"cut":false}`, http.StatusBadRequest)
			return
		}
		if w.carrier == nil {
			http.Error(rw, "the trunk is an external carrier (--trunk): nothing to cut", http.StatusConflict)
			return
		}
		w.cut(*in.Cut)
		state(rw)
	})
	mux.HandleFunc("/demo/", func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, fmt.Sprintf("no such demo control: %s %s", r.Method, r.URL.Path), http.StatusNotFound)
	})
	return mux
}

// close stops the emulator and the carrier; it may be called more than once.
func (w *demoWorld) close() {
	w.closeOnce.Do(func() {
		if w.emu != nil {
			w.emu.Close()
		}
		if w.carrier != nil {
			w.carrier.Close()
		}
	})
}

// carrierStats returns what the simulated carrier saw (zeros without one).
func (w *demoWorld) carrierStats() carrier.Stats {
	if w.carrier == nil {
		return carrier.Stats{}
	}
	return w.carrier.Stats()
}

// carrierCut reports whether the simulated carrier is cut.
func (w *demoWorld) carrierCut() bool { return w.carrier != nil && w.carrier.IsCut() }
