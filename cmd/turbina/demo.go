package main

import (
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web"
)

//go:embed demo/contacts.csv
var demoContacts []byte

const demoCampaignName = "Demonstração — Renovação de planos"

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
	// contacts, when positive, replaces the sample list with that many synthetic
	// contacts.
	contacts int
	// timing is how long the simulated agents talk and wrap up.
	timing simTiming
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

// runDemo starts the server on its own data directory with a sample campaign, a user
// of every role and fresh tokens for them, and makes it dial: a simulated carrier
// behind the SIP trunk, the WhatsApp Cloud API emulator behind the WhatsApp rungs and
// a team of simulated agents taking the calls. With --report it runs headless for
// --duration and prints a summary.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	base := defaultConfig()
	base.DataDir = "./turbina-data-demo"
	opts := demoOptions{timing: defaultSimTiming}
	cfg, err := parseConfig("demo", base, args, os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&opts.duration, "duration", 0, "stop after this long (0: run until interrupted)")
		fs.BoolVar(&opts.report, "report", false, "run headless and print a summary table when --duration ends")
		fs.BoolVar(&opts.json, "json", false, "with --report, print the summary as one JSON object")
		fs.DurationVar(&opts.cutTrunkAt, "cut-trunk-at", 0, "cut the simulated carrier this long after the start (0: never)")
		fs.IntVar(&opts.agents, "agents", 8, "number of simulated agents")
		fs.Uint64Var(&opts.seed, "seed", 1, "seed of the simulation's random draws")
		fs.StringVar(&opts.trunk, "trunk", "", "dial this external carrier (host:port, SIP over UDP) instead of the simulated one")
		fs.IntVar(&opts.contacts, "contacts", 0, "load this many synthetic contacts instead of the 300-row sample (0: the sample)")
		fs.Var(&opts.timing.talk, "talk", "simulated agents' talk time per call, MIN-MAX or one duration")
		fs.Var(&opts.timing.wrap, "wrap", "simulated agents' wrap-up time per call, MIN-MAX or one duration")
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
	case opts.contacts < 0 || opts.contacts > demoMaxContacts:
		fmt.Fprintf(stderr, "demo: --contacts must be between 0 and %d\n", demoMaxContacts)
		return errUsage
	case opts.trunk != "" && opts.cutTrunkAt > 0:
		fmt.Fprintln(stderr, "demo: --cut-trunk-at cuts the simulated carrier, not one given with --trunk")
		return errUsage
	case opts.cutTrunkAt < 0:
		fmt.Fprintln(stderr, "demo: --cut-trunk-at must not be negative")
		return errUsage
	}
	if opts.trunk != "" {
		if err := checkLoopbackTrunk(opts.trunk); err != nil {
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
	world, err := startDemoWorld(ctx, &cfg, opts, log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer world.close()
	a, err := openApp(ctx, cfg, log, io.Discard)
	if err != nil {
		return err
	}
	defer a.close()
	list := demoContacts
	if opts.contacts > 0 {
		list = syntheticContacts(opts.contacts)
	}
	seed, err := seedDemo(ctx, a.store, opts.agents, list, opts.noWhatsApp, time.Now())
	if err != nil {
		return fmt.Errorf("prepare demo: %w", err)
	}
	if world.emu != nil {
		contacts, err := allContacts(ctx, a.store, seed.campaign.ID)
		if err != nil {
			return fmt.Errorf("prepare demo: %w", err)
		}
		world.scriptWhatsApp(contacts, opts.seed)
	}

	mux := http.NewServeMux()
	mux.Handle("/demo/", world.controls())
	if opts.pprof {
		handlePprof(mux)
	}
	mux.Handle("/", a.web)
	a.handler = mux

	if opts.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.duration)
		defer cancel()
	}
	started := time.Now()
	team := newSimTeam(a.engine, seed.campaign.ID, seed.simAgents, cfg.WebRTC, opts.timing, opts.seed, log)
	var wg sync.WaitGroup
	defer wg.Wait()
	err = a.serve(ctx, func(addr string) {
		world.setWebhookURL("http://" + addr + "/webhooks/whatsapp")
		if opts.report {
			log.Info("demo running headless", "duration", opts.duration, "agents", opts.agents)
		} else {
			printDemoBanner(stdout, addr, seed.logins, opts)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := startDialing(ctx, a, team, seed.campaign.ID); err != nil && ctx.Err() == nil {
				log.Error("demo: start dialing", "err", err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			// The link comes back as the demo ends, so the calls still up on the
			// trunk are hung up cleanly rather than left to time out.
			if world.carrierCut() {
				world.carrier.Cut(false)
			}
		}()
		if opts.cutTrunkAt > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTimer(time.Until(started.Add(opts.cutTrunkAt)))
				defer t.Stop()
				select {
				case <-t.C:
					world.cut(true)
				case <-ctx.Done():
				}
			}()
		}
	})
	wg.Wait()
	team.stop()
	world.close() // no more webhooks to a server that has stopped
	if opts.memProfile != "" {
		if err := writeHeapProfile(opts.memProfile); err != nil {
			log.Error("demo: heap profile", "err", err)
		}
	}
	if err != nil || !opts.report {
		return err
	}
	// The engine has stopped: every attempt is closed and the figures are final.
	// Reading every contact's attempts takes a while on a large synthetic list.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second+time.Duration(opts.contacts)*time.Millisecond)
	defer cancel()
	rep, err := buildDemoReport(rctx, a.store, seed.campaign.ID, team, world, time.Since(started), started)
	if err != nil {
		return fmt.Errorf("demo report: %w", err)
	}
	if opts.json {
		return rep.writeJSON(stdout)
	}
	return rep.writeTable(stdout)
}

// startDialing brings the simulated agents in, waits until their audio is up (so
// the first answered calls find them) and starts the demo campaign.
func startDialing(ctx context.Context, a *app, team *simTeam, campaignID int64) error {
	team.start(ctx)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := team.waitReady(wctx); err != nil {
		a.log.Warn("demo: not every simulated agent is ready; dialing anyway", "err", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	now := time.Now()
	if _, err := a.store.UpdateCampaign(ctx, storage.Actor{Username: "demo"}, campaignID, "campaign.start", func(c *campaigns.Campaign) error {
		// The calling window covers the whole day but one minute, twelve hours
		// away, so the demo dials at any hour, and on any day: holidays are off.
		c.Window = demoWindow(now)
		c.WeekHours = nil
		c.Holidays = demoHolidays()
		c.State = campaigns.StateRunning
		return nil
	}); err != nil {
		return err
	}
	a.engine.CampaignChanged()
	a.log.Info("demo campaign running", "campaign", campaignID)
	return nil
}

// demoHolidays switches the national holidays off: the demo shows the engine
// dialling whatever the day.
func demoHolidays() campaigns.Holidays {
	off := false
	return campaigns.Holidays{National: &off}
}

// demoWindow is a calling window open all day except the minute twelve hours from
// now in São Paulo (a window cannot hold all 1,440 minutes).
func demoWindow(now time.Time) campaigns.Window {
	loc, err := time.LoadLocation(campaigns.DefaultTimezone)
	if err != nil {
		loc = time.UTC
	}
	local := now.In(loc)
	gap := campaigns.ClockTime((local.Hour()*60 + local.Minute() + 12*60) % (24 * 60))
	return campaigns.Window{Start: (gap + 1) % (24 * 60), End: gap}
}

// demoRoles are the demo's users, one per role, in the order they are printed.
var demoRoles = []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent}

// demoLogin is what a person needs to use a demo user: a password for the pages and
// a token for the API.
type demoLogin struct{ username, password, token string }

// demoSeed is what seedDemo prepared.
type demoSeed struct {
	logins    map[storage.Role]demoLogin
	campaign  campaigns.Campaign
	simAgents []storage.User
}

// seedDemo creates (once) the demo users, issues each a fresh password and token
// (revoking the previous run's, so the printed ones are the only ones), creates the
// simulated agents' users, and loads the sample campaign with the contacts of the
// CSV list (its ladder the SIP rung alone when sipOnly). A campaign a previous run
// dialled is kept under a dated name, finished, and a fresh one is loaded, so every
// run dials the whole list.
func seedDemo(ctx context.Context, store *storage.DB, simAgents int, list []byte, sipOnly bool, now time.Time) (demoSeed, error) {
	system := storage.Actor{Username: "demo"}
	var seed demoSeed
	users, err := store.ListUsers(ctx)
	if err != nil {
		return seed, err
	}
	byName := map[string]storage.User{}
	for _, u := range users {
		byName[u.Username] = u
	}
	ensure := func(name, display string, role storage.Role) (storage.User, error) {
		if u, ok := byName[name]; ok {
			return u, nil
		}
		u := storage.User{Username: name, DisplayName: display, Role: role}
		err := store.CreateUser(ctx, system, &u)
		return u, err
	}
	seed.logins = map[storage.Role]demoLogin{}
	var agents []storage.User
	for _, role := range demoRoles {
		name := "demo-" + string(role)
		u, err := ensure(name, "Demo "+string(role), role)
		if err != nil {
			return seed, err
		}
		if role == storage.RoleAgent {
			agents = append(agents, u)
		}
		old, err := store.ListTokens(ctx, u.ID)
		if err != nil {
			return seed, err
		}
		for _, t := range old {
			if t.RevokedAt == nil {
				if err := store.RevokeToken(ctx, system, t.ID); err != nil {
					return seed, err
				}
			}
		}
		secret, err := web.NewToken()
		if err != nil {
			return seed, err
		}
		t := storage.Token{UserID: u.ID, Name: "demo", Prefix: secret[:10]}
		if err := store.CreateToken(ctx, system, &t, web.HashToken(secret)); err != nil {
			return seed, err
		}
		password := "demo-" + secret[len(secret)-8:]
		hash, err := web.HashPassword(ctx, password)
		if err != nil {
			return seed, err
		}
		if _, err := store.UpdateUser(ctx, system, u.ID, func(u *storage.User) error { u.PasswordHash = hash; return nil }); err != nil {
			return seed, err
		}
		seed.logins[role] = demoLogin{username: name, password: password, token: secret}
	}
	for i := 1; i <= simAgents; i++ {
		u, err := ensure(fmt.Sprintf("demo-sim-%02d", i), fmt.Sprintf("Agente simulado %02d", i), storage.RoleAgent)
		if err != nil {
			return seed, err
		}
		seed.simAgents = append(seed.simAgents, u)
		agents = append(agents, u)
	}
	if seed.campaign, err = demoCampaign(ctx, store, system, list, sipOnly, now); err != nil {
		return seed, err
	}
	assigned, err := store.CampaignAgents(ctx, seed.campaign.ID)
	if err != nil {
		return seed, err
	}
	for _, u := range agents {
		if !containsUser(assigned, u.ID) {
			if err := store.AssignAgent(ctx, system, seed.campaign.ID, u.ID); err != nil {
				return seed, err
			}
		}
	}
	return seed, nil
}

func containsUser(list []storage.User, id int64) bool {
	for _, u := range list {
		if u.ID == id {
			return true
		}
	}
	return false
}

// demoCampaign returns the sample campaign ready to dial: the draft one, or a new
// one loaded with the contacts of the csv list when a previous run dialled it (that
// one is kept, finished, under a dated name). With sipOnly its ladder is the SIP
// rung alone.
func demoCampaign(ctx context.Context, store *storage.DB, system storage.Actor, csv []byte, sipOnly bool, now time.Time) (campaigns.Campaign, error) {
	list, err := store.ListCampaigns(ctx, nil)
	if err != nil {
		return campaigns.Campaign{}, err
	}
	for _, c := range list {
		if c.Name != demoCampaignName {
			continue
		}
		if c.State == campaigns.StateDraft {
			return c, nil
		}
		if _, err := store.UpdateCampaign(ctx, system, c.ID, "campaign.archive", func(c *campaigns.Campaign) error {
			c.Name = fmt.Sprintf("%s (%s)", demoCampaignName, c.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			c.State = campaigns.StateFinished
			return nil
		}); err != nil {
			return campaigns.Campaign{}, fmt.Errorf("archive the previous demo campaign: %w", err)
		}
	}
	c := campaigns.Campaign{Name: demoCampaignName, CallerID: "+551130000000", DefaultCountry: "BR"}
	c.ApplyDefaults()
	c.Window = demoWindow(now)
	c.Holidays = demoHolidays()
	c.Ladder[2].Template, c.Ladder[2].Language = demoTemplate, demoTemplateLanguage
	c.Ladder[2].Params = []string{"name", "plano", "vencimento"}
	if sipOnly {
		c.Ladder = c.Ladder[:1]
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	if err := store.CreateCampaign(ctx, system, &c); err != nil {
		return c, err
	}
	ir, err := campaigns.NewImportReader(bytes.NewReader(csv), campaigns.ImportOptions{DefaultCountry: c.DefaultCountry})
	if err != nil {
		return c, err
	}
	batch, err := store.BeginImport(ctx, system, c.ID)
	if err != nil {
		return c, err
	}
	_, loadErr := campaigns.Load(ctx, ir, batch, 0)
	if _, err := batch.Finish(ctx, loadErr); err != nil {
		return c, err
	}
	return c, loadErr
}

// allContacts returns every contact of a campaign.
func allContacts(ctx context.Context, store *storage.DB, campaignID int64) ([]campaigns.Contact, error) {
	var out []campaigns.Contact
	for {
		page, total, err := store.ListContacts(ctx, campaignID, storage.ContactFilter{Limit: 500, Offset: len(out)})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

func printDemoBanner(w io.Writer, addr string, logins map[storage.Role]demoLogin, opts demoOptions) {
	base := "http://" + addr
	var b strings.Builder
	fmt.Fprintf(&b, "\nTurbina demo is running at %s (Ctrl-C stops it)\n\n", base)
	contacts, carrierName, whatsApp := 300, "a simulated\ncarrier (SIP)", " and the WhatsApp Cloud API emulator"
	if opts.contacts > 0 {
		contacts = opts.contacts
	}
	if opts.trunk != "" {
		carrierName = "the carrier\nat " + opts.trunk + " (SIP)"
	}
	if opts.noWhatsApp {
		whatsApp = ""
	}
	fmt.Fprintf(&b, "Sample campaign %q with %d contacts is dialing through %s%s; %d simulated agents take the calls.\n\n",
		demoCampaignName, contacts, carrierName, whatsApp, opts.agents)
	fmt.Fprintf(&b, "Sign in at %s/ — or use the API token (all new on every start):\n", base)
	fmt.Fprintf(&b, "  %-10s %-16s %-14s %s\n", "role", "username", "password", "API token")
	for _, role := range demoRoles {
		l := logins[role]
		fmt.Fprintf(&b, "  %-10s %-16s %-14s %s\n", role, l.username, l.password, l.token)
	}
	fmt.Fprintf(&b, "\nWallboard: %s/supervisor (sign in as demo-supervisor)\n", base)
	fmt.Fprintf(&b, "Take calls yourself: %s/agent (sign in as demo-agent, allow the microphone)\n", base)
	if opts.trunk == "" {
		fmt.Fprintf(&b, "\nCut the trunk and watch the WhatsApp rung absorb the calls (false restores it):\n")
		fmt.Fprintf(&b, "  curl -X POST -d '{\"cut\":true}' %s/demo/cut-trunk\n", base)
	}
	fmt.Fprintf(&b, "\nTry:\n")
	fmt.Fprintf(&b, "  curl -H 'Authorization: Bearer %s' %s/api/v1/campaigns\n", logins[storage.RoleSupervisor].token, base)
	fmt.Fprintf(&b, "  curl %s/metrics\n", base)
	fmt.Fprintf(&b, "  API reference: %s/api/v1/openapi.json (with a token)\n\n", base)
	io.WriteString(w, b.String())
}
