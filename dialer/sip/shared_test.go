package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/storetest"
	"github.com/turbina-dialer/turbina/storage"
)

// sharedStore is a real SQLite database with the test registrars' agents
// named (agent1 is user 1, agent2 user 2), where nodes' registrars share
// bindings.
func sharedStore(t *testing.T, agents ...string) *storage.DB {
	t.Helper()
	ctx := context.Background()
	store := storetest.Open(t)
	for i, name := range agents {
		u := storage.User{Username: name, Role: storage.RoleAgent}
		if err := store.CreateUser(ctx, storage.Actor{Username: "admin"}, &u); err != nil {
			t.Fatal(err)
		}
		if u.ID != int64(i+1) {
			t.Fatalf("%s is user %d, want %d as the test credentials say", name, u.ID, i+1)
		}
	}
	return store
}

// testNonceKey is the nonce key the test nodes share.
var testNonceKey = []byte("nonce key of the test's nodes")

// sharedNode is a registrar named node on store, with nonce key key.
func sharedNode(t *testing.T, store *storage.DB, node string, key []byte, cfg RegistrarConfig) *Registrar {
	t.Helper()
	r, _ := sharedNodeClock(t, store, node, key, cfg)
	return r
}

// sharedNodeClock is sharedNode with the registrar's clock.
func sharedNodeClock(t *testing.T, store *storage.DB, node string, key []byte, cfg RegistrarConfig) (*Registrar, *testClock) {
	t.Helper()
	cfg.Node, cfg.Shared, cfg.NonceKey = node, store, key
	return newTestRegistrar(t, cfg)
}

// TestNonceOfOneNodeIsGoodOnAnother: behind a shared address a phone may be
// challenged by node A and answer node B: B accepts A's nonce, as nodes share
// the key; a node with another key challenges again. The REGISTER replayed
// whole to A, with its fresh nonce, is refused: A reads B's binding of the
// same Call-ID and CSeq. The unregistration through A removes what B bound,
// and B stops holding (and probing) it.
func TestNonceOfOneNodeIsGoodOnAnother(t *testing.T) {
	store := sharedStore(t, "agent1", "agent2")
	a := sharedNode(t, store, "node-a", testNonceKey, RegistrarConfig{})
	b, bClock := sharedNodeClock(t, store, "node-b", testNonceKey, RegistrarConfig{})
	stranger := sharedNode(t, store, "node-c", []byte("another cluster's nonce key"), RegistrarConfig{})

	toA := newRawPhone(t, a.Addr(), "udp", "agent1", "secret1")
	contact := toA.contact()
	res := toA.do("REGISTER", contact)
	if res.StatusCode != 401 {
		t.Fatalf("first REGISTER to A: %d, want a challenge", res.StatusCode)
	}
	chal := toA.challenge(res)
	// The same phone's next request lands on B (or on the stranger).
	other := func(r *Registrar) *rawPhone {
		p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
		p.callID, p.cseq = toA.callID, toA.cseq
		return p
	}
	toC := other(stranger)
	if res := toC.do("REGISTER", contact, toC.authorizationFor(chal)); res.StatusCode != 401 {
		t.Errorf("A's nonce answered to a node with another key: %d, want 401", res.StatusCode)
	}
	toB := other(b)
	answer := toB.authorizationFor(chal)
	if res := toB.do("REGISTER", contact, answer); res.StatusCode != 200 {
		t.Fatalf("A's nonce answered to B: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if got, ok, err := a.Registered(context.Background(), 1); err != nil || !ok || got.Node != "node-b" {
		t.Fatalf("A sees agent1's phone %+v %v %v, want registered on node-b", got, ok, err)
	}

	// The same request again, to A: same Call-ID, CSeq and nonce.
	replay := other(a)
	replay.cseq--
	if res := replay.do("REGISTER", contact, answer); res.StatusCode != 500 {
		t.Errorf("REGISTER replayed to A: %d %s, want 500 (out of order)", res.StatusCode, res.Reason)
	}
	// The phone's next REGISTER goes on, through A: it unbinds.
	next := other(a)
	next.cseq++
	res = next.do("REGISTER", contact, "Expires: 0")
	res = next.do("REGISTER", contact, "Expires: 0", next.authorization(res))
	if res.StatusCode != 200 {
		t.Fatalf("unregister through A: %d %s", res.StatusCode, res.Reason)
	}
	if got, ok, err := b.Registered(context.Background(), 1); err != nil || ok {
		t.Errorf("B still sees agent1's phone after it unregistered through A: %+v %v", got, err)
	}
	b.dropUnshared()
	if _, ok := b.Lookup(1); !ok {
		t.Error("B dropped a binding refreshed a moment ago: its REGISTER's write may still be on its way")
	}
	bClock.advance(sharedTimeout + time.Second)
	b.dropUnshared()
	if got, ok := b.Lookup(1); ok {
		t.Errorf("B still holds the binding unregistered through A: %+v", got)
	}
}

// TestPhoneRegisteredToAnotherNodeIsCalled: a phone (baresip) registers to
// node A over UDP; node B, which shares the database, shows it registered and
// calls it from its own socket: the phone answers and audio flows both ways.
// Only A probes the phone. A phone registered over TCP to A alone is refused
// by B at once, saying where it is.
func TestPhoneRegisteredToAnotherNodeIsCalled(t *testing.T) {
	store := sharedStore(t, "agent1", "agent2")
	quick := RegistrarConfig{KeepaliveInterval: Duration(200 * time.Millisecond), KeepaliveTimeout: Duration(2 * time.Second)}
	a := sharedNode(t, store, "node-a", testNonceKey, quick)
	b := sharedNode(t, store, "node-b", testNonceKey, quick)
	phone := baresiptest.Start(t, baresiptest.Options{Registrar: a.Addr().String(), User: "agent1", Password: "secret1"})
	waitRegistered(t, a, 1, phone, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, ok := b.Lookup(1); ok {
		t.Fatal("B holds the binding A took")
	}
	// A binds the phone in memory before it writes the database (the 200
	// waits for both): B sees it once written.
	var (
		got Binding
		ok  bool
		err error
	)
	phone.WaitUntil(t, 10*time.Second, "B sees the binding", func() bool { got, ok, err = b.Registered(ctx, 1); return ok || err != nil })
	if err != nil || !ok || got.Node != "node-a" || got.Transport != "udp" || !strings.Contains(got.UserAgent, "baresip") {
		t.Fatalf("B sees agent1's phone %+v %v %v, want baresip registered on node-a", got, ok, err)
	}

	call, err := b.CallAgent(ctx, 1, AgentCallOptions{})
	if err != nil {
		t.Fatalf("B calls the phone registered to A: %v", err)
	}
	heard, loud := readTone(t, call.Leg(), 50)
	if loud < heard*3/4 {
		t.Errorf("%d of %d packets from the phone carry sound, want most (a sine)", loud, heard)
	}
	sendTone(t, call.Leg(), 50)
	// A probes its phone; B probes only the call it placed.
	for a.keepalives.Load() < 2 || b.keepalives.Load() < 2 {
		select {
		case <-call.Done():
			t.Fatalf("B's call ended: %v", call.Err())
		case <-ctx.Done():
			t.Fatalf("keepalives answered: A %d, B %d", a.keepalives.Load(), b.keepalives.Load())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if n := len(b.probes()); n != 1 || b.probes()[0].live != nil {
		t.Errorf("B probes %d phones (%+v), want the one it called, not as its binding", n, b.probes())
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, received := phone.RTPStats(t, 3*time.Second); received < 45 {
		t.Errorf("baresip received %d packets of B's 50", received)
	}

	// agent2 registers over TCP to A: B cannot reach it, and says why.
	tcp := newRawPhone(t, a.Addr(), "tcp", "agent2", "secret2")
	if res := tcp.register(tcp.contact()); res.StatusCode != 200 {
		t.Fatalf("agent2 over TCP: %d", res.StatusCode)
	}
	start := time.Now()
	_, err = b.CallAgent(ctx, 2, AgentCallOptions{})
	if !errors.Is(err, ErrPhoneElsewhere) || !strings.Contains(err.Error(), "node-a") {
		t.Errorf("B calls a phone bound over TCP to A: %v, want ErrPhoneElsewhere naming node-a", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("B took %s to refuse", d)
	}
	if _, ok, err := b.Registered(ctx, 2); !ok || err != nil {
		t.Errorf("B does not show agent2's TCP phone registered: %v", err)
	}
}

// TestLostPhoneLeavesTheSharedBindings: a phone that stops answering the
// OPTIONS of the node it registered to is removed from the database too, so
// no node shows it registered or calls it; an expired binding is purged.
func TestLostPhoneLeavesTheSharedBindings(t *testing.T) {
	store := sharedStore(t, "agent1", "agent2")
	a := sharedNode(t, store, "node-a", testNonceKey, RegistrarConfig{
		KeepaliveInterval: Duration(100 * time.Millisecond), KeepaliveTimeout: Duration(300 * time.Millisecond)})
	mute := newRawPhone(t, a.Addr(), "udp", "agent1", "secret1") // answers no OPTIONS
	if res := mute.register(mute.contact()); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := store.PhoneBindings(context.Background(), 1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lost phone's binding stays shared: %+v", rows)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A row of a node gone expires on every node's purge.
	gone := storage.PhoneBinding{AgentID: 2, ContactKey: "sip:agent2@127.0.0.1:5999;udp", Contact: "sip:agent2@127.0.0.1:5999",
		AOR: "sip:agent2@127.0.0.1", Username: "agent2", Source: "127.0.0.1:5999", Transport: "udp", Node: "node-gone",
		CallID: "x", CSeq: 1, RegisteredAt: time.Now().Add(-2 * time.Minute), Expires: time.Now().Add(-time.Minute)}
	if err := store.UpdatePhoneBindings(context.Background(), 2, []storage.PhoneBinding{gone}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, err := store.LivePhoneBindings(context.Background(), time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired bindings not purged: %s", fmt.Sprint(left))
		}
	}
}

// TestPhoneRegistersWhenTheDatabaseFails: when the database refuses a
// phone's binding (here agent2 has no row to belong to), the registrar binds
// the phone as one alone would, for min_expires only (the phone's next
// REGISTER, that soon, shares it), and keeps it although the database does not
// hold it; with the database gone altogether too.
func TestPhoneRegistersWhenTheDatabaseFails(t *testing.T) {
	store := sharedStore(t, "agent1")
	a, clock := sharedNodeClock(t, store, "node-a", testNonceKey, RegistrarConfig{MinExpires: Duration(90 * time.Second)})
	register := func(user, pass string) {
		t.Helper()
		p := newRawPhone(t, a.Addr(), "udp", user, pass)
		res := p.register(p.contact(), "Expires: 600")
		if res.StatusCode != 200 {
			t.Fatalf("REGISTER of %s: %d %s, want 200", user, res.StatusCode, res.Reason)
		}
		for contact, exp := range contactExpires(t, res) {
			if exp != 90 {
				t.Errorf("%s granted %d s, want min_expires (90 s)", contact, exp)
			}
		}
	}
	register("agent2", "secret2")
	clock.advance(sharedTimeout + time.Second)
	a.dropUnshared()
	if _, ok := a.Lookup(2); !ok {
		t.Fatal("the phone the database refused was dropped")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	register("agent1", "secret1")
	if _, ok := a.Lookup(1); !ok {
		t.Fatal("a phone bound with the database gone is not held")
	}
}
