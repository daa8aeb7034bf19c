package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/dialer/channel"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/dialer/sipchannel"
	"github.com/turbina-dialer/turbina/dialer/wachannel"
	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig("serve", defaultConfig(), args, os.Getenv, stderr, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	app, err := openApp(ctx, cfg, log, stderr)
	if err != nil {
		return err
	}
	defer app.close()
	return app.serve(ctx, nil)
}

// app is a wired Turbina: storage, the engine and its channels, the HTTP server.
type app struct {
	cfg        config
	log        *slog.Logger
	store      *storage.DB
	web        *web.Server
	engine     *dialer.Engine
	originator *sip.Originator // nil without trunks
	registrar  *sip.Registrar  // nil unless agents' phones register
	// handler, when set, is served instead of web (the demo mounts its controls beside it).
	handler http.Handler
}

// close releases what openApp opened.
func (a *app) close() {
	if a.originator != nil {
		a.originator.Close()
	}
	if a.registrar != nil {
		a.registrar.Close()
	}
	a.store.Close()
}

// trunkControl lets supervisors take trunks out of service.
type trunkControl struct{ a *app }

func (t trunkControl) SetTrunkOutOfService(name string, out bool) error {
	if t.a.originator == nil {
		return fmt.Errorf("no SIP trunks are configured: %w", web.ErrNoSuchTrunk)
	}
	err := t.a.originator.SetTrunkOutOfService(name, out)
	if errors.Is(err, sip.ErrUnknownTrunk) {
		return fmt.Errorf("%w: %w", web.ErrNoSuchTrunk, err)
	}
	return err
}

// trunkWatch hands a SIP trunk's change (sip.Config.OnTrunkChange: down,
// opened on faults, out of service, recovered) to the engine, whose runs route
// their due contacts at once, and to the wallboard, which shows the failover
// now. The sip package logs the change; this only passes it on. The originator
// starts before the engine and the server exist: a change before they are wired
// reaches them by the engine's next tick and the wallboard's poll.
type trunkWatch struct {
	engine atomic.Pointer[dialer.Engine]
	web    atomic.Pointer[web.Server]
}

func (w *trunkWatch) changed(st sip.TrunkStatus) {
	if e := w.engine.Load(); e != nil {
		e.ChannelChanged(campaigns.ChannelSIP)
	}
	if s := w.web.Load(); s != nil {
		s.TrunkChanged(st)
	}
}

// registrarNonceKey derives the registrar's digest nonce key from the API
// tokens' key, which every node on one database shares.
func registrarNonceKey(tokenKey []byte) []byte {
	h := hmac.New(sha256.New, tokenKey)
	h.Write([]byte("turbina sip registrar nonces"))
	return h.Sum(nil)
}

// trunkStatus describes the SIP trunks for the API.
func (a *app) trunkStatus() any {
	if a.originator == nil {
		return []sip.TrunkStatus{}
	}
	return a.originator.Trunks()
}

func openApp(ctx context.Context, cfg config, log *slog.Logger, stderr io.Writer) (*app, error) {
	// Validated with the rest of the configuration.
	tokenKey, _ := cfg.tokenKey()
	store, err := storage.Open(ctx, cfg.Database(), storage.Options{Log: log, TokenKey: tokenKey})
	if err != nil {
		return nil, err
	}
	if n, err := store.FailInterruptedImports(ctx); err != nil {
		store.Close()
		return nil, err
	} else if n > 0 {
		log.Warn("imports interrupted by the last stop were closed as failed; their committed rows are kept", "imports", n)
	}
	// Validated with the rest of the configuration.
	tokenTTL, _ := cfg.HTTP.tokenTTL()
	generated, err := web.EnsureAdminTTL(ctx, store, cfg.AdminToken, tokenTTL)
	if err != nil {
		store.Close()
		return nil, err
	}
	if generated != "" {
		// Printed once, on the first start: only its hash is stored.
		fmt.Fprintf(stderr, "\n  First start: admin API token (shown only now, keep it safe):\n\n    %s\n\n", generated)
	}
	a := &app{cfg: cfg, log: log, store: store}
	channels := map[campaigns.Channel]channel.Channel{}
	watch := &trunkWatch{}
	if len(cfg.SIP.Trunks) > 0 {
		sipCfg := cfg.SIP
		sipCfg.OnTrunkChange = watch.changed
		o, err := sip.New(ctx, sipCfg, log.With("component", "sip"))
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("sip: %w", err)
		}
		a.originator = o
		channels[campaigns.ChannelSIP] = sipchannel.New(o)
	} else {
		log.Warn("no SIP trunks configured: the sip rung is skipped (set sip.trunks in the config file)")
	}
	var waClient *whatsapp.Client
	var webhooks http.Handler
	var webhookMetrics []prometheus.Collector
	var templates web.TemplateLister
	if cfg.WhatsApp.enabled() {
		waMedia, err := whatsapp.NewMedia(cfg.WhatsApp.Media)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("whatsapp media: %w", err)
		}
		waCfg := cfg.WhatsApp.Config
		if waCfg.AppSecret == "" {
			// The app that signs the webhooks is the app whose token calls Graph:
			// its secret proves the calls (appsecret_proof).
			waCfg.AppSecret = cfg.WhatsApp.Webhook.AppSecret
		}
		waClient, err = whatsapp.NewClient(waCfg, whatsapp.WithMedia(waMedia), whatsapp.WithLogger(log.With("component", "whatsapp")))
		if err != nil {
			a.close()
			return nil, fmt.Errorf("whatsapp: %w", err)
		}
		text := cfg.WhatsApp.PermissionText
		if text == "" {
			text = "Podemos ligar para você pelo WhatsApp?"
		}
		waCalls := wachannel.NewCalls(waClient, store, text)
		waCalls.UseSettleWait(cfg.WhatsApp.CallSettleWait.Std())
		channels[campaigns.ChannelWhatsAppCall] = waCalls
		channels[campaigns.ChannelWhatsAppTemplate] = wachannel.NewTemplates(waClient, store)
		templates = web.NewTemplateCache(waClient)
	} else {
		log.Warn("no WhatsApp account configured: the WhatsApp rungs are skipped (set whatsapp in the config file or TURBINA_WA_*)")
	}
	// The node's ID names its leases and the phone registrations its
	// registrar takes, which every node on the database shares.
	cluster := cfg.dialerCluster()
	cluster.Node.ID = dialer.NewNodeID()
	if cfg.Registrar.ListenAddr != "" {
		creds := sip.CredentialsFunc(store.PhoneCredentials)
		regCfg := cfg.Registrar
		regCfg.Node, regCfg.Shared = cluster.Node.ID, store
		if tokenKey != nil {
			// Every node has the token key: nonces any node made are good on
			// all of them, and the key itself is not what signs them.
			regCfg.NonceKey = registrarNonceKey(tokenKey)
		}
		if a.registrar, err = sip.NewRegistrar(ctx, regCfg, creds, log.With("component", "registrar")); err != nil {
			a.close()
			return nil, fmt.Errorf("registrar: %w", err)
		}
	}
	peers, err := media.NewAgentPeers(cfg.WebRTC)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	a.engine = dialer.New(store, channels, dialer.NewAgents(), dialer.Config{
		RingTimeout:        cfg.Engine.RingTimeout.Std(),
		AgentSilence:       cfg.Engine.AgentSilence.Std(),
		AgentReturn:        cfg.Engine.AgentReturn.Std(),
		Patience:           cfg.Engine.Patience.Std(),
		NumberLimits:       cfg.Engine.NumberLimits,
		OptOutWords:        cfg.Engine.OptOutWords,
		OptOutReply:        cfg.Engine.OptOutReply,
		QuietAfterAbandon:  cfg.Engine.QuietAfterAbandon.Std(),
		PreviewHold:        cfg.Engine.PreviewHold.Std(),
		PreviewSkipDelay:   cfg.Engine.PreviewSkipDelay.Std(),
		InDoubtReportAfter: cfg.Engine.InDoubtReportAfter.Std(),
		InDoubtWindow:      cfg.WhatsApp.InDoubtWindow.Std(),
		InboundCampaign:    cfg.Engine.InboundCampaign,
		InboundMaxWait:     cfg.Engine.InboundMaxWait.Std(),
		AgentPeers:         peers,
		WhatsApp:           waClient,
		RecordingsDir:      filepath.Join(cfg.DataDir, "recordings"),
		Registrar:          a.registrar,
		Cluster:            cluster,
	}, log.With("component", "engine"))
	if waClient != nil {
		hookCfg := cfg.WhatsApp.Webhook
		// Events for another number or account of the same app are not this one's.
		hookCfg.PhoneNumberID, hookCfg.WABAID = cfg.WhatsApp.PhoneNumberID, cfg.WhatsApp.WABAID
		hooks, err := whatsapp.NewWebhookHandler(hookCfg, a.engine.WhatsAppSink(), log.With("component", "whatsapp-webhooks"),
			whatsapp.WithQuarantine(store))
		if err != nil {
			a.close()
			return nil, fmt.Errorf("whatsapp webhooks: %w", err)
		}
		webhooks, webhookMetrics = hooks, hooks.Collectors()
	}
	// Validated with the rest of the configuration.
	limits, _ := cfg.HTTP.limits()
	passwordCost, _ := cfg.HTTP.passwordCost()
	a.web = web.New(store, log, web.Config{
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MaxImportBytes: cfg.MaxImportBytes,
		Version:        version,
		Engine:         a.engine,
		TrunkStatus:    a.trunkStatus,
		Webhooks:       webhooks,
		Templates:      templates,
		TrunkControl:   trunkControl{a},
		PhoneRealm:     cfg.Registrar.Realm,
		MaxAbandon:     cfg.Engine.MaxAbandon,
		Limits:         limits,
		TokenTTL:       tokenTTL,
		PasswordCost:   passwordCost,
		Cluster:        webCluster(cfg, a.engine),
	})
	watch.engine.Store(a.engine)
	watch.web.Store(a.web)
	a.web.Registry().MustRegister(a.engine.Collectors()...)
	a.web.Registry().MustRegister(webhookMetrics...)
	if a.originator != nil {
		a.web.Registry().MustRegister(a.originator.Collectors()...)
	}
	return a, nil
}

// serve listens until ctx ends, then drains (drain) and shuts down gracefully.
// ready, when not nil, is called with the listening address before requests
// are served.
func (a *app) serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.HTTPAddr, err)
	}
	// The server's timeouts and limits are web's, so that the tests' servers have them too.
	hs := a.web.HTTPServer(a.handler)
	hs.ErrorLog = slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	// Streams (the wallboard's, the agents' event sockets) do not end by
	// themselves: the shutdown, which comes after the drain, ends their
	// requests' context, where it would otherwise wait them out and fail.
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	hs.BaseContext = func(net.Listener) context.Context { return streams }
	hs.RegisterOnShutdown(endStreams)
	a.log.Info("listening", "url", "http://"+ln.Addr().String(), "database", a.cfg.DatabaseForLog(), "version", version)
	if a.cfg.Cluster.AdvertiseURL == "" {
		// The port the system chose, when the address asked for any.
		a.engine.Advertise("http://" + ln.Addr().String())
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// The engine outlives ctx by the drain: it ends the calls under way.
	engineCtx, stopEngine := context.WithCancel(stopNow(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- a.engine.Run(engineCtx) }()
	// The other nodes' changes and this node's live part of the wallboard.
	clusterDone := make(chan error, 1)
	go func() { clusterDone <- a.runCluster(engineCtx) }()
	endEngine := func() {
		stopEngine()
		if err := <-engineDone; err != nil {
			a.log.Error("engine", "err", err)
		}
		if err := <-clusterDone; err != nil {
			a.log.Error("cluster", "err", err)
		}
	}
	select {
	case err := <-errc:
		endEngine()
		return err
	case <-ctx.Done():
	}
	a.drain(stopNow(ctx))
	// What the drain left is cut and recorded as it is, before the server
	// that serves its agents goes.
	endEngine()
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := a.web.WaitSockets(sctx); err != nil {
		a.log.Warn("agents' sockets still open at the exit", "err", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// drain stops new dials and waits for the calls under way and their wrap-ups
// to end, while the HTTP server goes on serving them (webhooks, dispositions,
// the wallboard; /readyz says draining), for at most engine.drain_timeout or
// until now ends (a second signal). The engine's end then cuts what is left.
func (a *app) drain(now context.Context) {
	if now.Err() != nil {
		return // stopped at once: nothing to wait for
	}
	// Validated with the rest of the configuration.
	timeout, _ := a.cfg.Engine.drainTimeout()
	a.log.Info("draining: no new dials; the calls under way may end (a second signal stops at once)", "timeout", timeout)
	ctx, cancel := context.WithTimeout(now, timeout)
	defer cancel()
	err := a.engine.Drain(ctx)
	switch {
	case err == nil:
	case now.Err() != nil:
		a.log.Warn("second signal: stopping at once; the calls left are hung up and recorded interrupted", "err", err)
	default:
		a.log.Warn("drain timeout: the calls left are hung up and recorded interrupted", "timeout", timeout, "err", err)
	}
}
