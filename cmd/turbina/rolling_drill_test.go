package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// TestRollingRestartDropsNoCall is issue 19's rolling restart: three nodes on
// one PostgreSQL database run a campaign that dials sipp (which holds each
// call until we hang up) for agents who talk a second and a half. Each of the
// three nodes, the campaign's owner among them, is sent SIGTERM in turn, exits
// 0 once drained, and is replaced before the next. No connected call is cut:
// every one was ended by its agent, none interrupted; the campaign dials again
// after each restart; and every contact's attempts match the INVITEs sipp got.
func TestRollingRestartDropsNoCall(t *testing.T) {
	const contacts, talk = 300, 1500 * time.Millisecond
	d := startClusterDrill(t, contacts, map[string]any{"ring_timeout": "5s", "drain_timeout": "10s"})
	cl, id := d.cl, d.id
	cl.mu.Lock()
	var olds []string
	for node := range cl.nodes {
		olds = append(olds, node)
	}
	cl.mu.Unlock()
	driver := &agentDriver{follow: func() string { return cl.ownerURL(id) }, tokens: drillAgents(t, d.first.url, d.cid, 3), talk: talk}
	driver.run(t)
	call(t, "POST", d.first.url+"/api/v1/campaigns/"+d.cid+"/start", crashAdmin, "", nil, 200, nil)

	// dialled waits until the campaign has more attempts than n, and returns
	// how many it has.
	dialled := func(n int, what string) int {
		t.Helper()
		deadline := time.Now().Add(drillTakeOver)
		for {
			if got := len(campaignAttempts(t, cl.db, id)); got > n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("no dial %s within %s", what, drillTakeOver)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	n := dialled(0, "at the start")
	cl.waitOwner(id, "", drillTakeOver)
	var owner string
	restartedOwner := false
	for i := range olds {
		// The node goes while the campaign talks: calls up, on it when it owns
		// them. The owner goes first (a node that joins may take the campaign
		// over, so a later owner may be a new node).
		n = dialled(n, "before the restart")
		owner, _ = cl.owner(id)
		if j := slices.Index(olds, owner); j > i {
			olds[i], olds[j] = olds[j], olds[i]
		}
		old := olds[i]
		cl.mu.Lock()
		p := cl.nodes[old]
		cl.mu.Unlock()
		restartedOwner = restartedOwner || old == owner
		signalled := time.Now()
		p.stop(t) // SIGTERM; exit 0 after the drain
		cl.forget(old)
		cl.startNode()
		owner, _, _ = cl.waitOwner(id, old, drillTakeOver)
		n = dialled(n, "after the restart")
		t.Logf("restart %d: node %s drained and exited in %s; node %s runs the campaign", i+1, old, time.Since(signalled).Round(10*time.Millisecond), owner)
	}
	if !restartedOwner {
		t.Fatal("the campaign's owner was never restarted")
	}

	d.wind(driver)
	d.carrier.Stop()
	invites := readInvites(t, d.trace)
	connected := 0
	list, _, err := cl.db.ListContacts(t.Context(), id, storage.ContactFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range list {
		as, err := cl.db.ListAttempts(t.Context(), ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		sip := 0
		for _, a := range as {
			if a.Channel != campaigns.ChannelSIP {
				continue
			}
			sip++
			if a.Outcome == string(campaigns.OutcomeInterrupted) {
				t.Errorf("contact %s: attempt %d interrupted by a restart: %+v", ct.Phone, a.ID, a)
			}
			if a.ConnectAt != nil {
				connected++
				if a.HangupBy != "agent" {
					t.Errorf("contact %s: connected attempt %d hung up by %q, want its agent: a restart cut it", ct.Phone, a.ID, a.HangupBy)
				}
			}
		}
		if saw := len(invites[strings.TrimPrefix(ct.Phone, "+")]); saw != sip {
			t.Errorf("contact %s: %d SIP attempts, the carrier got %d INVITEs", ct.Phone, sip, saw)
		}
	}
	t.Logf("%d contacts, %d calls connected across three restarts, none cut", len(list), connected)
	if connected == 0 {
		t.Error("no call connected: the drill proved nothing")
	}
}
