package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// agentDriver plays agents through the API: ready, and each call hung up after a
// moment and dispositioned, the way a person at the agent page would. With
// follow set, the agents work on the node it names (the one running their
// campaign), signing in again there whenever it changes.
type agentDriver struct {
	url    string
	follow func() string
	tokens []string
	// talk is how long an agent stays on a call before hanging up (default 300 ms).
	talk time.Duration
	stop chan struct{}
	wg   sync.WaitGroup
}

func (d *agentDriver) run(t *testing.T) {
	t.Helper()
	d.stop = make(chan struct{})
	for _, tok := range d.tokens {
		at := ""
		if d.follow == nil {
			call(t, "POST", d.url+"/api/v1/agent/login", tok, "application/json", strings.NewReader(`{}`), 200, nil)
			call(t, "POST", d.url+"/api/v1/agent/ready", tok, "application/json", strings.NewReader(`{}`), 200, nil)
			at = d.url
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-d.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if d.follow != nil {
					if url := d.follow(); url != at && url != "" {
						if apiPost(url+"/api/v1/agent/login", tok, `{}`) != nil || apiPost(url+"/api/v1/agent/ready", tok, `{}`) != nil {
							continue
						}
						at = url
					}
				}
				var a struct {
					State string
					Since time.Time
				}
				if apiGet(at+"/api/v1/agent", tok, &a) != nil {
					continue
				}
				switch {
				case a.State == "on_call" && time.Since(a.Since) > cmp.Or(d.talk, 300*time.Millisecond):
					apiPost(at+"/api/v1/agent/hangup", tok, `{}`)
				case a.State == "wrap_up":
					apiPost(at+"/api/v1/agent/disposition", tok, `{"code":"sale"}`)
				}
			}
		}()
	}
}

func (d *agentDriver) halt() {
	close(d.stop)
	d.wg.Wait()
}

// apiGet and apiPost are the driver's calls: errors are tolerated, the server
// may be down on purpose.
func apiGet(url, token string, out any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func apiPost(url, token, body string) error {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// drillAgents creates n agent users assigned to the campaign and returns their API tokens.
func drillAgents(t *testing.T, url, campaignID string, n int) []string {
	t.Helper()
	var tokens []string
	for i := range n {
		var u struct{ ID string }
		call(t, "POST", url+"/api/v1/users", crashAdmin, "application/json",
			strings.NewReader(fmt.Sprintf(`{"username":"drill-agent-%d","role":"agent"}`, i)), 201, &u)
		var tok struct{ Token string }
		call(t, "POST", url+"/api/v1/users/"+u.ID+"/tokens", crashAdmin, "application/json", strings.NewReader(`{"name":"drill"}`), 201, &tok)
		call(t, "POST", url+"/api/v1/campaigns/"+campaignID+"/agents", crashAdmin, "application/json",
			strings.NewReader(fmt.Sprintf(`{"user_id":%q}`, u.ID)), 200, nil)
		tokens = append(tokens, tok.Token)
	}
	return tokens
}

// drillRetryDelay is the crash drill's rung delay: an interrupted call waits it.
const drillRetryDelay = 2 * time.Second

// TestKillDuringCallsLosesNoContact is the crash drill: SIGKILL while calls are up
// and agents are talking, then start again. The calls that were up are recorded as
// interrupted attempts that count, and their contacts tried again no sooner than
// the rung's retry delay; no contact is lost or reached twice.
func TestKillDuringCallsLosesNoContact(t *testing.T) {
	const contacts = 12
	carrier := sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 200, Timeout: 90 * time.Second})
	dataDir := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "turbina.json")
	cfgJSON := fmt.Sprintf(`{"sip":{"trunks":[{"name":"carrier","address":%q,"keepalive_interval":"off"}]},"engine":{"ring_timeout":"5s"}}`, carrier.Addr)
	if err := os.WriteFile(cfgFile, []byte(cfgJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := crashAdmin // waitDone reads the campaign with it
	env := []string{"TURBINA_DATA_DIR=" + dataDir, "TURBINA_ADMIN_TOKEN=" + admin, "TURBINA_CONFIG=" + cfgFile}
	p := start(t, env, "serve")

	var c struct{ ID string }
	call(t, "POST", p.url+"/api/v1/campaigns", admin, "application/json", strings.NewReader(`{"name":"drill",
		"caller_id":"+551130000000","calling_window":{"start":"00:00","end":"23:59"},"holidays":{"national":false},"pacing":{"mode":"progressive"},
		"ladder":[{"channel":"sip","max_attempts":2,"retry_delay":"`+drillRetryDelay.String()+`"}]}`), 201, &c)
	var csv bytes.Buffer
	csv.WriteString("name,phone\n")
	for i := range contacts {
		fmt.Fprintf(&csv, "Cliente %d,+55119%08d\n", i, 86000000+i)
	}
	call(t, "POST", p.url+"/api/v1/campaigns/"+c.ID+"/contacts", admin, "text/csv", &csv, 200, nil)
	tokens := drillAgents(t, p.url, c.ID, 2)
	driver := &agentDriver{url: p.url, tokens: tokens}
	driver.run(t)
	call(t, "POST", p.url+"/api/v1/campaigns/"+c.ID+"/start", admin, "", nil, 200, nil)

	// Kill once some contacts are done and an agent is talking.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page struct{ Total int }
		call(t, "GET", p.url+"/api/v1/campaigns/"+c.ID+"/contacts?limit=1&status=done", admin, "", nil, 200, &page)
		var agents struct{ Agents []struct{ State string } }
		call(t, "GET", p.url+"/api/v1/agents", admin, "", nil, 200, &agents)
		talking := false
		for _, a := range agents.Agents {
			talking = talking || a.State == "on_call"
		}
		if page.Total >= 2 && talking {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call under way to kill:\n%s", tail(p.Output(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill(t)
	driver.halt()

	p = start(t, env, "serve")
	driver = &agentDriver{url: p.url, tokens: tokens}
	driver.run(t)
	waitDone(t, p, c.ID, contacts, 60*time.Second)
	driver.halt()
	p.stop(t)

	db := openDB(t, dataDir)
	ctx := context.Background()
	id, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := db.ListContacts(ctx, id, storage.ContactFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	interrupted := 0
	for _, ct := range list {
		as, err := db.ListAttempts(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		connected := 0
		for _, a := range as {
			switch a.Outcome {
			case "connected":
				connected++
			case "interrupted":
				interrupted++
			default:
				t.Errorf("contact %s: attempt %d ended %q", ct.Phone, a.ID, a.Outcome)
			}
		}
		if connected != 1 || as[len(as)-1].Outcome != "connected" {
			t.Errorf("contact %s: attempts %+v, want exactly one connected, last", ct.Phone, as)
		}
		for i := 1; i < len(as); i++ {
			if as[i-1].EndAt != nil && as[i].CreatedAt.Sub(*as[i-1].EndAt) < drillRetryDelay-time.Millisecond {
				t.Errorf("contact %s: attempt %d started %s after the interrupted one ended, want the rung's %s",
					ct.Phone, as[i].ID, as[i].CreatedAt.Sub(*as[i-1].EndAt), drillRetryDelay)
			}
		}
	}
	if interrupted == 0 {
		t.Error("the kill interrupted no call: the drill proved nothing")
	}
}
