package sip

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// waitRegistration polls trunk "carrier"'s registration until ok accepts it.
func waitRegistration(t *testing.T, o *Originator, within time.Duration, what string, ok func(RegistrationStatus) bool) RegistrationStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	var last RegistrationStatus
	for time.Now().Before(deadline) {
		for _, st := range o.Trunks() {
			if st.Name == "carrier" && st.Registration != nil {
				last = *st.Registration
				if ok(last) {
					return last
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("registration not %s within %s; last %+v", what, within, last)
	return last
}

// TestRegister registers a trunk with a registrar (sipp, RFC 3261 10) that
// challenges every REGISTER, grants 4 s and requires the refresh in time on
// the same Call-ID, and then the removal at shutdown.
func TestRegister(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "register.xml", sipptest.Options{})
	tc := udpTrunk("carrier", sipp.Addr, 0)
	tc.Username, tc.Password, tc.Register, tc.RegisterExpires = "alice", "secret", true, 300
	tc.RegisterDomain = "carrier.test"
	o := newTestOriginator(t, testConfig(tc))

	first := waitRegistration(t, o, 5*time.Second, "registered", func(st RegistrationStatus) bool { return st.State == RegistrationRegistered })
	if first.AOR != "sip:alice@carrier.test" || first.ExpiresAt.Sub(first.RegisteredAt) != 4*time.Second {
		t.Errorf("first registration %+v: want sip:alice@carrier.test granted 4 s", first)
	}
	if d := first.NextTryAt.Sub(first.RegisteredAt); d != 2*time.Second {
		t.Errorf("refresh planned %s after registering, want 2s (half of 4 s)", d)
	}
	// The refresh is granted 60 s: the registrar saw it before the 4 s ran out.
	second := waitRegistration(t, o, 6*time.Second, "refreshed", func(st RegistrationStatus) bool {
		return st.State == RegistrationRegistered && st.ExpiresAt.Sub(st.RegisteredAt) == time.Minute
	})
	if !second.RegisteredAt.Before(first.ExpiresAt) {
		t.Errorf("refreshed at %s, after the first binding expired at %s", second.RegisteredAt, first.ExpiresAt)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if st := o.Trunks()[0].Registration; st.State != RegistrationUnregistered || st.LastError != "" {
		t.Errorf("after Close: %+v, want unregistered", st)
	}
	sipp.Wait(t, 10*time.Second) // the registrar saw every REGISTER it required
}

// TestRegisterBackoff checks that a failed REGISTER shows on the trunk's
// status as failing, with the error and the next try, and is retried after
// the back-off, not at once.
func TestRegisterBackoff(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "register-backoff.xml", sipptest.Options{})
	tc := udpTrunk("carrier", sipp.Addr, 0)
	tc.Username, tc.Register = "alice", true
	o := newTestOriginator(t, testConfig(tc))

	failing := waitRegistration(t, o, 5*time.Second, "failing", func(st RegistrationStatus) bool { return st.State == RegistrationFailing })
	if !strings.Contains(failing.LastError, "503 Service Unavailable") || failing.Failures != 1 || failing.NextTryAt.IsZero() {
		t.Errorf("failing status %+v: want the 503, one failure and the next try", failing)
	}
	ok := waitRegistration(t, o, 5*time.Second, "registered", func(st RegistrationStatus) bool { return st.State == RegistrationRegistered })
	if ok.LastError != "" || ok.Failures != 0 || ok.RegisteredAt.Before(failing.NextTryAt) {
		t.Errorf("registered %+v after failing %+v: want a clean status, registered no sooner than the planned retry", ok, failing)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	sipp.Wait(t, 10*time.Second)
}

func TestRegisterTimings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		granted, refresh time.Duration
	}{
		{4 * time.Second, 2 * time.Second},
		{2 * time.Minute, time.Minute},
		{10 * time.Minute, 9 * time.Minute},
		{time.Hour, 59 * time.Minute},
	} {
		if got := refreshAfter(tt.granted); got != tt.refresh {
			t.Errorf("refreshAfter(%s) = %s, want %s", tt.granted, got, tt.refresh)
		}
	}
	for _, tt := range []struct {
		failures int
		wait     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {100, 5 * time.Minute}} {
		if got := registerBackoff(tt.failures); got != tt.wait {
			t.Errorf("registerBackoff(%d) = %s, want %s", tt.failures, got, tt.wait)
		}
	}
}

// TestRegisteredMetric: the gauge is 1 while the registrar accepts the trunk.
func TestRegisteredMetric(t *testing.T) {
	t.Parallel()
	sipp := sipptest.Start(t, "register-backoff.xml", sipptest.Options{})
	tc := udpTrunk("carrier", sipp.Addr, 0)
	tc.Username, tc.Register = "alice", true
	o := newTestOriginator(t, testConfig(tc))
	waitRegistration(t, o, 5*time.Second, "failing", func(st RegistrationStatus) bool { return st.State == RegistrationFailing })
	if v := testutil.ToFloat64(o.metrics.registered.WithLabelValues("carrier")); v != 0 {
		t.Errorf("turbina_sip_trunk_registered = %v while failing, want 0", v)
	}
	waitRegistration(t, o, 5*time.Second, "registered", func(st RegistrationStatus) bool { return st.State == RegistrationRegistered })
	if v := testutil.ToFloat64(o.metrics.registered.WithLabelValues("carrier")); v != 1 {
		t.Errorf("turbina_sip_trunk_registered = %v once registered, want 1", v)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	sipp.Wait(t, 10*time.Second)
}

// TestRegisterOverTCP: a trunk over TCP registers with a Contact naming its
// TCP listener's port and ;transport=tcp (sipp checks both with a regexp), so
// the registrar, and the carrier's INVITEs and BYEs routed by it, reach us on
// a connection of their own after ours is gone. The 200's binding is matched
// to that Contact: the lifetime granted is its expires parameter.
func TestRegisterOverTCP(t *testing.T) {
	t.Parallel()
	port := sipptest.FreePort(t)
	sipp := sipptest.Start(t, "register-stream.xml", sipptest.Options{Transport: "t1",
		Vars: map[string]string{"port": strconv.Itoa(port), "transport": "tcp"}})
	tc := TrunkConfig{Name: "carrier", Address: sipp.Addr, Transport: TransportTCP, CallerID: "+34910000001",
		Username: "alice", Register: true, RegisterExpires: 300}
	cfg := testConfig(tc)
	cfg.ListenTCP = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	o := newTestOriginator(t, cfg)

	st := waitRegistration(t, o, 5*time.Second, "registered", func(st RegistrationStatus) bool { return st.State == RegistrationRegistered })
	if d := st.ExpiresAt.Sub(st.RegisteredAt); d != time.Minute {
		t.Errorf("granted %s, want the 60 s of our Contact's binding", d)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	sipp.Wait(t, 10*time.Second)
}
