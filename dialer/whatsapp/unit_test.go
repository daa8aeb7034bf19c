package whatsapp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
)

func TestSecretsAreRedacted(t *testing.T) {
	cfg := whatsapp.Config{AccessToken: testToken, PhoneNumberID: "1"}
	wcfg := whatsapp.WebhookConfig{AppSecret: testSecret, VerifyToken: testVerify}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("config", "wa", cfg, "hook", wcfg)
	log.Info("ptr", "wa", &cfg)
	out := logs.String() + fmt.Sprint(cfg) + fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg) + fmt.Sprintf("%v %+v %#v", wcfg, wcfg, wcfg)
	for _, secret := range []string{testToken, testSecret, testVerify} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret %q printed: %s", secret, out)
		}
	}
	if !strings.Contains(out, "[REDACTED]") {
		t.Fatalf("no redaction marker: %s", out)
	}
}

func TestConfigJSONAndValidate(t *testing.T) {
	var cfg whatsapp.Config
	if err := json.Unmarshal([]byte(`{"base_url":"http://127.0.0.1:1","access_token":"t","phone_number_id":"1","waba_id":"2","messages_per_second":20}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.WABAID != "2" || cfg.MessagesPerSecond != 20 {
		t.Fatalf("%v %+v", err, cfg)
	}
	for _, bad := range []whatsapp.Config{{}, {AccessToken: "t"}, {AccessToken: "t", PhoneNumberID: "1", BaseURL: "ftp://x"}} {
		if bad.Validate() == nil {
			t.Fatalf("%v validated", bad)
		}
	}
}

func TestClassifyCode(t *testing.T) {
	tests := []struct {
		status, code int
		want         whatsapp.Kind
	}{
		{400, 138006, whatsapp.KindNoPermission},
		{400, 131026, whatsapp.KindNotOnWhatsApp},
		{400, 131047, whatsapp.KindOutsideWindow},
		{400, 132000, whatsapp.KindBadTemplate},
		{400, 132001, whatsapp.KindBadTemplate},
		{400, 132015, whatsapp.KindBadTemplate},
		{401, 190, whatsapp.KindAuth},
		{400, 190, whatsapp.KindAuth},
		{403, 200, whatsapp.KindAuth},
		{429, 130429, whatsapp.KindThrottled},
		{400, 130429, whatsapp.KindThrottled},
		{400, 131056, whatsapp.KindThrottled},
		{400, 80007, whatsapp.KindThrottled},
		{500, 131000, whatsapp.KindServer},
		{503, 0, whatsapp.KindServer},
		// Calling error codes with the HTTP status Meta's calling troubleshooting
		// reference gives them.
		{401, 138000, whatsapp.KindCallingUnavailable},
		{401, 138006, whatsapp.KindNoPermission},
		{400, 138001, whatsapp.KindNotOnWhatsApp},
		{429, 138002, whatsapp.KindThrottled},
		{400, 138003, whatsapp.KindCallingUnavailable},
		{500, 138004, whatsapp.KindServer},
		{429, 138005, whatsapp.KindThrottled},
		{500, 138007, whatsapp.KindServer},
		{400, 138009, whatsapp.KindCallingUnavailable},
		{400, 138012, whatsapp.KindCallingUnavailable},
		{400, 138013, whatsapp.KindCallingUnavailable},
		{400, 138014, whatsapp.KindCallingUnavailable},
		{400, 138015, whatsapp.KindCallingUnavailable},
		{400, 138018, whatsapp.KindCallingUnavailable},
		{400, 138019, whatsapp.KindServer},
		{400, 138023, whatsapp.KindServer},
		{400, 131055, whatsapp.KindCallingUnavailable},
		{429, 613, whatsapp.KindThrottled},
		{500, 131016, whatsapp.KindServer},
		{503, 131016, whatsapp.KindServer},
		// The code wins over a status that says otherwise.
		{429, 190, whatsapp.KindAuth},
		{500, 132001, whatsapp.KindBadTemplate},
		{400, 100, whatsapp.KindInvalidRequest},
		{404, 0, whatsapp.KindInvalidRequest},
		{429, 0, whatsapp.KindThrottled},
		{200, 0, whatsapp.KindUnknown},
	}
	for _, tt := range tests {
		if got := whatsapp.ClassifyCode(tt.status, tt.code); got != tt.want {
			t.Errorf("ClassifyCode(%d, %d) = %s, want %s", tt.status, tt.code, got, tt.want)
		}
	}
	e := &whatsapp.Error{HTTPStatus: 400, Code: 138006, Message: "no", FBTraceID: "abc", Op: "connect call", Attempts: 1}
	if e.Outcome() != "no_permission" || !strings.Contains(e.Error(), "abc") || e.Temporary() {
		t.Fatalf("%v", e)
	}
	if whatsapp.ErrorKind(fmt.Errorf("dial: %w", e)) != whatsapp.KindNoPermission {
		t.Fatal("ErrorKind does not unwrap")
	}
}

func callEv(typ whatsapp.EventType, status string, sec int64, dur time.Duration) whatsapp.Event {
	return whatsapp.Event{Type: typ, Time: time.Unix(sec, 0), Key: fmt.Sprint(typ, status, sec), Call: &whatsapp.CallEvent{ID: "wacid.S", Status: status, Duration: dur}}
}

func TestCallStateOrdering(t *testing.T) {
	ring := callEv(whatsapp.EventCallStatus, "RINGING", 10, 0)
	acc := callEv(whatsapp.EventCallStatus, "ACCEPTED", 12, 0)
	accSameSecond := callEv(whatsapp.EventCallStatus, "ACCEPTED", 10, 0)
	rej := callEv(whatsapp.EventCallStatus, "REJECTED", 12, 0)
	term := callEv(whatsapp.EventCallTerminate, "COMPLETED", 30, 18*time.Second)
	term0 := callEv(whatsapp.EventCallTerminate, "COMPLETED", 20, 0)
	tests := []struct {
		name    string
		events  []whatsapp.Event
		want    whatsapp.CallOutcome
		endings int
	}{
		{"in order", []whatsapp.Event{ring, acc, term}, whatsapp.OutcomeAnswered, 1},
		{"reversed", []whatsapp.Event{term, acc, ring}, whatsapp.OutcomeAnswered, 1},
		{"same second, arrival reversed", []whatsapp.Event{accSameSecond, ring, term}, whatsapp.OutcomeAnswered, 1},
		{"duplicates", []whatsapp.Event{ring, ring, acc, acc, term, term}, whatsapp.OutcomeAnswered, 1},
		{"rejected", []whatsapp.Event{rej, ring, term0}, whatsapp.OutcomeRejected, 1},
		{"no answer", []whatsapp.Event{ring, term0, term0}, whatsapp.OutcomeNoAnswer, 1},
		{"accepted lost, duration tells", []whatsapp.Event{ring, term}, whatsapp.OutcomeAnswered, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := whatsapp.NewCallTracker()
			got := tr.Apply(tt.events)["wacid.S"]
			// Replaying the same events changes nothing.
			if again := tr.Apply(tt.events); len(again) != 0 {
				t.Fatalf("replay changed state: %+v", again)
			}
			endings := 0
			for i, x := range got {
				if x.To == whatsapp.PhaseEnded {
					endings++
				}
				if i > 0 && x.To < got[i-1].To {
					t.Fatalf("phase went back: %+v", got)
				}
			}
			if s := tr.State("wacid.S"); endings != tt.endings || s.Outcome != tt.want {
				t.Fatalf("transitions %+v, outcome %s, want %s", got, s.Outcome, tt.want)
			}
		})
	}
	// The machine alone (no sorting): a RINGING after ACCEPTED and a second terminate
	// are ignored.
	var s whatsapp.CallState
	for _, ev := range []whatsapp.Event{acc, ring, term0, term} {
		s.Apply(ev)
	}
	if s.Phase != whatsapp.PhaseEnded || s.Outcome != whatsapp.OutcomeAnswered || !s.RingingAt.IsZero() {
		t.Fatalf("%+v", s)
	}
}

func TestPermissionState(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var p whatsapp.Permission
	if p.Current(now) != whatsapp.PermissionUnknown || p.CanCall(now) {
		t.Fatal("zero permission")
	}
	p = p.Requested(now, "wamid.R")
	if p.Current(now) != whatsapp.PermissionRequested {
		t.Fatal(p)
	}
	p = p.Apply(whatsapp.PermissionReply{Granted: true, Expires: now.Add(time.Hour)}, now.Add(time.Minute))
	if !p.CanCall(now.Add(2*time.Minute)) || p.CanCall(now.Add(2*time.Hour)) || p.Current(now.Add(2*time.Hour)) != whatsapp.PermissionUnknown {
		t.Fatal(p)
	}
	// An older reply (reordered webhook) does not override a newer one.
	p = p.Apply(whatsapp.PermissionReply{Granted: false}, now)
	if !p.CanCall(now.Add(2 * time.Minute)) {
		t.Fatal("older reply applied")
	}
	p = p.Apply(whatsapp.PermissionReply{Granted: false}, now.Add(3*time.Minute))
	if p.Current(now.Add(4*time.Minute)) != whatsapp.PermissionDenied {
		t.Fatal(p)
	}
	p = p.Apply(whatsapp.PermissionReply{Granted: true, Permanent: true}, now.Add(5*time.Minute))
	if !p.CanCall(now.Add(1000 * time.Hour)) {
		t.Fatal("permanent grant expired")
	}
	if p.Revoked().CanCall(now) {
		t.Fatal("revoked still callable")
	}
}

func TestBodyPlaceholders(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{"Hi {{2}} and {{1}} and {{2}}", "1,2"},
		{"Hi {{ first_name }}, about {{topic}}", "first_name,topic"},
		{"none", ""},
		{"{{10}} {{9}}", "9,10"},
	}
	for _, tt := range tests {
		if got := strings.Join(whatsapp.BodyPlaceholders(tt.body), ","); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.body, got, tt.want)
		}
	}
}
