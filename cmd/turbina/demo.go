package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/demo"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/storage"
)

// demoOptions are the demo's own flags.
type demoOptions struct {
	duration   time.Duration
	report     bool
	json       bool
	cutTrunkAt time.Duration
	agents     int
	seed       uint64
	// trunk is an external carrier's host:port to dial instead of the simulated one.
	trunk string
	// maxCPS is the external trunk's max_cps: a rate a load run offers open-loop.
	maxCPS float64
	// pacing, when set, replaces the sample campaign's pacing mode (predictive).
	pacing string
	// contacts, when positive, replaces the sample list with that many synthetic
	// contacts.
	contacts int
	// timing is how long the simulated agents talk and wrap up.
	timing demo.Timing
	// noWhatsApp leaves the WhatsApp emulator out: the WhatsApp rungs are skipped.
	noWhatsApp bool
	// cpuProfile is a file to write a CPU profile of the run to; memProfile one to
	// write a heap profile to as the run ends.
	cpuProfile, memProfile string
	// pprof serves the runtime profiles under /debug/pprof/ on the demo's address,
	// for profiles taken in the middle of a long run (scripts/soak.sh).
	pprof bool
}

// demoMaxAgents bounds --agents.
const demoMaxAgents = 500

// runDemo starts the server on its own data directory with the demo package's
// sample campaign and world (a simulated carrier behind the SIP trunk, the WhatsApp
// Cloud API emulator behind the WhatsApp rungs, a team of simulated agents taking
// the calls). With --report it runs headless for --duration and prints the demo's
// report.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	base := defaultConfig()
	base.DataDir = "./turbina-data-demo"
	opts := demoOptions{timing: demo.DefaultTiming()}
	cfg, err := parseConfig("demo", base, args, os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&opts.duration, "duration", 0, "stop after this long (0: run until interrupted)")
		fs.BoolVar(&opts.report, "report", false, "run headless and print a summary table when --duration ends")
		fs.BoolVar(&opts.json, "json", false, "with --report, print the summary as one JSON object")
		fs.DurationVar(&opts.cutTrunkAt, "cut-trunk-at", 0, "cut the simulated carrier this long after the start (0: never)")
		fs.IntVar(&opts.agents, "agents", 8, "number of simulated agents")
		fs.Uint64Var(&opts.seed, "seed", 1, "seed of the simulation's random draws")
		fs.StringVar(&opts.trunk, "trunk", "", "dial this external carrier (host:port, SIP over UDP) instead of the simulated one")
		fs.Float64Var(&opts.maxCPS, "max-cps", 0, "with --trunk, the trunk's max_cps: new INVITEs per second at most (0: unlimited)")
		fs.StringVar(&opts.pacing, "pacing", "", "the campaign's pacing mode: preview, progressive or predictive (default: the campaign's, predictive)")
		fs.IntVar(&opts.contacts, "contacts", 0, "load this many synthetic contacts instead of the 300-row sample (0: the sample)")
		fs.Var(&opts.timing.Talk, "talk", "simulated agents' talk time per call, MIN-MAX or one duration")
		fs.Var(&opts.timing.Wrap, "wrap", "simulated agents' wrap-up time per call, MIN-MAX or one duration")
		fs.BoolVar(&opts.noWhatsApp, "no-whatsapp", false, "leave the WhatsApp emulator out: only the SIP rung dials")
		fs.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
		fs.StringVar(&opts.memProfile, "memprofile", "", "write a heap profile to this file as the run ends (before the server closes)")
		fs.BoolVar(&opts.pprof, "pprof", false, "serve runtime profiles at /debug/pprof/ (no sign-in: loopback runs only)")
	})
	if err != nil {
		return err
	}
	switch {
	case opts.report && opts.duration <= 0:
		fmt.Fprintln(stderr, "demo: --report needs --duration")
		return errUsage
	case opts.json && !opts.report:
		fmt.Fprintln(stderr, "demo: --json goes with --report")
		return errUsage
	case opts.agents < 0 || opts.agents > demoMaxAgents:
		fmt.Fprintf(stderr, "demo: --agents must be between 0 and %d\n", demoMaxAgents)
		return errUsage
	case opts.contacts < 0 || opts.contacts > demo.MaxContacts:
		fmt.Fprintf(stderr, "demo: --contacts must be between 0 and %d\n", demo.MaxContacts)
		return errUsage
	case opts.trunk != "" && opts.cutTrunkAt > 0:
		fmt.Fprintln(stderr, "demo: --cut-trunk-at cuts the simulated carrier, not one given with --trunk")
		return errUsage
	case opts.maxCPS < 0:
		fmt.Fprintln(stderr, "demo: --max-cps must not be negative")
		return errUsage
	case opts.maxCPS > 0 && opts.trunk == "":
		fmt.Fprintln(stderr, "demo: --max-cps sets the rate of a carrier given with --trunk")
		return errUsage
	case opts.pacing != "" && !slices.Contains([]campaigns.PacingMode{campaigns.PacingPreview, campaigns.PacingProgressive, campaigns.PacingPredictive}, campaigns.PacingMode(opts.pacing)):
		fmt.Fprintf(stderr, "demo: --pacing %q: want preview, progressive or predictive\n", opts.pacing)
		return errUsage
	case opts.cutTrunkAt < 0:
		fmt.Fprintln(stderr, "demo: --cut-trunk-at must not be negative")
		return errUsage
	}
	if opts.trunk != "" {
		if err := demo.CheckLoopbackTrunk(opts.trunk); err != nil {
			fmt.Fprintf(stderr, "demo: --trunk: %v\n", err)
			return errUsage
		}
	}
	log := newLogger(cfg, stderr)
	if opts.cpuProfile != "" {
		stop, err := startCPUProfile(opts.cpuProfile)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer stop()
	}
	world, err := demo.StartWorld(ctx, demo.WorldOptions{Trunk: opts.trunk, MaxCPS: opts.maxCPS, NoWhatsApp: opts.noWhatsApp, Seed: opts.seed, Logger: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer world.Close()
	useDemoWorld(&cfg, world)
	a, err := openApp(ctx, cfg, log, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	list := demo.SampleContacts
	if opts.contacts > 0 {
		list = demo.SyntheticContacts(opts.contacts)
	}
	seed, err := demo.Seed(ctx, a.store, opts.agents, list, opts.noWhatsApp, time.Now())
	if err != nil {
		return fmt.Errorf("prepare demo: %w", err)
	}
	if opts.pacing != "" {
		if seed.Campaign, err = a.store.UpdateCampaign(ctx, storage.Actor{Username: "demo"}, seed.Campaign.ID, "campaign.pacing", func(c *campaigns.Campaign) error {
			c.Pacing.Mode = campaigns.PacingMode(opts.pacing)
			return nil
		}); err != nil {
			return fmt.Errorf("prepare demo: pacing: %w", err)
		}
	}
	if world.WhatsApp() != nil {
		contacts, err := demo.AllContacts(ctx, a.store, seed.Campaign.ID)
		if err != nil {
			return fmt.Errorf("prepare demo: %w", err)
		}
		world.ScriptWhatsApp(contacts, opts.seed)
	}

	// The simulated world and agents work on through the drain Ctrl-C starts,
	// until the server stops: a second Ctrl-C, the drain's end, or --duration,
	// whose end stops the run at once (its report counts a fixed time).
	life, endLife := context.WithCancel(stopNow(ctx))
	defer endLife()
	if opts.duration > 0 {
		var cancel context.CancelFunc
		life, cancel = context.WithTimeout(life, opts.duration)
		defer cancel()
	}
	ctx, cancelCtx := context.WithCancel(ctx)
	defer cancelCtx()
	context.AfterFunc(life, cancelCtx)
	ctx = withStopNow(ctx, life)

	mux := http.NewServeMux()
	mux.Handle("/demo/", world.Controls())
	if opts.pprof {
		handlePprof(mux)
	}
	mux.Handle("/", a.web)
	a.handler = mux

	started := time.Now()
	team := demo.NewTeam(a.engine, seed.Campaign.ID, seed.SimAgents, cfg.WebRTC, opts.timing, opts.seed, log)
	var wg sync.WaitGroup
	defer wg.Wait()
	err = a.serve(ctx, func(addr string) {
		world.SetWebhookURL("http://" + addr + "/webhooks/whatsapp")
		if opts.report {
			log.Info("demo running headless", "duration", opts.duration, "agents", opts.agents)
		} else {
			demo.PrintBanner(stdout, addr, seed.Logins, demo.Banner{Agents: opts.agents, Contacts: opts.contacts, Trunk: opts.trunk, NoWhatsApp: opts.noWhatsApp})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := demo.StartDialing(life, a.store, a.engine, team, seed.Campaign.ID, a.log); err != nil && life.Err() == nil {
				log.Error("demo: start dialing", "err", err)
			}
		}()
		var cutAt time.Time
		if opts.cutTrunkAt > 0 {
			cutAt = started.Add(opts.cutTrunkAt)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			world.Follow(life, cutAt)
		}()
	})
	endLife()
	wg.Wait()
	team.Stop()
	world.Close() // no more webhooks to a server that has stopped
	if opts.memProfile != "" {
		if err := writeHeapProfile(opts.memProfile); err != nil {
			log.Error("demo: heap profile", "err", err)
		}
	}
	if err != nil || !opts.report {
		return err
	}
	// Reading every contact's attempts takes a while on a large synthetic list.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(life), 30*time.Second+time.Duration(opts.contacts)*time.Millisecond)
	defer cancel()
	rep, err := demo.BuildReport(rctx, a.store, seed.Campaign.ID, team, world, time.Since(started), started)
	if err != nil {
		return fmt.Errorf("demo report: %w", err)
	}
	if opts.json {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

// useDemoWorld points cfg's SIP trunk and WhatsApp account at the demo's world, and
// keeps the agents' audio on loopback.
func useDemoWorld(cfg *config, world *demo.World) {
	cfg.SIP = world.SIP()
	if acc := world.WhatsApp(); acc != nil {
		cfg.WhatsApp = whatsappConfig{Config: acc.Client, Webhook: acc.Webhook, Media: acc.Media, PermissionText: acc.PermissionText}
	}
	cfg.WebRTC.LoopbackOnly = true
	if cfg.Engine.RingTimeout <= 0 {
		cfg.Engine.RingTimeout = sip.Duration(15 * time.Second)
	}
}
