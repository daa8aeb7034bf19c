package dialer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/sipptest"
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
	phone := startPhone(t, reg, "agent1", agent)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := h.engine.NailUpPhone(ctx, agent, reg); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Fatal("the agent's audio is not up after NailUpPhone")
	}

	h.setState(c.ID, campaigns.StateRunning)
	h.waitOnCall(ctx, agent, "a call")
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
	phone.Command(t, "hangup")
	for a, _ := h.engine.Agents().Get(agent); a.Audio; a, _ = h.engine.Agents().Get(agent) {
		if ctx.Err() != nil {
			t.Fatal("the agent's audio stayed up after the phone hung up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the phone received is what the bridge sent it.
	_, received := phone.RTPStats(t, 3*time.Second)
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
	phone := startPhone(t, reg, "agent1", agent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.engine.NailUpPhone(ctx, agent, reg); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.engine.Agents().Get(agent); !a.Audio {
		t.Fatal("the agent's audio is not up after NailUpPhone")
	}

	phone.Kill(t)
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

// startPhone runs baresip registering username (password "pw-" + username)
// with reg over UDP, and waits until reg holds its binding for agentID.
func startPhone(t *testing.T, reg *sip.Registrar, username string, agentID int64) *baresiptest.Phone {
	t.Helper()
	phone := baresiptest.Start(t, baresiptest.Options{Registrar: reg.Addr().String(), User: username, Password: "pw-" + username})
	phone.WaitUntil(t, 10*time.Second, "register", func() bool { _, ok := reg.Lookup(agentID); return ok })
	return phone
}
