package whatsapp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/dialer/whatsapp"
	"github.com/turbina-dialer/turbina/dialer/whatsapp/emulator"
)

// TestCallPermissionReadsMetaExample: the client asks
// GET /{phone-number-id}/call_permissions?user_wa_id=… and reads Meta's
// documented answer: a temporary grant with its expiry, a request allowed, and
// a used-up call limit with the instant it frees.
func TestCallPermissionReadsMetaExample(t *testing.T) {
	var gotPath, gotUser string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotUser = r.Method+" "+r.URL.Path, r.URL.Query().Get("user_wa_id")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(readMeta(t, "resp_call_permissions.json"))
	}))
	t.Cleanup(srv.Close)
	c, err := whatsapp.NewClient(whatsapp.Config{BaseURL: srv.URL, AccessToken: testToken, PhoneNumberID: "106540352242922", WABAID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CallPermission(testCtx(t, 5*time.Second), "+5511900000900")
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "GET /"+c.Config().APIVersion+"/106540352242922/call_permissions" || gotUser != "5511900000900" {
		t.Errorf("request %s user_wa_id=%s", gotPath, gotUser)
	}
	if s.Status != whatsapp.MetaPermissionTemporary || !s.Expires.Equal(time.Unix(1745343479, 0)) {
		t.Errorf("permission %s until %v", s.Status, s.Expires)
	}
	if !s.Granted(time.Unix(1745343478, 0)) || s.Granted(time.Unix(1745343479, 0)) {
		t.Error("a temporary grant is not granted just until its expiry")
	}
	if ok, next := s.CanRequest(); !ok || !next.IsZero() {
		t.Errorf("can request %v (next %v), Meta says it can", ok, next)
	}
	call := s.Actions[whatsapp.ActionStartCall]
	if call.CanPerform || len(call.Limits) != 1 || call.Limits[0].MaxAllowed != 5 || call.Limits[0].CurrentUsage != 5 ||
		!call.Limits[0].Expires.Equal(time.Unix(1745622600, 0)) {
		t.Errorf("start_call %+v", call)
	}
}

// TestCallPermissionRefusesUnknownStatus: a status Meta does not document is an
// error naming the field, never read as a grant.
func TestCallPermissionRefusesUnknownStatus(t *testing.T) {
	for _, body := range []string{
		`{"messaging_product":"whatsapp","permission":{"status":"granted"},"actions":[]}`,
		`{"messaging_product":"whatsapp","actions":[]}`,
		`{"messaging_product":"whatsapp","permission":{"status":"permanent"},"actions":[{"action_name":"start_call"}]}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
		c, err := whatsapp.NewClient(whatsapp.Config{BaseURL: srv.URL, AccessToken: testToken, PhoneNumberID: "1", WABAID: "1"})
		if err != nil {
			t.Fatal(err)
		}
		if s, err := c.CallPermission(testCtx(t, 5*time.Second), "5511900000901"); err == nil {
			t.Errorf("%s read as %+v", body, s)
		}
		srv.Close()
	}
}

// TestEmulatorCallPermissionsMatchMeta: the emulator's answer has the shape of
// Meta's example (every field of it, no other), for a used-up request limit too.
func TestEmulatorCallPermissionsMatchMeta(t *testing.T) {
	env := newEnv(t, nil)
	const number = "5511900000902"
	env.emu.GrantPermission(number, time.Now().Add(time.Hour))
	env.emu.UserMessage(number, "oi")
	if _, err := env.client.RequestCallPermission(testCtx(t, 5*time.Second), "shape-1", number, "May we call?"); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, env.emu.URL()+"/v23.0/"+env.emu.PhoneNumberID()+"/call_permissions?user_wa_id="+number, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got, want := jsonPaths(t, body), jsonPaths(t, readMeta(t, "resp_call_permissions.json"))
	for p := range got {
		if !want[p] {
			t.Errorf("the emulator sends %s, Meta's example has no such field (%s)", p, body)
		}
	}
	for p := range want {
		if !got[p] {
			t.Errorf("the emulator lacks %s (%s)", p, body)
		}
	}
}

// TestCallPermissionLimits: Meta's limits on permission requests, as the
// emulator keeps them and the client reads them: one in 24 h (a second is
// refused with 138009 and the state says when the next may go), reset by a
// connected call; a request to a person who gave permanent permission is
// refused with 138017, which the client names.
func TestCallPermissionLimits(t *testing.T) {
	env := newEnv(t, nil)
	ctx := testCtx(t, 20*time.Second)
	const number = "5511900000903"
	env.emu.UserMessage(number, "oi") // opens the service window for free-form requests
	s, err := env.client.CallPermission(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != whatsapp.MetaPermissionNone || s.Granted(time.Now()) {
		t.Fatalf("a stranger's permission: %+v", s)
	}
	if ok, _ := s.CanRequest(); !ok {
		t.Fatal("no request allowed before any was sent")
	}
	sent := time.Now()
	if _, err := env.client.RequestCallPermission(ctx, "limit-1", number, "May we call?"); err != nil {
		t.Fatal(err)
	}
	s, err = env.client.CallPermission(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	ok, next := s.CanRequest()
	if ok || next.Before(sent.Add(24*time.Hour-2*time.Second)) || next.After(time.Now().Add(24*time.Hour+time.Second)) {
		t.Fatalf("after one request: can %v, next %v (sent %v)", ok, next, sent)
	}
	_, err = env.client.RequestCallPermission(ctx, "limit-2", number, "May we call?")
	if whatsapp.ErrorKind(err) != whatsapp.KindCallingUnavailable || whatsapp.PermissionExists(err) {
		t.Fatalf("second request in 24 h: %v", err)
	}

	// A connected call resets the limits.
	env.emu.GrantPermission(number, time.Now().Add(time.Hour))
	env.emu.Script(number, emulator.Behaviour{Call: emulator.CallAccept, AnswerAfter: 50 * time.Millisecond, HangupAfter: 100 * time.Millisecond})
	call, err := env.client.Dial(ctx, "limit-call", number, whatsapp.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	collectUpdates(t, call)
	if s, err = env.client.CallPermission(ctx, number); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.CanRequest(); !ok || s.Status != whatsapp.MetaPermissionTemporary {
		t.Fatalf("after a connected call: %+v", s)
	}

	// Permanent permission given in the profile: a request is refused with 138017.
	env.emu.GrantPermission(number, time.Time{})
	if s, err = env.client.CallPermission(ctx, number); err != nil || s.Status != whatsapp.MetaPermissionPermanent || !s.Granted(time.Now()) {
		t.Fatalf("permanent: %+v %v", s, err)
	}
	if _, err := env.client.RequestCallPermission(ctx, "limit-3", number, "May we call?"); !whatsapp.PermissionExists(err) {
		t.Fatalf("request to a permanent grant: %v", err)
	}
}
