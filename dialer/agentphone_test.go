package dialer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/sipptest"
	"github.com/turbina-dialer/turbina/internal/testenv"
	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// TestCustomerAudioReachesASIPPhone: an agent's SIP phone (baresip) registers
// with Turbina's registrar, is called once and nailed up; a customer answered
// through a sipp carrier is switched onto it, and audio flows both ways through
// the bridge. The leg outlives the customer call and goes down when the phone
// hangs up.
func TestCustomerAudioReachesASIPPhone(t *testing.T) {
	carrier := sipptest.Start(t, "answer-rtp.xml", sipptest.Options{Calls: 1})
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: carrier.Addr}}})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0] // talks until the test hangs up
	reg := newPhoneRegistrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": agent})
	phone := startPhone(t, reg.Addr().String(), "agent1")
	phone.waitRegistered(t, reg, agent)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := h.engine.NailUpPhone(ctx, agent, reg); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Fatal("the agent's audio is not up after NailUpPhone")
	}

	h.setState(c.ID, campaigns.StateRunning)
	for a, _ := h.engine.Agents().Get(agent); a.State != AgentOnCall; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("no call reached the agent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Half a second of conversation, at least (sipp's stream is slow to start
	// on a loaded machine).
	var stats media.CallStats
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cur := h.engine.legs.bridge(agent).Current(); cur != nil {
			stats = cur.Stats()
		}
		if stats.ToAgent.Packets >= 25 && stats.ToCustomer.Packets >= 25 || time.Now().After(deadline) {
			break
		}
	}
	if stats.ToAgent.Packets < 25 {
		t.Errorf("bridge forwarded %d packets of the customer to the phone, want ≥ 25", stats.ToAgent.Packets)
	}
	if stats.ToCustomer.Packets < 25 {
		t.Errorf("bridge forwarded %d packets of the phone to the customer, want ≥ 25", stats.ToCustomer.Packets)
	}
	if err := h.engine.Hangup(ctx, agent); err != nil {
		t.Fatal(err)
	}
	carrier.Wait(t, 10*time.Second)
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Error("the phone's leg went down with the customer call")
	}

	// The agent hangs up the phone: the leg is detached.
	phone.command(t, "hangup")
	for a, _ := h.engine.Agents().Get(agent); a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("the agent's audio stayed up after the phone hung up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the phone received is what the bridge sent it.
	received := phone.received(t)
	t.Logf("bridge: %d packets to the phone, %d to the customer; baresip received %d", stats.ToAgent.Packets, stats.ToCustomer.Packets, received)
	if uint64(received) < stats.ToAgent.Packets {
		t.Errorf("baresip received %d packets, the bridge sent ≥ %d", received, stats.ToAgent.Packets)
	}
}

// TestKilledPhoneIsLost: an agent's nailed-up phone (baresip) is killed. The
// registrar's keepalive notices it stopped answering: the agent is shown without
// audio, as when the leg falls silent, and the phone must register again before
// it can be nailed up.
func TestKilledPhoneIsLost(t *testing.T) {
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: "127.0.0.1:9"}}})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0]
	reg := newPhoneRegistrar(t, sip.RegistrarConfig{
		KeepaliveInterval: sip.Duration(200 * time.Millisecond),
		KeepaliveTimeout:  sip.Duration(2 * time.Second),
	}, map[string]int64{"agent1": agent})
	phone := startPhone(t, reg.Addr().String(), "agent1")
	phone.waitRegistered(t, reg, agent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.engine.NailUpPhone(ctx, agent, reg); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Fatal("the agent's audio is not up after NailUpPhone")
	}

	phone.kill(t)
	for a, _ := h.engine.Agents().Get(agent); a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("the agent's audio stayed up after the phone was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.engine.NailUpPhone(ctx, agent, reg); !errors.Is(err, sip.ErrNotRegistered) {
		t.Errorf("nailing up the killed phone: %v, want ErrNotRegistered", err)
	}
}

// TestNailUpPhoneErrors: an agent who is not logged in, or whose phone is not
// registered, gets an error that says so and no audio.
func TestNailUpPhoneErrors(t *testing.T) {
	h := newHarness(t, sip.Config{Trunks: []sip.TrunkConfig{{Name: "carrier", Address: "127.0.0.1:9"}}})
	c := h.draft(1, campaigns.PacingProgressive, sipOnlyLadder(1))
	agent := h.agents(c.ID, 1, time.Hour)[0]
	reg := newPhoneRegistrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": agent})
	tests := []struct {
		name  string
		agent int64
		want  error
	}{
		{"not registered", agent, sip.ErrNotRegistered},
		{"not logged in", agent + 1000, ErrAgentNotLoggedIn},
	}
	for _, tc := range tests {
		err := h.engine.NailUpPhone(context.Background(), tc.agent, reg)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if a, _ := h.engine.Agents().Get(agent); a.Audio {
		t.Error("audio up without a phone")
	}
}

// newPhoneRegistrar starts a registrar configured by cfg on a free loopback port
// whose phone accounts are the given usernames (password "pw-" + username).
func newPhoneRegistrar(t *testing.T, cfg sip.RegistrarConfig, accounts map[string]int64) *sip.Registrar {
	t.Helper()
	creds := sip.CredentialsFunc(func(_ context.Context, username, realm string) (string, int64, bool, error) {
		id, ok := accounts[username]
		return storage.PhoneHA1(username, realm, "pw-"+username), id, ok, nil
	})
	log := slog.New(slog.NewTextHandler(newStoppingWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.ListenAddr = "127.0.0.1:0"
	r, err := sip.NewRegistrar(context.Background(), cfg, creds, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// stoppingWriter is testWriter that stops at the test's cleanup: the SIP
// stack's goroutines may log after the registrar is closed, and t.Log after
// the test has ended is a data race.
type stoppingWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func newStoppingWriter(t testing.TB) *stoppingWriter {
	w := &stoppingWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *stoppingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// phone is baresip (Debian) as an agent's SIP phone: it registers, answers at
// once, sends a sine tone as its microphone and needs no sound device. Its
// ctrl_tcp module takes the commands a user would type.
type phone struct {
	cmd      *exec.Cmd
	out      *lockedOutput
	done     chan struct{}
	ctrlAddr string
}

type lockedOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startPhone runs baresip registering username (password "pw-" + username)
// at registrar over UDP; it is stopped at cleanup.
func startPhone(t *testing.T, registrar, username string) *phone {
	t.Helper()
	bin := testenv.RequireTool(t, "baresip", "baresip")
	dir := t.TempDir()
	sipPort, ctrlPort := sipptest.FreePort(t), sipptest.FreePort(t)
	config := fmt.Sprintf(`poll_method		epoll
sip_listen		127.0.0.1:%d
call_max_calls		1
audio_player		aubridge,turbina-test
audio_source		ausine,440
audio_alert		aubridge,turbina-test
ausrc_srate		48000
ausrc_channels		2
rtp_stats		yes
rtp_ports		20000-29998
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			ctrl_tcp.so
module_tmp		account.so
module_app		menu.so
ctrl_tcp_listen		127.0.0.1:%d
`, sipPort, ctrlPort)
	accounts := fmt.Sprintf("<sip:%s@%s;transport=udp>;auth_pass=pw-%s;answermode=auto;regint=60;audio_codecs=PCMU,PCMA;mwi=no\n",
		username, registrar, username)
	for name, body := range map[string]string{"config": config, "accounts": accounts, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	// -n: SDP and SIP on loopback only; -t: quit by itself if left behind.
	cmd := exec.CommandContext(ctx, bin, "-n", "127.0.0.1", "-f", dir, "-t", "60")
	cmd.Dir = dir
	p := &phone{cmd: cmd, out: &lockedOutput{}, done: make(chan struct{}), ctrlAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ctrlPort))}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start baresip: %v", err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("baresip output:\n%s", sipptest.Tail(p.out.String(), 4000))
		}
	})
	return p
}

func (p *phone) waitRegistered(t *testing.T, r *sip.Registrar, agentID int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := r.Lookup(agentID); ok {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("baresip exited:\n%s", p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("baresip did not register")
		}
	}
}

// kill ends baresip with SIGKILL: no BYE, no unregistration, as when a phone
// crashes or loses its network.
func (p *phone) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// command sends one command to baresip's ctrl_tcp (a JSON netstring).
func (p *phone) command(t *testing.T, cmd string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.ctrlAddr, 3*time.Second)
	if err != nil {
		t.Fatalf("baresip control port: %v", err)
	}
	defer conn.Close()
	body, _ := json.Marshal(map[string]string{"command": cmd, "token": "test"})
	if _, err := fmt.Fprintf(conn, "%d:%s,", len(body), body); err != nil {
		t.Fatal(err)
	}
	// The reply is a netstring too: "LEN:{...},".
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	rd := bufio.NewReader(conn)
	size, err := rd.ReadString(':')
	if err != nil {
		t.Fatalf("baresip %s: no reply: %v", cmd, err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(size, ":"))
	if err != nil || n > 1<<16 {
		t.Fatalf("baresip %s: reply length %q", cmd, size)
	}
	reply := make([]byte, n+1)
	if _, err := io.ReadFull(rd, reply); err != nil {
		t.Fatalf("baresip %s: reply: %v", cmd, err)
	}
}

// received is the RTP packet count baresip printed at the end of its call.
func (p *phone) received(t *testing.T) int {
	t.Helper()
	re := regexp.MustCompile(`packets:\s+\d+\s+(\d+)`)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("baresip printed no RTP stats")
		}
	}
}
