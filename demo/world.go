package demo

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

// WorldOptions say what world to simulate.
type WorldOptions struct {
	// Trunk is an external carrier's host:port to dial instead of the simulated
	// one; it must be on a loopback address (CheckLoopbackTrunk).
	Trunk string
	// MaxCPS is the external trunk's max_cps, as a carrier's contract states it
	// (0: unlimited); it needs Trunk.
	MaxCPS float64
	// NoWhatsApp leaves the WhatsApp emulator out: the WhatsApp rungs are skipped.
	NoWhatsApp bool
	// Seed seeds the simulated carrier's and WhatsApp users' random draws.
	Seed uint64
	// Logger receives the world's own log lines.
	Logger *slog.Logger
}

// WhatsAppAccount is the WhatsApp Business account the emulator plays: what the
// server's whatsapp configuration must hold to use it.
type WhatsAppAccount struct {
	Client         whatsapp.Config
	Webhook        whatsapp.WebhookConfig
	Media          whatsapp.MediaConfig
	PermissionText string
}

// The demo campaign's template rung, which the emulated WABA holds approved.
const (
	templateName     = "renovacao_plano"
	templateLanguage = "pt_BR"
	simulatedTrunk   = "carrier-sim"
	// externalTrunk names the trunk WorldOptions.Trunk points at.
	externalTrunk = "external"
)

// World is what the demo simulates around Turbina: the carrier behind the SIP
// trunk, and Meta's Cloud API with the WhatsApp users behind it. Either may be
// absent: the trunk is then an external carrier, or WhatsApp is off.
type World struct {
	carrier *carrier.Carrier
	emu     *emulator.Emulator
	log     *slog.Logger
	sip     sip.Config
	account *WhatsAppAccount

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

// StartWorld starts the carrier simulator and the WhatsApp emulator on loopback;
// SIP and WhatsApp say how the server reaches them. With opts.Trunk the SIP trunk
// is that external carrier instead (nothing to cut); with opts.NoWhatsApp there is
// no emulator and the WhatsApp rungs are skipped.
func StartWorld(ctx context.Context, opts WorldOptions) (*World, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &World{log: log}
	trunk := sip.TrunkConfig{Name: simulatedTrunk, Address: opts.Trunk, MaxCPS: opts.MaxCPS}
	if opts.Trunk == "" {
		c, err := carrier.Start(ctx, carrier.Config{Seed: opts.Seed, Logger: log})
		if err != nil {
			return nil, err
		}
		w.carrier = c
		trunk.Address = c.Addr()
	} else {
		trunk.Name = externalTrunk
	}
	w.sip = sip.Config{Trunks: []sip.TrunkConfig{trunk}}
	if w.carrier != nil {
		// A cut of the simulated carrier is noticed within a few seconds and its
		// return as quickly; an external carrier gets the usual timeouts.
		w.sip.InviteTimeout = sip.Duration(time.Second)
		w.sip.ProbeInterval = sip.Duration(2 * time.Second)
	}
	if !opts.NoWhatsApp {
		if err := w.startWhatsApp(ctx); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// SIP is the SIP configuration that dials through the world's carrier.
func (w *World) SIP() sip.Config { return w.sip }

// WhatsApp is the account the emulator plays, or nil without the emulator.
func (w *World) WhatsApp() *WhatsAppAccount { return w.account }

// startWhatsApp starts the WhatsApp emulator and keeps the account it plays.
func (w *World) startWhatsApp(ctx context.Context) error {
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
		Templates: []emulator.Template{{Name: templateName, Language: templateLanguage, Status: "APPROVED", Category: "UTILITY",
			Body: "Olá {{1}}, seu plano {{2}} vence em {{3}}. Responda RENOVAR para mantê-lo."}}})
	if err != nil {
		return err
	}
	w.account = &WhatsAppAccount{
		Client: whatsapp.Config{BaseURL: w.emu.URL(), AccessToken: token, PhoneNumberID: w.emu.PhoneNumberID(), WABAID: w.emu.WABAID(),
			MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		Webhook:        whatsapp.WebhookConfig{AppSecret: appSecret, VerifyToken: verify},
		Media:          whatsapp.MediaConfig{LoopbackOnly: true},
		PermissionText: "Podemos ligar para você pelo WhatsApp sobre a renovação do seu plano?",
	}
	return nil
}

// SetWebhookURL tells the emulator where the demo server takes webhooks.
func (w *World) SetWebhookURL(u string) {
	if w.emu != nil {
		w.emu.SetCallbackURL(u)
	}
}

// ScriptWhatsApp gives each contact's WhatsApp user a behaviour: most accept the
// call after 1–3 s, some decline it, some let it ring.
func (w *World) ScriptWhatsApp(contacts []campaigns.Contact, seed uint64) {
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

// Cut cuts the carrier's link (or restores it) and notes when; without the
// simulated carrier it does nothing.
func (w *World) Cut(cut bool) {
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

// FirstCut returns when the carrier was first cut, if it was.
func (w *World) FirstCut() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.cutLog {
		if e.Cut {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// Controls serves the demo's controls, outside the API:
//
//	GET  /demo/cut-trunk                  the carrier's state and counters
//	POST /demo/cut-trunk {"cut":true}     cut the carrier ({"cut":false} restores it)
func (w *World) Controls() http.Handler {
	mux := http.NewServeMux()
	state := func(rw http.ResponseWriter) {
		w.mu.Lock()
		body := map[string]any{"cut": w.isCut, "events": append([]cutEvent{}, w.cutLog...), "carrier": w.CarrierStats()}
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
		w.Cut(*in.Cut)
		state(rw)
	})
	mux.HandleFunc("/demo/", func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, fmt.Sprintf("no such demo control: %s %s", r.Method, r.URL.Path), http.StatusNotFound)
	})
	return mux
}

// Close stops the emulator and the carrier; it may be called more than once.
func (w *World) Close() {
	w.closeOnce.Do(func() {
		if w.emu != nil {
			w.emu.Close()
		}
		if w.carrier != nil {
			w.carrier.Close()
		}
	})
}

// CarrierStats returns what the simulated carrier saw (zeros without one).
func (w *World) CarrierStats() carrier.Stats {
	if w.carrier == nil {
		return carrier.Stats{}
	}
	return w.carrier.Stats()
}

// Follow cuts the simulated carrier at cutAt (zero: never) and, when ctx ends,
// brings a cut carrier back so that the calls still up on the trunk are hung up
// cleanly rather than left to time out. It returns when ctx ends.
func (w *World) Follow(ctx context.Context, cutAt time.Time) {
	if !cutAt.IsZero() {
		t := time.NewTimer(time.Until(cutAt))
		defer t.Stop()
		select {
		case <-t.C:
			w.Cut(true)
		case <-ctx.Done():
		}
	}
	<-ctx.Done()
	if w.carrier != nil && w.carrier.IsCut() {
		w.carrier.Cut(false)
	}
}
