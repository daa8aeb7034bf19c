package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
	"github.com/turbina-dialer/turbina/internal/pgtest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// Lease timing of the cluster drills: short, so that ten take-overs fit in a
// minute and a half.
const (
	drillLeaseTTL   = 3 * time.Second
	drillRenewEvery = time.Second
	// drillTakeOver is what issue 19 promises: a node that stops renewing
	// loses its campaigns to the others within 10 s.
	drillTakeOver = 10 * time.Second
)

// cluster is several turbina serve processes on one PostgreSQL database.
type cluster struct {
	t     *testing.T
	env   []string
	db    *storage.DB
	mu    sync.Mutex
	nodes map[string]*proc // by node ID
}

// startNode starts one more node and learns its ID from /readyz.
func (c *cluster) startNode() *proc {
	c.t.Helper()
	p := start(c.t, append(slices.Clone(c.env), "TURBINA_DATA_DIR="+c.t.TempDir()), "serve")
	// Ready once its database's write probe has run.
	var ready struct{ Node string }
	for deadline := time.Now().Add(15 * time.Second); apiGet(p.url+"/readyz", "", &ready) != nil || ready.Node == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("/readyz not ready with a node within 15 s:\n%s", p.Output())
		}
	}
	c.mu.Lock()
	c.nodes[ready.Node] = p
	c.mu.Unlock()
	return p
}

// forget drops a node the drill killed.
func (c *cluster) forget(id string) {
	c.mu.Lock()
	delete(c.nodes, id)
	c.mu.Unlock()
}

// owner is the node whose live lease runs the campaign, "" when none does.
func (c *cluster) owner(campaign int64) (string, *proc) {
	c.t.Helper()
	leases, err := c.db.Leases(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range leases {
		if l.CampaignID == campaign && l.Live {
			c.mu.Lock()
			defer c.mu.Unlock()
			return l.NodeID, c.nodes[l.NodeID]
		}
	}
	return "", nil
}

// ownerURL is the running owner's base URL, for the agents to follow.
func (c *cluster) ownerURL(campaign int64) string {
	leases, err := c.db.Leases(context.Background())
	if err != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range leases {
		if p := c.nodes[l.NodeID]; l.CampaignID == campaign && l.Live && p != nil {
			return p.url
		}
	}
	return ""
}

// waitOwner waits until a node other than not runs the campaign, and says
// how long it took; it fails after within.
func (c *cluster) waitOwner(campaign int64, not string, within time.Duration) (string, *proc, time.Duration) {
	c.t.Helper()
	start := time.Now()
	for {
		id, p := c.owner(campaign)
		if id != "" && id != not && p != nil {
			return id, p, time.Since(start)
		}
		if time.Since(start) > within {
			c.mu.Lock()
			var logs strings.Builder
			for id, p := range c.nodes {
				fmt.Fprintf(&logs, "node %s:\n%s\n", id, tail(p.Output(), 15))
			}
			c.mu.Unlock()
			c.t.Fatalf("campaign %d: no other node than %q took it within %s (lease holder now %q)\n%s", campaign, not, within, id, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// anyNode is a running node's URL other than not's, for webhooks.
func (c *cluster) anyNode(not string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.nodes {
		if id != not {
			return p.url
		}
	}
	return ""
}

// metric reads one unlabelled sample of a node's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s has no metric %s", url, name)
	return 0
}

// TestKillOwningNodeTenTimes is issue 19's drill: three nodes on one
// PostgreSQL database run one campaign that dials sipp (which answers) with
// simulated agents, and sends its WhatsApp template rung to the emulator. The
// node running the campaign is SIGKILLed at random moments ten times (a new
// node started after each): each time another node runs the campaign within
// 10 s. Then the owner is frozen (SIGSTOP) until another took the campaign,
// and woken: it writes nothing more for it. Afterwards every contact's
// attempts match what the carrier and WhatsApp saw: one INVITE at most (the
// SIP rung has one attempt), none recorded that sipp never got, no template
// twice, and no attempt left open.
func TestKillOwningNodeTenTimes(t *testing.T) {
	const contacts, kills = 600, 10
	// Not a drain drill: a node stopped at the end with a wrap-up still open
	// (its agent halted) cuts it after 3 s rather than the default 2 minutes.
	d := startClusterDrill(t, contacts, map[string]any{"ring_timeout": "5s", "drain_timeout": "3s"})
	cl, db, carrier, emu, id, cid := d.cl, d.cl.db, d.carrier, d.emu, d.id, d.cid
	driver := &agentDriver{follow: func() string { return cl.ownerURL(id) }, tokens: drillAgents(t, d.first.url, cid, 4)}
	driver.run(t)
	call(t, "POST", d.first.url+"/api/v1/campaigns/"+cid+"/start", crashAdmin, "", nil, 200, nil)

	var owner string
	var p *proc
	for i := range kills {
		// A random moment of the owner's run: dialling, talking, wrapping up
		// (the node that owns it then, a hand-over to a new node may be done).
		cl.waitOwner(id, "", drillTakeOver)
		time.Sleep(time.Duration(300+rand.IntN(1700)) * time.Millisecond)
		owner, p, _ = cl.waitOwner(id, "", drillTakeOver)
		p.kill(t)
		cl.forget(owner)
		emu.SetCallbackURL(cl.anyNode("") + "/webhooks/whatsapp")
		next, _, took := cl.waitOwner(id, owner, drillTakeOver)
		t.Logf("kill %d: node %s killed, node %s runs the campaign %s later", i+1, owner, next, took.Round(10*time.Millisecond))
		cl.startNode()
	}
	owner, p, _ = cl.waitOwner(id, "", drillTakeOver)

	// The frozen node: stopped until its lease expired and another node took
	// the campaign, then woken. Its run must stop without writing.
	p.cmd.Process.Signal(syscall.SIGSTOP)
	frozen := owner
	emu.SetCallbackURL(cl.anyNode(frozen) + "/webhooks/whatsapp")
	// The attempts of the frozen node's time, as the new owner leaves them once
	// it settled them (those left open recorded interrupted): the woken node
	// must not change one.
	before := campaignAttempts(t, db, id)
	openAtFreeze := 0
	for _, a := range before {
		if a.EndAt == nil {
			openAtFreeze++
		}
	}
	owner, _, took := cl.waitOwner(id, frozen, drillTakeOver)
	t.Logf("node %s frozen; node %s runs the campaign %s later", frozen, owner, took.Round(10*time.Millisecond))
	l := lease(t, db, id)
	settled := func() (map[int64]storage.Attempt, int) {
		now, open := campaignAttempts(t, db, id), 0
		for aid := range now {
			if _, old := before[aid]; !old {
				delete(now, aid)
			} else if now[aid].EndAt == nil {
				open++
			}
		}
		return now, open
	}
	atTakeOver, open := settled()
	for deadline := time.Now().Add(drillTakeOver); open > 0; atTakeOver, open = settled() {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts of the frozen node still open %s after the take-over", open, drillTakeOver)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	for deadline := time.Now().Add(3 * drillLeaseTTL); metric(t, p.url, "turbina_cluster_leases_lost_total") < 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the woken node %s did not stop its run:\n%s", frozen, tail(p.Output(), 40))
		}
	}
	// A node just woken may be unready for a probe or two (the database
	// closed its connections while it was frozen), then says what it runs.
	var ready struct{ Campaigns []string }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if status, body := get(t, p.url+"/readyz", ""); status == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &ready); err != nil {
				t.Fatalf("readyz %s: %v", body, err)
			}
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the woken node not ready 10 s after it woke: %d %s", status, body)
		}
	}
	if slices.Contains(ready.Campaigns, cid) {
		t.Errorf("the woken node still says it runs campaign %s: %v", cid, ready.Campaigns)
	}
	time.Sleep(drillRenewEvery)
	if now := lease(t, db, id); now.NodeID != l.NodeID || now.Epoch != l.Epoch {
		t.Errorf("after the frozen node woke, the lease is %+v, want %+v's still", now, l)
	}
	after, _ := settled()
	changed := 0
	for aid, a := range atTakeOver {
		b := after[aid]
		// WhatsApp's own statuses (delivered, then read) still reach a sent
		// template through whichever node takes the webhook: evidence, not a
		// write of the run's.
		statusOnly := b.Channel == campaigns.ChannelWhatsAppTemplate && templateStatusRank(b.Outcome) > templateStatusRank(a.Outcome) && templateStatusRank(a.Outcome) > 0
		if b.State != a.State || b.Outcome != a.Outcome && !statusOnly || !b.EndAt.Equal(*a.EndAt) || b.AgentID != a.AgentID {
			changed++
			t.Errorf("attempt %d written after the take-over: %+v, was %+v", aid, b, a)
		}
	}
	t.Logf("woken node: %v fenced writes refused, %v runs stopped for a lost lease; %d attempts of its time unchanged (%d open when it froze)",
		metric(t, p.url, "turbina_cluster_fencing_refusals_total"), metric(t, p.url, "turbina_cluster_leases_lost_total"), len(atTakeOver)-changed, openAtFreeze)

	d.wind(driver)
	waitWebhooksQuiet(t, emu)
	carrier.Stop()
	checkClusterLedger(t, db, id, readInvites(t, d.trace), emu)
}

// clusterDrill is the scene of the cluster drills: three nodes on one
// PostgreSQL database, sipp as the carrier (answering, holding each call until
// we hang up), the WhatsApp emulator, and a campaign of contacts created (not
// started) through the first node.
type clusterDrill struct {
	cl      *cluster
	carrier *sipptest.Proc
	trace   string // sipp's message trace
	emu     *emulator.Emulator
	first   *proc
	cid     string
	id      int64
}

// startClusterDrill starts the scene, the nodes' engine section being engine.
func startClusterDrill(t *testing.T, contacts int, engine map[string]any) *clusterDrill {
	t.Helper()
	pgURL := pgtest.Own(t).Database(t, "")
	d := &clusterDrill{trace: filepath.Join(t.TempDir(), "sipp-messages.log")}
	d.carrier = sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 5000, Timeout: 5 * time.Minute,
		Extra: []string{"-trace_msg", "-message_file", d.trace}})
	d.emu = startEmulator(t)
	cfg, _ := json.Marshal(map[string]any{
		"sip":      map[string]any{"trunks": []any{map[string]any{"name": "carrier", "address": d.carrier.Addr, "keepalive_interval": "off"}}},
		"engine":   engine,
		"cluster":  map[string]any{"lease_ttl": drillLeaseTTL.String(), "renew_every": drillRenewEvery.String()},
		"whatsapp": whatsappSection(d.emu, 50),
	})
	cfgFile := filepath.Join(t.TempDir(), "turbina.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	tokenKey := strings.Repeat("c", storage.MinTokenKeyLen)
	db, err := storage.Open(context.Background(), pgURL, storage.Options{TokenKey: []byte(tokenKey)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d.cl = &cluster{t: t, db: db, nodes: map[string]*proc{},
		env: []string{"TURBINA_DATABASE_URL=" + pgURL, "TURBINA_ADMIN_TOKEN=" + crashAdmin, "TURBINA_CONFIG=" + cfgFile, "TURBINA_TOKEN_KEY=" + tokenKey}}
	d.first = d.cl.startNode()
	d.emu.SetCallbackURL(d.first.url + "/webhooks/whatsapp")
	d.cid = clusterCampaign(t, d.first.url, contacts)
	d.id, _ = strconv.ParseInt(d.cid, 10, 64)
	d.cl.startNode()
	d.cl.startNode()
	return d
}

// wind ends the drill's run: the campaign is paused, and once the agents
// ended the calls under way, they stop and every node is stopped (SIGTERM,
// exit 0). A node stopped with a call up would wait for its drain timeout.
func (d *clusterDrill) wind(driver *agentDriver) {
	t := d.cl.t
	t.Helper()
	call(t, "POST", d.cl.anyNode("")+"/api/v1/campaigns/"+d.cid+"/pause", crashAdmin, "", nil, 200, nil)
	for deadline := time.Now().Add(drillTakeOver); ; time.Sleep(100 * time.Millisecond) {
		open, err := d.cl.db.OpenAttempts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempts still open %s after the campaign paused: %+v", drillTakeOver, open)
		}
	}
	driver.halt()
	d.cl.mu.Lock()
	nodes := make([]*proc, 0, len(d.cl.nodes))
	for _, p := range d.cl.nodes {
		nodes = append(nodes, p)
	}
	d.cl.mu.Unlock()
	for _, p := range nodes {
		p.stop(t)
	}
}

// clusterCampaign creates a campaign of n contacts (not started): one SIP
// attempt, then the WhatsApp template.
func clusterCampaign(t *testing.T, url string, n int) string {
	t.Helper()
	var c struct{ ID string }
	call(t, "POST", url+"/api/v1/campaigns", crashAdmin, "application/json", strings.NewReader(`{"name":"cluster drill",
		"caller_id":"+551130000000","default_country":"BR","calling_window":{"start":"00:00","end":"23:59"},"holidays":{"national":false},
		"pacing":{"mode":"progressive"},"ladder":[{"channel":"sip","max_attempts":1,"retry_delay":"2s"},
		{"channel":"whatsapp_template","max_attempts":1,"template":"lembrete","language":"pt_BR","params":["name","plano"]}]}`), 201, &c)
	var csv bytes.Buffer
	csv.WriteString("name,phone,plano\n")
	for i := range n {
		fmt.Fprintf(&csv, "Cliente %d,+55119%08d,Plano %d\n", i, 88000000+i, i)
	}
	var rep struct{ Imported int }
	call(t, "POST", url+"/api/v1/campaigns/"+c.ID+"/contacts", crashAdmin, "text/csv", &csv, 200, &rep)
	if rep.Imported != n {
		t.Fatalf("imported %d contacts, want %d", rep.Imported, n)
	}
	return c.ID
}

// campaignAttempts are every attempt of the campaign, by ID.
func campaignAttempts(t *testing.T, db *storage.DB, campaign int64) map[int64]storage.Attempt {
	t.Helper()
	ctx := context.Background()
	list, _, err := db.ListContacts(ctx, campaign, storage.ContactFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]storage.Attempt{}
	for _, ct := range list {
		as, err := db.ListAttempts(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			out[a.ID] = a
		}
	}
	return out
}

// lease is the campaign's lease as stored.
func lease(t *testing.T, db *storage.DB, campaign int64) storage.Lease {
	t.Helper()
	leases, err := db.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.CampaignID == campaign {
			return l
		}
	}
	t.Fatalf("campaign %d has no lease", campaign)
	return storage.Lease{}
}

// inviteLine is an INVITE's request line and the number it calls.
var inviteLine = regexp.MustCompile(`^INVITE sip:\+?(\d+)@`)

// readInvites reads sipp's message trace: the distinct INVITEs (by Call-ID)
// the carrier received, by the number called.
func readInvites(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	// Each message of the trace follows a line of dashes and its direction.
	for _, msg := range strings.Split(string(b), "-----------------------------------------------") {
		if !strings.Contains(msg, "message received") {
			continue
		}
		number, callID := "", ""
		for _, line := range strings.Split(msg, "\n") {
			line = strings.TrimSpace(line)
			if m := inviteLine.FindStringSubmatch(line); m != nil {
				number = m[1]
			}
			if v, ok := strings.CutPrefix(line, "Call-ID:"); ok {
				callID = strings.TrimSpace(v)
			}
		}
		if number != "" && callID != "" {
			if out[number] == nil {
				out[number] = map[string]bool{}
			}
			out[number][callID] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("sipp's trace has no INVITE:\n%s", tail(string(b), 20))
	}
	return out
}

// notPlaced are the outcomes of a SIP attempt that may have sent no INVITE: its
// node died before the INVITE left, or every trunk was known down.
var notPlaced = map[campaigns.Outcome]bool{campaigns.OutcomeInterrupted: true, campaigns.OutcomeChannelDown: true}

// checkClusterLedger compares every contact's attempts with what the carrier
// (INVITEs by number) and WhatsApp (templates accepted) saw.
func checkClusterLedger(t *testing.T, db *storage.DB, campaign int64, invites map[string]map[string]bool, emu *emulator.Emulator) {
	t.Helper()
	ctx := context.Background()
	if open, err := db.OpenAttempts(ctx); err != nil || len(open) != 0 {
		t.Errorf("attempts left open: %+v, %v", open, err)
	}
	_, templatesTo, _ := acceptedOnce(t, emu, isTemplate, "template")
	list, _, err := db.ListContacts(ctx, campaign, storage.ContactFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var dialled, interrupted, templates int
	for _, ct := range list {
		number := strings.TrimPrefix(ct.Phone, "+")
		as, err := db.ListAttempts(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		// An interrupted template send is made again under its key, so only
		// the template attempts not interrupted are one at most.
		var sip, wa []storage.Attempt
		sentAttempts := 0
		for _, a := range as {
			cut := a.Outcome == string(campaigns.OutcomeInterrupted)
			switch {
			case a.Channel == campaigns.ChannelSIP:
				sip = append(sip, a)
			case a.Channel == campaigns.ChannelWhatsAppTemplate && !cut:
				wa = append(wa, a)
			}
			if a.Channel == campaigns.ChannelWhatsAppTemplate {
				sentAttempts++
			}
			if cut {
				interrupted++
			}
		}
		saw := len(invites[number])
		dialled += saw
		switch {
		case saw > 1:
			t.Errorf("contact %s: the carrier got %d INVITEs, want one at most (the SIP rung has one attempt)", number, saw)
		case len(sip) > 1:
			t.Errorf("contact %s: %d SIP attempts, want one at most: %+v", number, len(sip), sip)
		case len(sip) == 1 && saw == 0 && !notPlaced[campaigns.Outcome(sip[0].Outcome)]:
			t.Errorf("contact %s: SIP attempt recorded %s, but the carrier never got its INVITE", number, sip[0].Outcome)
		case len(sip) == 0 && saw > 0:
			t.Errorf("contact %s: the carrier got an INVITE no attempt records", number)
		}
		switch sent := templatesTo[number]; {
		case len(wa) > 1:
			t.Errorf("contact %s: %d template attempts not interrupted, want one at most: %+v", number, len(wa), wa)
		case sent > 0 && sentAttempts == 0:
			t.Errorf("contact %s: WhatsApp accepted a template no attempt records", number)
		case sent == 0 && len(wa) == 1 && campaigns.Outcome(wa[0].Outcome).Reached():
			t.Errorf("contact %s: template attempt recorded %s, but WhatsApp never accepted it", number, wa[0].Outcome)
		}
		templates += templatesTo[number]
	}
	t.Logf("%d contacts: %d dialled, %d attempts interrupted by the kills, %d templates sent", len(list), dialled, interrupted, templates)
	if interrupted == 0 || templates == 0 {
		t.Error("no attempt was interrupted, or no template sent: the kills came when nothing was under way, the drill proved nothing")
	}
}

// templateStatusRank orders the statuses WhatsApp reports for a sent
// template (0: not one of them).
func templateStatusRank(outcome string) int {
	switch campaigns.Outcome(outcome) {
	case campaigns.OutcomeSent:
		return 1
	case campaigns.OutcomeDelivered:
		return 2
	case campaigns.OutcomeRead:
		return 3
	}
	return 0
}
