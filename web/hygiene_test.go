package web

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// TestDisplayNamesAreCleaned: campaign names and users' display names lose their
// control characters, bidi overrides and ANSI escapes before they are stored, and
// the answer to the request says what was removed.
func TestDisplayNamesAreCleaned(t *testing.T) {
	e := newEnv(t, Config{})
	sales, admin := e.tokens[storage.RoleSales], testAdminToken
	type answer struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		DisplayName string `json:"display_name"`
		Cleaned     *struct {
			Removed int      `json:"removed"`
			Kinds   []string `json:"kinds"`
		} `json:"name_cleaned"`
		UserCleaned *struct {
			Removed int      `json:"removed"`
			Kinds   []string `json:"kinds"`
		} `json:"display_name_cleaned"`
	}
	check := func(t *testing.T, got answer, field, want string, removed int, kinds []string) {
		t.Helper()
		name, rep := got.Name, got.Cleaned
		if field == "display_name" {
			name, rep = got.DisplayName, got.UserCleaned
		}
		if name != want {
			t.Errorf("%s %q, want %q", field, name, want)
		}
		switch {
		case removed == 0 && rep != nil:
			t.Errorf("%s reported cleaned %+v, want no report", field, rep)
		case removed > 0 && (rep == nil || rep.Removed != removed || !reflect.DeepEqual(rep.Kinds, kinds)):
			t.Errorf("%s cleaning reported %+v, want %d removed, kinds %v", field, rep, removed, kinds)
		}
	}

	c := decode[answer](t, e.send(t, "POST", "/api/v1/campaigns", sales, map[string]any{
		"name": "\u202Egpj.exe\x00\n\x1b[31mCobrança", "caller_id": "+551130000000"}), http.StatusCreated)
	check(t, c, "name", "gpj.exe Cobrança", 4, []string{"bidi", "control", "line_break", "ansi_escape"})
	stored := decode[answer](t, e.get(t, "/api/v1/campaigns/"+c.ID, sales), http.StatusOK)
	check(t, stored, "name", "gpj.exe Cobrança", 0, nil)

	patched := decode[answer](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, sales, map[string]any{"name": "Março\u2066\u2069"}), http.StatusOK)
	check(t, patched, "name", "Março", 2, []string{"bidi"})
	patched = decode[answer](t, e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, sales, map[string]any{"name": "Abril"}), http.StatusOK)
	check(t, patched, "name", "Abril", 0, nil)

	// A name of nothing but what is removed is no name.
	bad := wantError(t, e.send(t, "POST", "/api/v1/campaigns", sales, map[string]any{
		"name": "\x00\u202E\r\n", "caller_id": "+551130000000"}), http.StatusUnprocessableEntity, "validation_failed")
	if bad.Fields["name"] == "" {
		t.Errorf("an empty name after cleaning: %+v, want the field name named", bad)
	}

	u := decode[answer](t, e.send(t, "POST", "/api/v1/users", admin, map[string]any{
		"username": "joana", "display_name": "Joana\x1b]0;pwned\x07 Silva\u202D", "role": "agent"}), http.StatusCreated)
	check(t, u, "display_name", "Joana Silva", 2, []string{"ansi_escape", "bidi"})
	u = decode[answer](t, e.send(t, "PATCH", "/api/v1/users/"+u.ID, admin, map[string]any{"display_name": "Jo\x00ana"}), http.StatusOK)
	check(t, u, "display_name", "Joana", 1, []string{"control"})
}

// TestSchedulesThatWouldNotWorkAreRefused: a schedule that never fires, or fires
// more often than once a minute, is refused at create and at update, naming it.
func TestSchedulesThatWouldNotWorkAreRefused(t *testing.T) {
	e := newEnv(t, Config{})
	sales := e.tokens[storage.RoleSales]
	c := decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", sales, map[string]any{
		"name": "Agendada", "caller_id": "+551130000000"}), http.StatusCreated)
	tests := []struct {
		name, open, close, want string
	}{
		{"30 February", "0 9 30 2 *", "0 18 * * *", "never fires"},
		{"every second", "@every 1s", "0 18 * * *", "at most once a minute"},
		{"closes every second", "0 9 * * *", "@every 1s", "at most once a minute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched := map[string]any{"open": tt.open, "close": tt.close, "timezone": "America/Sao_Paulo"}
			for _, r := range []apiResponse{
				e.send(t, "POST", "/api/v1/campaigns", sales, map[string]any{"name": "x", "caller_id": "+551130000000", "schedule": sched}),
				e.send(t, "PATCH", "/api/v1/campaigns/"+c.ID, sales, map[string]any{"schedule": sched}),
			} {
				got := wantError(t, r, http.StatusUnprocessableEntity, "validation_failed")
				if !strings.Contains(got.Fields["schedule"], tt.want) {
					t.Errorf("schedule error %q, want it to say %q", got.Fields["schedule"], tt.want)
				}
			}
		})
	}
	// The campaign is as it was.
	got := decode[map[string]any](t, e.get(t, "/api/v1/campaigns/"+c.ID, sales), http.StatusOK)
	if s, _ := got["schedule"].(map[string]any); s["open"] != nil {
		t.Errorf("schedule after refused changes: %v, want none", s)
	}
}
