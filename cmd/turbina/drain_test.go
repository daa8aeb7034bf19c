package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/storage"
)

// drainServer is a turbina serve process dialling a sipp carrier that answers
// and holds each call until we hang up, with one agent played through the
// API, once the agent is on a call.
type drainServer struct {
	p       *proc
	carrier *sipptest.Proc
	msgs    string // sipp's message log
	dataDir string
	agent   string // the agent's API token
	// campaign is the campaign's id.
	campaign int64
}

func startDrainServer(t *testing.T, drainTimeout time.Duration) *drainServer {
	t.Helper()
	s := &drainServer{msgs: filepath.Join(t.TempDir(), "messages.log"), dataDir: t.TempDir()}
	s.carrier = sipptest.Start(t, "answer.xml", sipptest.Options{Calls: 10, Timeout: 90 * time.Second,
		Extra: []string{"-trace_msg", "-message_file", s.msgs}})
	cfgFile := filepath.Join(t.TempDir(), "turbina.json")
	cfgJSON := fmt.Sprintf(`{"sip":{"trunks":[{"name":"carrier","address":%q,"keepalive_interval":"off"}]},"engine":{"ring_timeout":"5s","drain_timeout":%q}}`,
		s.carrier.Addr, drainTimeout.String())
	if err := os.WriteFile(cfgFile, []byte(cfgJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	s.p = start(t, []string{"TURBINA_DATA_DIR=" + s.dataDir, "TURBINA_ADMIN_TOKEN=" + crashAdmin, "TURBINA_CONFIG=" + cfgFile}, "serve")
	var c struct{ ID string }
	call(t, "POST", s.p.url+"/api/v1/campaigns", crashAdmin, "application/json", strings.NewReader(`{"name":"drain",
		"caller_id":"+551130000000","calling_window":{"start":"00:00","end":"23:59"},"holidays":{"national":false},"pacing":{"mode":"progressive"},
		"ladder":[{"channel":"sip","max_attempts":1,"retry_delay":"1h"}]}`), 201, &c)
	csv := "name,phone\nCliente 0,+5511986000000\nCliente 1,+5511986000001\nCliente 2,+5511986000002\n"
	call(t, "POST", s.p.url+"/api/v1/campaigns/"+c.ID+"/contacts", crashAdmin, "text/csv", strings.NewReader(csv), 200, nil)
	s.agent = drillAgents(t, s.p.url, c.ID, 1)[0]
	call(t, "POST", s.p.url+"/api/v1/agent/login", s.agent, "application/json", strings.NewReader(`{}`), 200, nil)
	call(t, "POST", s.p.url+"/api/v1/agent/ready", s.agent, "application/json", strings.NewReader(`{}`), 200, nil)
	call(t, "POST", s.p.url+"/api/v1/campaigns/"+c.ID+"/start", crashAdmin, "", nil, 200, nil)
	var err error
	if s.campaign, err = strconv.ParseInt(c.ID, 10, 64); err != nil {
		t.Fatal(err)
	}
	s.waitAgent(t, "on_call", 20*time.Second)
	return s
}

// agentState is the agent's state as the API says.
func (s *drainServer) agentState(t *testing.T) string {
	t.Helper()
	var a struct{ State string }
	call(t, "GET", s.p.url+"/api/v1/agent", s.agent, "", nil, 200, &a)
	return a.State
}

func (s *drainServer) waitAgent(t *testing.T, state string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for st := s.agentState(t); st != state; st = s.agentState(t) {
		if time.Now().After(deadline) {
			t.Fatalf("agent %s, want %s within %s:\n%s", st, state, within, tail(s.p.Output(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the process.
func (s *drainServer) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitDraining waits until /readyz says draining, and the metrics and the
// wallboard (whose snapshot may be a second old) say so too.
func (s *drainServer) waitDraining(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, ready := get(t, s.p.url+"/readyz", "")
		_, metrics := get(t, s.p.url+"/metrics", "")
		var wb struct{ Draining bool }
		call(t, "GET", s.p.url+"/api/v1/wallboard", crashAdmin, "", nil, 200, &wb)
		if status == http.StatusServiceUnavailable && strings.Contains(ready, `"code":"draining"`) &&
			strings.Contains(metrics, "\nturbina_draining 1\n") && wb.Draining {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGTERM: /readyz %d %s, want 503 draining; turbina_draining 1 in the metrics: %t; the wallboard says draining: %t",
				status, ready, strings.Contains(metrics, "\nturbina_draining 1\n"), wb.Draining)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits for the process to exit within d and checks it exited 0.
func (s *drainServer) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-s.p.done:
	case <-time.After(d):
		t.Fatalf("turbina did not exit within %s:\n%s", d, tail(s.p.Output(), 30))
	}
	if code := s.p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("turbina exited with %d:\n%s", code, tail(s.p.Output(), 30))
	}
}

// attempts are the campaign's attempts in the stopped server's database.
func (s *drainServer) attempts(t *testing.T) []storage.Attempt {
	t.Helper()
	db := openDB(t, s.dataDir)
	ctx := context.Background()
	list, _, err := db.ListContacts(ctx, s.campaign, storage.ContactFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []storage.Attempt
	for _, ct := range list {
		as, err := db.ListAttempts(ctx, ct.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, as...)
	}
	return out
}

// carrierSaw checks what the carrier got: one INVITE, placed before the
// signal, and its BYE no sooner than notBefore.
func (s *drainServer) carrierSaw(t *testing.T, signalled, notBefore time.Time) {
	t.Helper()
	s.carrier.Stop()
	msgs := sipptest.ReadMessages(t, s.msgs)
	if invites := sipptest.NewInvites(msgs); len(invites) != 1 || invites[0].At.After(signalled) {
		t.Errorf("the carrier got INVITEs %+v, want the one placed before SIGTERM (%s)", invites, signalled.Format(time.StampMicro))
	}
	byes := 0
	for _, m := range msgs {
		if m.Received && strings.HasPrefix(m.First, "BYE ") {
			byes++
			if m.At.Before(notBefore) {
				t.Errorf("our BYE reached the carrier at %s, before %s", m.At.Format(time.StampMicro), notBefore.Format(time.StampMicro))
			}
		}
	}
	if byes != 1 {
		t.Errorf("the carrier got %d BYEs, want 1", byes)
	}
}

// watchWallboard keeps the wallboard's event stream open, as a supervisor's
// page does, and reports whether a snapshot said the node drains.
func (s *drainServer) watchWallboard(t *testing.T) (sawDraining func() bool) {
	t.Helper()
	req, err := http.NewRequest("GET", s.p.url+"/api/v1/wallboard/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+crashAdmin)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("wallboard stream: %s", resp.Status)
	}
	var saw atomic.Bool
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") && strings.Contains(sc.Text(), `"draining":true`) {
				saw.Store(true)
			}
		}
	}()
	return saw.Load
}

// agentPage opens the agent's event socket, as the agent page does, and
// returns the event types it gets, then the socket's close status, on a channel.
func (s *drainServer) agentPage(t *testing.T) <-chan string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.p.url, "http")+"/api/v1/agent/events?access_token="+s.agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	got := make(chan string, 64)
	go func() {
		defer close(got)
		for {
			var ev struct{ Type string }
			if err := wsjson.Read(ctx, conn, &ev); err != nil {
				got <- fmt.Sprintf("closed %d", websocket.CloseStatus(err))
				return
			}
			got <- ev.Type
		}
	}()
	return got
}

// waitFor reads page's events until want, and fails when the socket ends first.
func waitFor(t *testing.T, page <-chan string, want string) {
	t.Helper()
	var seen []string
	for ev := range page {
		if ev == want {
			return
		}
		seen = append(seen, ev)
	}
	t.Fatalf("the agent page got %v, not %s", seen, want)
}

// get fetches url and returns the status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSIGTERMDrainsAConnectedCall is the rolling restart of one node: SIGTERM
// during a connected call. /readyz says draining at once, the HTTP API keeps
// serving, the call keeps its SIP dialog (the carrier gets no BYE) until the
// agent hangs up, no new call is placed although the agent is free again,
// and the process exits 0 once the call's wrap-up is closed, with the
// attempt recorded as it ended.
func TestSIGTERMDrainsAConnectedCall(t *testing.T) {
	s := startDrainServer(t, time.Minute)
	// A supervisor watches: the open stream neither holds the exit up nor
	// makes it fail.
	sawDraining := s.watchWallboard(t)
	page := s.agentPage(t)
	signalled := time.Now()
	s.signal(t, syscall.SIGTERM)
	s.waitDraining(t)
	waitFor(t, page, "draining")
	for deadline := time.Now().Add(10 * time.Second); !sawDraining(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the wallboard's stream never said the node drains")
		}
	}
	if st := s.agentState(t); st != "on_call" {
		t.Fatalf("agent %s after SIGTERM, want still on_call", st)
	}
	hungUp := time.Now()
	call(t, "POST", s.p.url+"/api/v1/agent/hangup", s.agent, "application/json", strings.NewReader(`{}`), 200, nil)
	s.waitAgent(t, "wrap_up", 10*time.Second)
	select {
	case <-s.p.done:
		t.Fatalf("turbina exited before the agent's wrap-up was closed:\n%s", tail(s.p.Output(), 30))
	default:
	}
	call(t, "POST", s.p.url+"/api/v1/agent/disposition", s.agent, "application/json", strings.NewReader(`{"code":"sale"}`), 200, nil)
	// Its work done, the page is told to reconnect (unless the exit that
	// follows at once overtakes the event), and let go as the server restarts.
	var rest []string
	for ev := range page {
		rest = append(rest, ev)
	}
	t.Logf("after the disposition the agent page got %v\n%s", rest, tail(s.p.Output(), 40))
	if len(rest) == 0 || rest[len(rest)-1] != fmt.Sprintf("closed %d", websocket.StatusServiceRestart) {
		t.Errorf("after the disposition the agent page got %v, want its socket closed %d (service restart)", rest, websocket.StatusServiceRestart)
	}
	// Within the HTTP server's own shutdown bound (10 s): streams do not hold it.
	s.waitExit(t, 8*time.Second)
	as := s.attempts(t)
	if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeConnected) || as[0].HangupBy != "agent" || as[0].Disposition != "sale" {
		t.Fatalf("attempts %+v, want the one call: connected, hung up by the agent, sale", as)
	}
	s.carrierSaw(t, signalled, hungUp)
}

// TestDrainCutShort: a call still up when the drain ends (its timeout, or a
// second SIGTERM) is hung up and recorded interrupted, hung up by us, and the
// process exits 0 within the bound.
func TestDrainCutShort(t *testing.T) {
	for _, tt := range []struct {
		name         string
		drainTimeout time.Duration
		second       bool
	}{
		{"timeout", 2 * time.Second, false},
		{"second signal", time.Hour, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startDrainServer(t, tt.drainTimeout)
			signalled := time.Now()
			s.signal(t, syscall.SIGTERM)
			s.waitDraining(t)
			if tt.second {
				s.signal(t, syscall.SIGTERM)
			}
			// The bound: the drain's, and the hang-ups' and the HTTP server's own.
			s.waitExit(t, min(tt.drainTimeout, time.Second)+15*time.Second)
			if tt.drainTimeout < time.Hour && time.Since(signalled) < tt.drainTimeout {
				t.Errorf("turbina exited %s after SIGTERM, before the drain timeout %s", time.Since(signalled), tt.drainTimeout)
			}
			as := s.attempts(t)
			if len(as) != 1 || as[0].Outcome != string(campaigns.OutcomeInterrupted) || as[0].HangupBy != "local" || as[0].ConnectAt == nil {
				t.Fatalf("attempts %+v, want the connected call ended interrupted, hung up by us", as)
			}
			s.carrierSaw(t, signalled, signalled)
		})
	}
}
