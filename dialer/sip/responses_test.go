package sip

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

// keys are sipp -key arguments for a scenario's [name] keywords.
func keys(kv ...string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, "-key", kv[i], kv[i+1])
	}
	return out
}

// dialResult places one call and waits for its end.
func dialResult(t *testing.T, o *Originator, to string, onEvent func(Event)) Result {
	t.Helper()
	c, err := o.Dial(context.Background(), DialRequest{To: to, OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	return waitResult(t, c, 15*time.Second)
}

// attemptsOf spells a result's attempts as "a:503 b:486".
func attemptsOf(r Result) string {
	var parts []string
	for _, a := range r.Attempts {
		parts = append(parts, a.Trunk+":"+strconv.Itoa(a.Status))
	}
	return strings.Join(parts, " ")
}

// alarmGauge reads turbina_sip_trunk_alarm for a trunk.
func alarmGauge(t *testing.T, o *Originator, trunk string) float64 {
	t.Helper()
	var m dto.Metric
	if err := o.metrics.alarm.WithLabelValues(trunk).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func trunkNamed(t *testing.T, o *Originator, name string) TrunkStatus {
	t.Helper()
	for _, st := range o.Trunks() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no trunk %s", name)
	return TrunkStatus{}
}

// TestRetryAfterHoldsTheTrunk: a 503 with Retry-After holds its trunk for
// that long: the call and every call meanwhile go to the other trunk, OPTIONS
// answered 200 all along (keepalives every 100 ms, a circuit that one fault
// opens and one answered probe closes) do not end the hold, and after it the
// trunk gets INVITEs again.
func TestRetryAfterHoldsTheTrunk(t *testing.T) {
	t.Parallel()
	const holdSecs = 4
	// a answers its keepalives too, each one of sipp's calls: it runs until the
	// test's end, not for a count of calls.
	a := sipptest.Start(t, "retry-after.xml", sipptest.Options{Calls: 10000, Extra: keys("retry_after", strconv.Itoa(holdSecs))})
	const during = 3
	b := sipptest.Start(t, "busy.xml", sipptest.Options{Calls: 1 + during + 1})
	ta, tb := udpTrunk("a", a.Addr, 1), udpTrunk("b", b.Addr, 2)
	tb.KeepaliveInterval = KeepaliveEvery(0) // busy.xml answers INVITEs only
	cfg := testConfig(ta, tb)
	cfg.FaultsToOpen = 1
	cfg.KeepaliveInterval = Duration(100 * time.Millisecond)
	o := newTestOriginator(t, cfg)

	before := time.Now()
	r := dialResult(t, o, "+34600000051", nil)
	after := time.Now()
	if r.Outcome != OutcomeBusy || attemptsOf(r) != "a:503 b:486" {
		t.Fatalf("first call: %s after %q, want busy after \"a:503 b:486\"", r.Outcome, attemptsOf(r))
	}
	st := trunkNamed(t, o, "a")
	hold := holdSecs * time.Second
	if st.State != CircuitHeld || st.HeldUntil.Before(before.Add(hold)) || st.HeldUntil.After(after.Add(hold)) {
		t.Fatalf("trunk a after 503 Retry-After %d: %+v, want held until %s..%s", holdSecs, st, before.Add(hold), after.Add(hold))
	}
	if st.Alarm != "" {
		t.Errorf("a 503 that says when to come back raised an alarm: %q", st.Alarm)
	}
	for i := range during {
		time.Sleep(300 * time.Millisecond)
		if time.Now().After(st.HeldUntil.Add(-500 * time.Millisecond)) {
			t.Fatalf("call %d would start after the hold: the machine is too slow for this test", i)
		}
		r := dialResult(t, o, "+3460000006"+strconv.Itoa(i), nil)
		if r.Outcome != OutcomeBusy || attemptsOf(r) != "b:486" {
			t.Fatalf("call %d during the hold: %s after %q, want busy on b alone", i, r.Outcome, attemptsOf(r))
		}
		if got := trunkNamed(t, o, "a"); got.State != CircuitHeld {
			t.Fatalf("trunk a during its hold: %+v", got)
		}
	}
	for time.Now().Before(st.HeldUntil) {
		time.Sleep(50 * time.Millisecond)
	}
	r = dialResult(t, o, "+34600000052", nil)
	if attemptsOf(r) != "a:503 b:486" {
		t.Fatalf("call after the hold: %q, want a tried again (a:503 b:486)", attemptsOf(r))
	}
	b.Wait(t, 15*time.Second)
}

// TestRefusalsAreTheTrunks: 402, 403, 421, an unmapped 4xx and 5xx are the
// trunk's, never the person's: the call moves to the next trunk (nobody was
// alerted), the refusal counts against the trunk's circuit and raises its
// alarm (status, metric); 402 also holds the trunk, which OnTrunkChange tells
// at once since it changes where calls go.
func TestRefusalsAreTheTrunks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scenario string
		status   int
		phrase   string
		held     bool
	}{
		{"payment-required.xml", 402, "Payment Required", true},
		{"forbidden.xml", 403, "Forbidden", false},
		{"extension-required.xml", 421, "Extension Required", false},
		{"consent-needed.xml", 470, "Consent Needed", false},
		{"server-error.xml", 500, "Server Internal Error", false},
		{"bad-gateway.xml", 502, "Bad Gateway", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			a := sipptest.Start(t, tt.scenario, sipptest.Options{})
			b := sipptest.Start(t, "busy.xml", sipptest.Options{})
			cfg := testConfig(udpTrunk("a", a.Addr, 1), udpTrunk("b", b.Addr, 2))
			cfg.FaultsToOpen = 5
			var mu sync.Mutex
			var changes []TrunkStatus
			cfg.OnTrunkChange = func(st TrunkStatus) {
				mu.Lock()
				changes = append(changes, st)
				mu.Unlock()
			}
			o := newTestOriginator(t, cfg)
			r := dialResult(t, o, "+34600000071", nil)
			want := "a:" + strconv.Itoa(tt.status) + " b:486"
			if r.Outcome != OutcomeBusy || attemptsOf(r) != want {
				t.Fatalf("%d: %s after %q, want busy after %q", tt.status, r.Outcome, attemptsOf(r), want)
			}
			alarm := strconv.Itoa(tt.status) + " " + tt.phrase
			st := trunkNamed(t, o, "a")
			if st.Alarm != alarm || st.AlarmSince.IsZero() || st.Faults != 1 {
				t.Errorf("trunk a: alarm %q faults %d, want alarm %q and 1 fault", st.Alarm, st.Faults, alarm)
			}
			if held := st.State == CircuitHeld && st.HeldUntil.After(time.Now().Add(4*time.Minute)); held != tt.held {
				t.Errorf("trunk a: %s until %s, want held for minutes: %v", st.State, st.HeldUntil, tt.held)
			}
			if got := alarmGauge(t, o, "a"); got != 1 {
				t.Errorf("turbina_sip_trunk_alarm{trunk=a} = %v, want 1", got)
			}
			if got := alarmGauge(t, o, "b"); got != 0 {
				t.Errorf("turbina_sip_trunk_alarm{trunk=b} = %v, want 0", got)
			}
			mu.Lock()
			told := false
			for _, c := range changes {
				told = told || (c.Name == "a" && c.State == CircuitHeld && c.Alarm == alarm)
			}
			mu.Unlock()
			if told != tt.held {
				t.Errorf("OnTrunkChange told of a's hold with its alarm: %v, want %v (%+v)", told, tt.held, changes)
			}
			a.Wait(t, 15*time.Second)
			b.Wait(t, 15*time.Second)
		})
	}
}

// TestNoFailoverAfterAlerting: a call that failed after 180 or 183 is not
// placed on the next trunk: the person's phone may have rung already.
func TestNoFailoverAfterAlerting(t *testing.T) {
	t.Parallel()
	for _, scenario := range []string{"ring-then-fail.xml", "progress-then-fail.xml"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			a := sipptest.Start(t, scenario, sipptest.Options{})
			// Nothing listens on b: a call moved there would show a second attempt.
			b := net.JoinHostPort("127.0.0.1", strconv.Itoa(sipptest.FreePort(t)))
			o := newTestOriginator(t, testConfig(udpTrunk("a", a.Addr, 1), udpTrunk("b", b, 2)))
			elog := newEventLog()
			r := dialResult(t, o, "+34600000081", elog.on)
			if r.Outcome != OutcomeTrunkFault || attemptsOf(r) != "a:503" || r.RingAt.IsZero() {
				t.Fatalf("%s: %s after %q (ring at %v), want trunk_fault on a alone", scenario, r.Outcome, attemptsOf(r), r.RingAt)
			}
			for _, k := range elog.kinds() {
				if k == EventFailover {
					t.Errorf("events %v: a failover after the person was alerted", elog.kinds())
				}
			}
			a.Wait(t, 15*time.Second)
		})
	}
}

// TestRedirect: a 302 is followed to its Contact when that is a configured
// trunk's address (the same trunk or another), as a new INVITE whose
// Request-URI is the Contact; at most maxRedirects times; never elsewhere.
func TestRedirect(t *testing.T) {
	t.Parallel()
	t.Run("to another trunk", func(t *testing.T) {
		t.Parallel()
		b := sipptest.Start(t, "redirected.xml", sipptest.Options{})
		a := sipptest.Start(t, "redirect.xml", sipptest.Options{Extra: keys("redirect_user", "5511999990000", "redirect_addr", b.Addr)})
		o := newTestOriginator(t, testConfig(udpTrunk("a", a.Addr, 1), udpTrunk("b", b.Addr, 2)))
		elog := newEventLog()
		r := dialResult(t, o, "+34600000077", elog.on)
		if r.Outcome != OutcomeBusy || attemptsOf(r) != "a:302 b:486" {
			t.Fatalf("302 to b: %s after %q (%s), want busy after \"a:302 b:486\"", r.Outcome, attemptsOf(r), r.Reason)
		}
		redirected := false
		for _, k := range elog.kinds() {
			redirected = redirected || k == EventRedirect
		}
		if !redirected {
			t.Errorf("events %v lack %s", elog.kinds(), EventRedirect)
		}
		a.Wait(t, 15*time.Second)
		b.Wait(t, 15*time.Second) // its regexps checked the Request-URI and To
	})
	t.Run("to the same trunk, bounded", func(t *testing.T) {
		t.Parallel()
		port := sipptest.FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		a := sipptest.Start(t, "redirect.xml", sipptest.Options{Port: port, Calls: 1 + maxRedirects,
			Extra: keys("redirect_user", "5511999990000", "redirect_addr", addr)})
		cfg := testConfig(udpTrunk("a", addr, 1))
		cfg.InviteTimeout = Duration(5 * time.Second) // four INVITEs in turn; none is meant to time out
		o := newTestOriginator(t, cfg)
		r := dialResult(t, o, "+34600000078", nil)
		want := strings.TrimSpace(strings.Repeat("a:302 ", 1+maxRedirects))
		if r.Outcome != OutcomeTrunkFault || attemptsOf(r) != want || !strings.Contains(r.Reason, "not followed") {
			t.Fatalf("302 loop: %s after %q (%s), want trunk_fault after %q, not followed", r.Outcome, attemptsOf(r), r.Reason, want)
		}
		a.Wait(t, 15*time.Second)
	})
	t.Run("anywhere else", func(t *testing.T) {
		t.Parallel()
		a := sipptest.Start(t, "redirect.xml", sipptest.Options{Extra: keys("redirect_user", "5511999990000", "redirect_addr", "127.0.0.2:5099")})
		o := newTestOriginator(t, testConfig(udpTrunk("a", a.Addr, 1)))
		r := dialResult(t, o, "+34600000079", nil)
		if r.Outcome != OutcomeTrunkFault || attemptsOf(r) != "a:302" || !strings.Contains(r.Reason, "not followed") {
			t.Fatalf("302 to an unknown host: %s after %q (%s), want trunk_fault, not followed", r.Outcome, attemptsOf(r), r.Reason)
		}
		a.Wait(t, 15*time.Second)
	})
}

// TestWrongPassword: credentials challenged a second time are refused: no
// third INVITE (auth-wrong.xml fails on one), a trunk fault with its
// alarm. A second challenge that says stale=true is answered once more.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		a := sipptest.Start(t, "auth-wrong.xml", sipptest.Options{})
		tc := udpTrunk("a", a.Addr, 1)
		tc.Username, tc.Password = "alice", "wrong"
		o := newTestOriginator(t, testConfig(tc))
		r := dialResult(t, o, "+34600000091", nil)
		if r.Outcome != OutcomeTrunkFault || r.Status != 401 {
			t.Fatalf("wrong password: %s %d (%s), want trunk_fault 401", r.Outcome, r.Status, r.Reason)
		}
		if st := trunkNamed(t, o, "a"); st.Alarm != "401 Unauthorized" {
			t.Errorf("alarm %q, want 401 Unauthorized", st.Alarm)
		}
		a.Wait(t, 15*time.Second)
	})
	t.Run("stale nonce", func(t *testing.T) {
		t.Parallel()
		a := sipptest.Start(t, "auth-stale.xml", sipptest.Options{})
		tc := udpTrunk("a", a.Addr, 1)
		tc.Username, tc.Password = "alice", "secret"
		o := newTestOriginator(t, testConfig(tc))
		c := answeredCall(t, o, "+34600000092")
		if err := c.Hangup(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := c.Result(); r.Outcome != OutcomeAnswered {
			t.Errorf("stale nonce: %s %d (%s), want answered", r.Outcome, r.Status, r.Reason)
		}
		a.Wait(t, 15*time.Second)
	})
}
