package sip

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
)

// TestKeepaliveLosesAKilledPhone: a registered phone (baresip) in a nailed-up
// call answers the registrar's OPTIONS and stays; killed (no BYE, no
// unregistration), it stops answering: its binding is removed and the call
// ends with ErrPhoneLost.
func TestKeepaliveLosesAKilledPhone(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			r, _ := newTestRegistrar(t, RegistrarConfig{
				KeepaliveInterval: Duration(200 * time.Millisecond),
				KeepaliveTimeout:  Duration(2 * time.Second), // a loaded machine's baresip still answers in time
			})
			phone := baresiptest.Start(t, baresiptest.Options{Registrar: r.Addr().String(), Transport: transport,
				User: "agent1", Password: "secret1"})
			waitRegistered(t, r, 1, phone, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			call, err := r.CallAgent(ctx, 1, AgentCallOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A live phone answers probe after probe, and keeps its call.
			for r.keepalives.Load() < 4 {
				select {
				case <-call.Done():
					t.Fatalf("the call of a live phone ended: %v", call.Err())
				case <-ctx.Done():
					t.Fatalf("baresip answered %d OPTIONS", r.keepalives.Load())
				case <-time.After(20 * time.Millisecond):
				}
			}
			if _, ok := r.Lookup(1); !ok {
				t.Fatal("the binding of a live phone was removed")
			}

			phone.Kill(t)
			select {
			case <-call.Done():
			case <-ctx.Done():
				t.Fatal("the nailed-up call outlived its phone")
			}
			if err := call.Err(); !errors.Is(err, ErrPhoneLost) {
				t.Errorf("call ended with %v, want ErrPhoneLost", err)
			}
			if b, ok := r.Lookup(1); ok {
				t.Errorf("the killed phone is still registered: %+v", b)
			}
		})
	}
}

// TestExpiredBindingsAreRemoved: a registration not refreshed in time is not only
// ignored by Lookup but dropped from memory at the next keepalive round.
func TestExpiredBindingsAreRemoved(t *testing.T) {
	r, clock := newTestRegistrar(t, RegistrarConfig{}) // rounds every 30 s: none during the test
	p := newRawPhone(t, r.Addr(), "udp", "agent1", "secret1")
	if res := p.register(fmt.Sprintf("Contact: <sip:agent1@127.0.0.1:%d>", p.localPort()), "Expires: 120"); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	held := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.bindings[1])
	}
	r.purgeExpired()
	if held() != 1 {
		t.Fatal("a live binding was purged")
	}
	clock.advance(121 * time.Second)
	r.purgeExpired()
	if n := held(); n != 0 {
		t.Errorf("%d expired bindings still held", n)
	}
}
