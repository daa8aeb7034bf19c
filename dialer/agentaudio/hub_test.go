package agentaudio

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/sip"
	"github.com/turbina-dialer/turbina/internal/phonetest"
	"github.com/turbina-dialer/turbina/media"
)

// errNotLoggedIn is the pool's refusal of an agent who is not logged in.
var errNotLoggedIn = errors.New("agent is not logged in")

// pool is the agent pool the hub tells of legs: it holds who is logged in and
// whose audio is up.
type pool struct {
	mu       sync.Mutex
	loggedIn map[int64]bool
	audio    map[int64]bool
	downs    int
}

func newPool(agents ...int64) *pool {
	p := &pool{loggedIn: map[int64]bool{}, audio: map[int64]bool{}}
	for _, id := range agents {
		p.loggedIn[id] = true
	}
	return p
}

func (p *pool) LoggedIn(agentID int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.loggedIn[agentID] {
		return errNotLoggedIn
	}
	return nil
}

func (p *pool) AudioUp(agentID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.audio[agentID] = true
}

func (p *pool) AudioDown(agentID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.audio[agentID] = false
	p.downs++
}

func (p *pool) hasAudio(agentID int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.audio[agentID]
}

// waitAudio waits until agentID's audio is up (or down) as want says.
func (p *pool) waitAudio(t *testing.T, agentID int64, want bool, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); p.hasAudio(agentID) != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("agent %d's audio up = %v after %v, want %v", agentID, !want, within, want)
		}
	}
}

// newHub returns a hub over agents, closed at the test's cleanup.
func newHub(t *testing.T, cfg Config, agents Agents) *Hub {
	t.Helper()
	h := New(cfg, agents)
	t.Cleanup(h.Close)
	return h
}

// udpLeg is a PCMU leg on a loopback socket and the socket of the phone at its
// other end; ended is closed when the hub ends the leg's session.
func udpLeg(t *testing.T) (leg media.Leg, phone *net.UDPConn, end func() error, ended <-chan struct{}) {
	t.Helper()
	legConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	phone, err = net.DialUDP("udp4", nil, legConn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close(); legConn.Close() })
	done := make(chan struct{})
	var once sync.Once
	end = func() error { once.Do(func() { close(done) }); return legConn.Close() }
	return media.NewUDPLeg(legConn, phone.LocalAddr().(*net.UDPAddr), media.PCMU), phone, end, done
}

// TestLegLostWhenItFallsSilent: an agent's phone that stops sending (its
// network gone, no BYE) is detached once the allowance passes, so the agent is
// shown without audio instead of taking customers into silence.
func TestLegLostWhenItFallsSilent(t *testing.T) {
	agents := newPool(1)
	h := newHub(t, Config{Silence: 300 * time.Millisecond}, agents)
	leg, phone, end, ended := udpLeg(t)
	h.Attach(1, leg, end, nil)
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	for i := range 50 { // a second of audio: three allowances
		pkt[3] = byte(i)
		if _, err := phone.Write(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !agents.hasAudio(1) || h.Bridge(1) == nil {
		t.Fatal("the agent lost its audio while the phone was sending")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent phone's leg was not ended")
	}
	agents.waitAudio(t, 1, false, time.Second)
	if h.Bridge(1) != nil {
		t.Error("the silent phone's bridge is still the agent's")
	}
}

// TestLegReplacedAndDone: a second session of the same agent replaces the
// first, which is ended without the agent losing audio; closing the session's
// done channel detaches it.
func TestLegReplacedAndDone(t *testing.T) {
	agents := newPool(1)
	h := newHub(t, Config{}, agents)
	first, _, endFirst, firstEnded := udpLeg(t)
	h.Attach(1, first, endFirst, nil)
	b := h.Bridge(1)
	second, _, endSecond, secondEnded := udpLeg(t)
	done := make(chan struct{})
	h.Attach(1, second, endSecond, done)
	select {
	case <-firstEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced session was not ended")
	}
	if h.Bridge(1) == b || h.Bridge(1) == nil {
		t.Error("the agent's bridge is not the new session's")
	}
	if !agents.hasAudio(1) {
		t.Error("the agent lost its audio when its session was replaced")
	}
	close(done)
	select {
	case <-secondEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("the session whose done closed was not ended")
	}
	agents.waitAudio(t, 1, false, time.Second)
	agents.mu.Lock()
	defer agents.mu.Unlock()
	if agents.downs != 1 {
		t.Errorf("the pool was told of %d audio losses, want 1 (a replaced leg is not a loss)", agents.downs)
	}
}

// TestCloseEndsSessions: Close ends every agent's session and waits for their
// bridges; a session offered after it is ended at once.
func TestCloseEndsSessions(t *testing.T) {
	agents := newPool(1, 2, 3)
	h := New(Config{}, agents)
	var ended []<-chan struct{}
	for id := int64(1); id <= 3; id++ {
		leg, _, end, done := udpLeg(t)
		h.Attach(id, leg, end, nil)
		ended = append(ended, done)
	}
	h.Close()
	for i, ch := range ended {
		select {
		case <-ch:
		default:
			t.Errorf("agent %d's session still up after Close", i+1)
		}
		if agents.hasAudio(int64(i + 1)) {
			t.Errorf("agent %d still shows audio", i+1)
		}
	}
	leg, _, end, late := udpLeg(t)
	h.Attach(1, leg, end, nil)
	select {
	case <-late:
	default:
		t.Error("a session attached after Close was kept")
	}
	if h.Bridge(1) != nil || agents.hasAudio(1) {
		t.Error("a session attached after Close has a bridge")
	}
}

// TestRefusals: an offer or a phone the hub cannot take gets an error that
// says why, and no audio.
func TestRefusals(t *testing.T) {
	peers, err := media.NewAgentPeers(media.ICEConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		do   func(h *Hub) error
		want error
	}{
		{"offer without peers", Config{}, func(h *Hub) error { _, err := h.Offer(context.Background(), 1, "v=0"); return err }, ErrNoAgentMedia},
		{"offer of an agent not logged in", Config{Peers: peers}, func(h *Hub) error { _, err := h.Offer(context.Background(), 2, "v=0"); return err }, errNotLoggedIn},
		{"phone without a registrar", Config{}, func(h *Hub) error { return h.Phone(context.Background(), 1) }, ErrNoRegistrar},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			agents := newPool(1)
			h := newHub(t, tc.cfg, agents)
			if err := tc.do(h); !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			}
			if agents.hasAudio(1) || agents.hasAudio(2) {
				t.Error("audio up after a refusal")
			}
		})
	}
}

// TestNailUpPhoneErrors: an agent who is not logged in, or whose phone is not
// registered, gets an error that says so and no audio.
func TestNailUpPhoneErrors(t *testing.T) {
	agents := newPool(1)
	h := newHub(t, Config{}, agents)
	reg := phonetest.Registrar(t, sip.RegistrarConfig{}, map[string]int64{"agent1": 1})
	tests := []struct {
		name  string
		agent int64
		want  error
	}{
		{"not registered", 1, sip.ErrNotRegistered},
		{"not logged in", 1001, errNotLoggedIn},
	}
	for _, tc := range tests {
		if err := h.NailUpPhone(context.Background(), tc.agent, reg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if agents.hasAudio(1) {
		t.Error("audio up without a phone")
	}
}

// TestKilledPhoneIsLost: an agent's nailed-up phone (baresip) is killed. The
// registrar's keepalive notices it stopped answering: the agent is shown without
// audio, as when the leg falls silent, and the phone must register again before
// it can be nailed up.
func TestKilledPhoneIsLost(t *testing.T) {
	agents := newPool(1)
	h := newHub(t, Config{}, agents)
	reg := phonetest.Registrar(t, sip.RegistrarConfig{
		KeepaliveInterval: sip.Duration(200 * time.Millisecond),
		KeepaliveTimeout:  sip.Duration(2 * time.Second),
	}, map[string]int64{"agent1": 1})
	phone := phonetest.Start(t, reg, "agent1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.NailUpPhone(ctx, 1, reg); err != nil {
		t.Fatal(err)
	}
	if !agents.hasAudio(1) {
		t.Fatal("the agent's audio is not up after NailUpPhone")
	}
	phone.Kill(t)
	agents.waitAudio(t, 1, false, 25*time.Second)
	if err := h.NailUpPhone(ctx, 1, reg); !errors.Is(err, sip.ErrNotRegistered) {
		t.Errorf("nailing up the killed phone: %v, want ErrNotRegistered", err)
	}
}
