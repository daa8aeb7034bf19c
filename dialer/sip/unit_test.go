package sip

import (
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestPacerExact drives the CPS pacer with a fake clock: a burst of
// reservations is spaced exactly 1/cps apart, and idle time earns no burst.
func TestPacerExact(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newPacer(5)
	for i := range 10 {
		if got, want := p.reserve(t0), time.Duration(i)*200*time.Millisecond; got != want {
			t.Fatalf("reservation %d: wait %s, want %s", i, got, want)
		}
	}
	// After the queue drains and the trunk idles, one call goes at once and the next waits again.
	later := t0.Add(time.Minute)
	if got := p.reserve(later); got != 0 {
		t.Errorf("after idle: wait %s, want 0", got)
	}
	if got := p.reserve(later); got != 200*time.Millisecond {
		t.Errorf("second after idle: wait %s, want 200ms", got)
	}
	if got := newPacer(0).reserve(t0); got != 0 {
		t.Errorf("unlimited pacer waits %s", got)
	}
}

func TestChannels(t *testing.T) {
	c := channels{max: 2}
	if got := []bool{c.tryAcquire(0), c.tryAcquire(0), c.tryAcquire(0)}; !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("acquired %v, want exactly two channels", got)
	}
	c.release()
	if !c.tryAcquire(0) || c.load() != 2 {
		t.Fatal("released channel not reusable")
	}
}

func TestCircuit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	errFault := errors.New("503")
	tests := []struct {
		name  string
		steps func(c *circuit) // events applied in order
		want  CircuitState
	}{
		{"two faults open", func(c *circuit) { c.fault(t0, errFault); c.fault(t0.Add(time.Second), errFault) }, CircuitOpen},
		{"success breaks the streak", func(c *circuit) { c.fault(t0, errFault); c.success(); c.fault(t0, errFault) }, CircuitClosed},
		{"faults outside the window do not add up", func(c *circuit) { c.fault(t0, errFault); c.fault(t0.Add(time.Minute), errFault) }, CircuitClosed},
		{"probes answered close", func(c *circuit) {
			c.fault(t0, errFault)
			c.fault(t0, errFault)
			for range 3 {
				c.beginProbe(t0)
				c.endProbe(t0, nil)
			}
		}, CircuitClosed},
		{"probe failed reopens", func(c *circuit) {
			c.fault(t0, errFault)
			c.fault(t0, errFault)
			c.beginProbe(t0)
			c.endProbe(t0, errFault)
		}, CircuitOpen},
		{"probing half-open", func(c *circuit) { c.fault(t0, errFault); c.fault(t0, errFault); c.beginProbe(t0) }, CircuitHalfOpen},
		{"probe only from open", func(c *circuit) { c.beginProbe(t0) }, CircuitClosed},
		{"failed burst trips", func(c *circuit) { c.trip(t0, "burst") }, CircuitOpen},
		{"three answers in a row close", func(c *circuit) {
			c.trip(t0, "burst")
			for range 3 {
				c.beginProbe(t0)
				c.endProbe(t0, nil)
			}
		}, CircuitClosed},
		{"two answers do not close", func(c *circuit) {
			c.trip(t0, "burst")
			for range 2 {
				c.beginProbe(t0)
				c.endProbe(t0, nil)
			}
		}, CircuitOpen},
		{"a failed probe restarts the count", func(c *circuit) {
			c.trip(t0, "burst")
			for _, err := range []error{nil, nil, errFault, nil, nil} {
				c.beginProbe(t0)
				c.endProbe(t0, err)
			}
		}, CircuitOpen},
		{"a burst keeps open a circuit faults opened, its probe's answer discarded", func(c *circuit) {
			c.fault(t0, errFault)
			c.fault(t0, errFault)
			c.beginProbe(t0)
			if !c.trip(t0, "burst") {
				t.Error("trip of a circuit faults opened: false, want true (the trunk is marked down)")
			}
			c.endProbe(t0, nil)
		}, CircuitOpen},
		{"out of service is not tripped", func(c *circuit) { c.force(true, t0); c.force(false, t0); c.trip(t0, "burst") }, CircuitOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &circuit{faultsToOpen: 2, window: 10 * time.Second, recoverAfter: 3}
			tt.steps(c)
			if got := c.current(); got != tt.want {
				t.Errorf("state %s, want %s", got, tt.want)
			}
		})
	}
}

// TestResponseTable reads final responses through the default table and a
// trunk's overrides: the action, the outcome, the hold.
func TestResponseTable(t *testing.T) {
	var overrides []ResponseRule
	if err := json.Unmarshal([]byte(`[
		{"code": 403, "cause": 21, "action": "person", "outcome": "rejected"},
		{"code": "4xx", "reason": "Number Ported", "action": "person", "outcome": "invalid_number"},
		{"code": 503, "action": "retry_later", "hold": "45s"}]`), &overrides); err != nil {
		t.Fatal(err)
	}
	res := func(code int, phrase string, headers ...string) *sip.Response {
		r := sip.NewResponse(code, phrase)
		for i := 0; i+1 < len(headers); i += 2 {
			r.AppendHeader(sip.NewHeader(headers[i], headers[i+1]))
		}
		return r
	}
	tests := []struct {
		name    string
		trunk   []ResponseRule
		res     *sip.Response
		action  ResponseAction
		outcome Outcome
		hold    time.Duration
	}{
		{"busy", nil, res(486, "Busy Here"), ActionPerson, OutcomeBusy, 0},
		{"busy everywhere", nil, res(600, "Busy Everywhere"), ActionPerson, OutcomeBusy, 0},
		{"unavailable", nil, res(480, "Temporarily Unavailable"), ActionPerson, OutcomeNoAnswer, 0},
		{"no circuit behind a 480", nil, res(480, "Temporarily Unavailable", "Reason", `Q.850;cause=34;text="No circuit/channel available"`), ActionRetryElsewhere, OutcomeTrunkFault, 0},
		{"congestion behind a 486", nil, res(486, "Busy Here", "Reason", `SIP;cause=486, Q.850;cause=42`), ActionRetryElsewhere, OutcomeTrunkFault, 0},
		{"user busy cause", nil, res(486, "Busy Here", "Reason", `Q.850;cause=17`), ActionPerson, OutcomeBusy, 0},
		{"not found", nil, res(404, "Not Found"), ActionPerson, OutcomeInvalidNumber, 0},
		{"decline", nil, res(603, "Decline"), ActionPerson, OutcomeRejected, 0},
		{"other 6xx", nil, res(607, "Unwanted"), ActionPerson, OutcomeRejected, 0},
		{"codec", nil, res(488, "Not Acceptable Here"), ActionPerson, OutcomeMediaFailed, 0},
		{"credit gone", nil, res(402, "Payment Required"), ActionTrunkFault, OutcomeTrunkFault, 5 * time.Minute},
		{"forbidden", nil, res(403, "Forbidden"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"extension required", nil, res(421, "Extension Required"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"unmapped 4xx", nil, res(470, "Consent Needed"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"credentials refused", nil, res(401, "Unauthorized"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"server error", nil, res(500, "Server Internal Error"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"503 with Retry-After", nil, res(503, "Service Unavailable", "Retry-After", "120 (maintenance);duration=60"), ActionRetryLater, OutcomeTrunkFault, 120 * time.Second},
		{"503 without Retry-After is a 500", nil, res(503, "Service Unavailable"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"Retry-After capped", nil, res(503, "Service Unavailable", "Retry-After", "86400"), ActionRetryLater, OutcomeTrunkFault, time.Hour},
		{"moved", nil, res(302, "Moved Temporarily"), ActionRedirect, OutcomeTrunkFault, 0},
		{"other 3xx", nil, res(380, "Alternative Service"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"override by cause", overrides, res(403, "Forbidden", "Reason", "Q.850;cause=21"), ActionPerson, OutcomeRejected, 0},
		{"override by cause, other cause", overrides, res(403, "Forbidden", "Reason", "Q.850;cause=31"), ActionTrunkFault, OutcomeTrunkFault, 0},
		{"override by phrase", overrides, res(404, "number ported"), ActionPerson, OutcomeInvalidNumber, 0},
		{"override hold without Retry-After", overrides, res(503, "Service Unavailable"), ActionRetryLater, OutcomeTrunkFault, 45 * time.Second},
		{"override, Retry-After wins", overrides, res(503, "Service Unavailable", "Retry-After", "10"), ActionRetryLater, OutcomeTrunkFault, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newResponseTable(tt.trunk).classify(tt.res)
			if v.rule.Action != tt.action || v.outcome() != tt.outcome || v.hold != tt.hold {
				t.Errorf("%d %s: %s %s hold %s, want %s %s hold %s", tt.res.StatusCode, tt.res.Reason,
					v.rule.Action, v.outcome(), v.hold, tt.action, tt.outcome, tt.hold)
			}
		})
	}
}

// TestResponseRulesRefused: a bad row of a trunk's table is refused with the
// trunk, the row and the field named.
func TestResponseRulesRefused(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		field string
	}{
		{"code out of range", `[{"code": 200, "action": "trunk_fault"}]`, "code"},
		{"code class unknown", `[{"code": "7xx", "action": "trunk_fault"}]`, "code"},
		{"code missing", `[{"action": "trunk_fault"}]`, "responses[0].code"},
		{"action unknown", `[{"code": 503, "action": "panic"}]`, "responses[0].action"},
		{"person without outcome", `[{"code": 486, "action": "person"}]`, "responses[0].outcome"},
		{"person answered", `[{"code": 486, "action": "person", "outcome": "answered"}]`, "responses[0].outcome"},
		{"outcome on a trunk action", `[{"code": 503, "action": "retry_later", "outcome": "busy"}]`, "responses[0].outcome"},
		{"cause out of range", `[{"code": 503, "cause": 300, "action": "trunk_fault"}]`, "responses[0].cause"},
		{"negative hold", `[{"code": 503, "action": "retry_later", "hold": -5}]`, "responses[0].hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []ResponseRule
			if err := json.Unmarshal([]byte(tt.json), &rules); err != nil {
				if !strings.Contains(err.Error(), tt.field) {
					t.Errorf("decode error %v, want one naming %s", err, tt.field)
				}
				return
			}
			c := Config{Trunks: []TrunkConfig{{Name: "a", Address: "h:5060", Responses: rules}}}
			c.applyDefaults()
			err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), `"a"`) {
				t.Errorf("error %v, want one naming trunk a and %s", err, tt.field)
			}
		})
	}
}

// TestCircuitHold: a held trunk takes no calls until the hold ends; answered
// probes do not end it early, and a trunk held while open is held once its
// probes would close it.
func TestCircuitHold(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := &circuit{faultsToOpen: 2, window: time.Minute, recoverAfter: 1}
	if !c.hold(t0, t0.Add(2*time.Minute), "503") || c.current() != CircuitHeld {
		t.Fatalf("held: %s", c.current())
	}
	if c.beginProbe(t0.Add(time.Second)) || c.releaseHold(t0.Add(time.Minute)) || c.current() != CircuitHeld {
		t.Fatalf("a probe or an early release ended the hold: %s", c.current())
	}
	if !c.releaseHold(t0.Add(2*time.Minute)) || c.current() != CircuitClosed {
		t.Fatalf("hold over: %s", c.current())
	}
	c.trip(t0, "burst")
	c.hold(t0, t0.Add(time.Minute), "503")
	c.beginProbe(t0.Add(time.Second))
	if c.endProbe(t0.Add(time.Second), nil) || c.current() != CircuitHeld {
		t.Fatalf("answered probe during a hold: %s", c.current())
	}
}

func TestConfigJSON(t *testing.T) {
	var cfg Config
	in := `{"trunks":[{"name":"a","address":"sip.example.net","transport":"TLS","max_cps":5,"max_channels":30,"priority":1},
		{"name":"b","address":"192.0.2.1","transport":"tls"},{"name":"c","address":"[2001:db8::1]"}],
		"ring_timeout":"25s","invite_timeout":2,"fault_window":"1m","tls_cert_file":"/etc/turbina/sip.crt","tls_key_file":"/etc/turbina/sip.key"}`
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	tr := cfg.Trunks[0]
	// A name without a port is kept for DNS SRV; an IP address gets the transport's port.
	if tr.Address != "sip.example.net" || tr.Transport != TransportTLS || tr.Domain != "sip.example.net" {
		t.Errorf("trunk defaults: %+v", tr)
	}
	if b, c := cfg.Trunks[1], cfg.Trunks[2]; b.Address != "192.0.2.1:5061" || b.Domain != "192.0.2.1" || c.Address != "[2001:db8::1]:5060" || c.Domain != "2001:db8::1" {
		t.Errorf("IP trunk defaults: %+v %+v", b, c)
	}
	if cfg.RingTimeout.Std() != 25*time.Second || cfg.InviteTimeout.Std() != 2*time.Second || cfg.FaultWindow.Std() != time.Minute {
		t.Errorf("durations: %v %v %v", cfg.RingTimeout.Std(), cfg.InviteTimeout.Std(), cfg.FaultWindow.Std())
	}
	bad := []Config{
		{},
		{Trunks: []TrunkConfig{{Address: "h:5060"}}},
		{Trunks: []TrunkConfig{{Name: "a", Address: "h:5060", Transport: "sctp"}}},
		{Trunks: []TrunkConfig{{Name: "a", Address: "h:5060"}, {Name: "a", Address: "h:5060"}}},
	}
	for i, c := range bad {
		c.applyDefaults()
		if c.validate() == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

// TestHealthConfig: the trunk-health settings default as documented and bad
// values are refused with the field's name.
func TestHealthConfig(t *testing.T) {
	trunks := []TrunkConfig{{Name: "a", Address: "h:5060"}}
	var cfg Config
	if err := json.Unmarshal([]byte(`{"probe_burst_count":4,"probe_burst_spacing":"150ms","keepalive_interval":"1s"}`), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Trunks = trunks
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{ProbeBurstCount: 4, ProbeBurstSpacing: Duration(150 * time.Millisecond), KeepaliveInterval: Duration(time.Second),
		SuspectAfter: Duration(400 * time.Millisecond), ProbeTimeout: Duration(500 * time.Millisecond), MediaSilence: Duration(500 * time.Millisecond),
		RecoverAfter: 3, ProbeInterval: Duration(time.Second)}
	if cfg.ProbeBurstCount != want.ProbeBurstCount || cfg.ProbeBurstSpacing != want.ProbeBurstSpacing || cfg.KeepaliveInterval != want.KeepaliveInterval ||
		cfg.SuspectAfter != want.SuspectAfter || cfg.ProbeTimeout != want.ProbeTimeout || cfg.MediaSilence != want.MediaSilence ||
		cfg.RecoverAfter != want.RecoverAfter || cfg.ProbeInterval != want.ProbeInterval {
		t.Errorf("health defaults: %+v", cfg)
	}
	short := Config{Trunks: trunks, InviteTimeout: Duration(500 * time.Millisecond)}
	short.applyDefaults()
	if short.SuspectAfter.Std() != 250*time.Millisecond {
		t.Errorf("suspect_after with a 500ms invite_timeout: %s, want 250ms", short.SuspectAfter.Std())
	}
	tests := []struct {
		name  string
		tweak func(*Config)
		field string
	}{
		{"suspect after the timeout", func(c *Config) { c.SuspectAfter = Duration(3 * time.Second) }, "suspect_after"},
		{"negative keepalive", func(c *Config) { c.KeepaliveInterval = -1 }, "keepalive_interval"},
		{"negative probe timeout", func(c *Config) { c.ProbeTimeout = -1 }, "probe_timeout"},
		{"negative spacing", func(c *Config) { c.ProbeBurstSpacing = -1 }, "probe_burst_spacing"},
		{"negative media silence", func(c *Config) { c.MediaSilence = -1 }, "media_silence"},
		{"negative probe interval", func(c *Config) { c.ProbeInterval = -1 }, "probe_interval"},
		{"burst of none", func(c *Config) { c.ProbeBurstCount = -1 }, "probe_burst_count"},
		{"burst too long", func(c *Config) { c.ProbeBurstCount = 50 }, "probe_burst_count"},
		{"recover after none", func(c *Config) { c.RecoverAfter = -2 }, "recover_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Trunks: trunks}
			tt.tweak(&c)
			c.applyDefaults()
			err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %v, want one naming %s", err, tt.field)
			}
		})
	}
}

const answerPCMA = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" +
	"m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n"

func TestParseAnswerSDP(t *testing.T) {
	tests := []struct {
		name    string
		sdp     string
		codec   Codec
		dtmf    uint8
		remote  string
		wantErr error
	}{
		{name: "pcma first", sdp: answerPCMA, codec: CodecPCMA, dtmf: 96, remote: "10.0.0.1:4000"},
		{name: "static pt without rtpmap, media-level c=", sdp: "v=0\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 0\nc=IN IP4 2.2.2.2\n", codec: CodecPCMU, remote: "2.2.2.2:5000"},
		{name: "skips video and rejected audio", sdp: "v=0\nc=IN IP4 1.1.1.1\nm=video 6000 RTP/AVP 96\nm=audio 0 RTP/AVP 0\nm=audio 7000 RTP/AVP 0\n", codec: CodecPCMU, remote: "1.1.1.1:7000"},
		{name: "only g729", sdp: "v=0\nc=IN IP4 1.1.1.1\nm=audio 5000 RTP/AVP 18\na=rtpmap:18 G729/8000\n", wantErr: ErrNoCommonCodec},
		{name: "no audio", sdp: "v=0\nc=IN IP4 1.1.1.1\nm=video 5000 RTP/AVP 96\n", wantErr: ErrNoAudio},
		{name: "hold address", sdp: "v=0\nc=IN IP4 0.0.0.0\nm=audio 5000 RTP/AVP 0\n", wantErr: ErrNoAudio},
		{name: "empty", sdp: "", wantErr: ErrNoAudio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAnswerSDP([]byte(tt.sdp))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Codec != tt.codec || a.TelephoneEvent != tt.dtmf || a.Remote.String() != tt.remote {
				t.Errorf("got %+v %d %s", a.Codec, a.TelephoneEvent, a.Remote)
			}
		})
	}
}

// TestOfferRoundTrip: our own offer, read back as an answer, picks PCMU and DTMF 101.
func TestOfferRoundTrip(t *testing.T) {
	a, err := ParseAnswerSDP(buildOffer(net.IPv4(127, 0, 0, 1), 20000, 42))
	if err != nil {
		t.Fatal(err)
	}
	if a.Codec != CodecPCMU || a.TelephoneEvent != telephoneEventPT || a.Remote.Port != 20000 {
		t.Errorf("got %+v", a)
	}
}

func FuzzParseAnswerSDP(f *testing.F) {
	f.Add([]byte(answerPCMA))
	f.Add(buildOffer(net.IPv4(127, 0, 0, 1), 20000, 1))
	f.Add([]byte("m=audio 1 RTP/AVP\nc=IN\na=rtpmap:\n"))
	f.Add([]byte("m=audio 99999999999999999999 RTP/AVP 0 8\nc=IN IP6 ::1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswerSDP(b)
		if err == nil && (a.Remote == nil || a.Remote.Port <= 0 || a.Remote.Port > 65535 || a.Codec.Name == "") {
			t.Fatalf("accepted an unusable answer: %+v", a)
		}
	})
}

// TestCircuitStateTextRoundTrips: a trunk's status as one node publishes it
// reads back the same on another; a state nobody knows is an error.
func TestCircuitStateTextRoundTrips(t *testing.T) {
	for _, st := range []CircuitState{CircuitClosed, CircuitOpen, CircuitHalfOpen, CircuitHeld} {
		b, err := st.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got CircuitState
		if err := got.UnmarshalText(b); err != nil || got != st {
			t.Errorf("%s read back as %v, %v", b, got, err)
		}
	}
	var st CircuitState
	if err := st.UnmarshalText([]byte("sideways")); err == nil {
		t.Error("an unknown state was read")
	}
}
