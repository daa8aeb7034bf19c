package web

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

var allTestRoles = []storage.Role{storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent}

// fillPath replaces the {name} parameters of a route pattern with values.
func fillPath(pattern string, values map[string]string) string {
	return pathParamPattern.ReplaceAllStringFunc(pattern, func(m string) string {
		return values[m[1:len(m)-1]]
	})
}

// TestRoleBoundaries calls every operation as every role over HTTP and checks the
// answer against readmeRoles, the roles as the README promises them (written
// apart from the route table, so a route given other roles fails here): those a
// role may not call get 403 with the JSON error before anything happens; those it
// may get past the role check.
func TestRoleBoundaries(t *testing.T) {
	e := newEnv(t, Config{})
	// IDs that exist nowhere: an allowed call then ends in 404 or similar, never in
	// a change that would disturb the calls after it.
	params := map[string]string{"id": "999999", "user_id": "999998", "phone": "+5511987650000"}
	served := map[string]bool{}
	for _, rt := range e.server.routes {
		key := rt.method + " " + rt.path
		served[key] = true
		spec, ok := readmeRoles[key]
		if !ok {
			t.Errorf("%s is served but readmeRoles does not say who may call it", key)
			continue
		}
		allowed := strings.Fields(spec)
		path := fillPath(rt.path, params)
		for _, role := range allTestRoles {
			t.Run(fmt.Sprintf("%s %s as %s", rt.method, rt.path, role), func(t *testing.T) {
				r := e.do(t, request{method: rt.method, path: path, token: e.tokens[role],
					body: strings.NewReader("{}"), contentType: "application/json"})
				roleMsg := fmt.Sprintf("role %s may not %s %s", role, rt.method, rt.path)
				if !slices.Contains(allowed, string(role)) {
					if got := wantError(t, r, http.StatusForbidden, "forbidden"); got.Message != roleMsg {
						t.Errorf("message %q, want %q", got.Message, roleMsg)
					}
					return
				}
				if r.status == http.StatusForbidden && strings.Contains(string(r.body), roleMsg) {
					t.Errorf("%v: the README allows %s", r, role)
				}
				if r.status == http.StatusUnauthorized || r.status >= 500 {
					t.Errorf("%v: unexpected status for an allowed role", r)
				}
			})
		}
	}
	for key := range readmeRoles {
		if !served[key] {
			t.Errorf("readmeRoles lists %s, which is not served", key)
		}
	}
}

// TestRolePolicy pins the role rules the product promises, independently of the
// route table (which TestRoleBoundaries and the OpenAPI test only compare with each
// other).
func TestRolePolicy(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Policy")
	id := c.ID
	tests := []struct {
		role   storage.Role
		method string
		path   string
		body   any
	}{
		{storage.RoleSales, "PATCH", "/api/v1/campaigns/" + id + "/pacing", map[string]any{"max_ratio": 2}},
		{storage.RoleSales, "PATCH", "/api/v1/campaigns/" + id, map[string]any{"pacing": map[string]any{"max_ratio": 2}}},
		{storage.RoleSales, "POST", "/api/v1/campaigns/" + id + "/pause", nil},
		{storage.RoleSales, "POST", "/api/v1/campaigns/" + id + "/resume", nil},
		{storage.RoleAgent, "POST", "/api/v1/campaigns/" + id + "/start", nil},
		{storage.RoleAgent, "POST", "/api/v1/campaigns", map[string]any{"name": "x", "caller_id": "+551130000000"}},
		{storage.RoleSupervisor, "POST", "/api/v1/campaigns", map[string]any{"name": "x", "caller_id": "+551130000000"}},
		{storage.RoleAgent, "POST", "/api/v1/campaigns/" + id + "/contacts", "phone\n+5511987654321\n"},
		{storage.RoleSupervisor, "POST", "/api/v1/users", map[string]any{"username": "x1", "role": "admin"}},
		{storage.RoleSales, "POST", "/api/v1/users", map[string]any{"username": "x2", "role": "admin"}},
		{storage.RoleAgent, "POST", "/api/v1/users", map[string]any{"username": "x3", "role": "admin"}},
		{storage.RoleSupervisor, "GET", "/api/v1/users", nil},
		{storage.RoleSupervisor, "PATCH", fmt.Sprintf("/api/v1/users/%d", e.users[storage.RoleSupervisor].ID), map[string]any{"role": "admin"}},
		{storage.RoleSales, "GET", "/api/v1/audit", nil},
		{storage.RoleAgent, "POST", "/api/v1/dnc", map[string]any{"phones": []string{"+5511987654321"}}},
		{storage.RoleSales, "DELETE", "/api/v1/dnc/+5511987654321", nil},
		{storage.RoleSales, "POST", "/api/v1/campaigns/" + id + "/agents", map[string]any{"user_id": e.users[storage.RoleAgent].ID}},
		{storage.RoleAgent, "GET", "/api/v1/campaigns/" + id + "/stats", nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %s", tt.role, tt.method, tt.path), func(t *testing.T) {
			var r apiResponse
			if s, ok := tt.body.(string); ok {
				r = e.do(t, request{method: tt.method, path: tt.path, token: e.tokens[tt.role], body: strings.NewReader(s), contentType: "text/csv"})
			} else {
				r = e.send(t, tt.method, tt.path, e.tokens[tt.role], tt.body)
			}
			wantError(t, r, http.StatusForbidden, "forbidden")
		})
	}
	// None of the refused calls changed anything.
	got := decode[campaignView](t, e.get(t, "/api/v1/campaigns/"+id, testAdminToken), http.StatusOK)
	if got.State != "draft" || got.Name != "Policy" || got.Pacing.MaxRatio != 3 {
		t.Errorf("campaign changed by refused calls: %+v", got)
	}
	if l := e.contacts(t, id, ""); l.Total != 0 {
		t.Errorf("refused import stored %d contacts", l.Total)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, Config{})

	// A user whose token is later revoked, and one who is later disabled.
	revokedUser, revoked := e.createUser(t, "revoked", storage.RoleSales)
	_, disabled := e.createUser(t, "disabled", storage.RoleSupervisor)
	me := decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", disabled), http.StatusOK)
	tokens := decode[struct{ Tokens []storage.Token }](t, e.get(t, fmt.Sprintf("/api/v1/users/%d/tokens", revokedUser.ID), revoked), http.StatusOK)
	if len(tokens.Tokens) != 1 {
		t.Fatalf("tokens of %s: %+v", revokedUser.Username, tokens.Tokens)
	}
	if r := e.do(t, request{method: "DELETE", path: fmt.Sprintf("/api/v1/tokens/%d", tokens.Tokens[0].ID), token: revoked}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	decode[storage.User](t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", me.User.ID), testAdminToken, map[string]any{"disabled": true}), http.StatusOK)

	tests := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"basic scheme", "Basic YWRtaW46YWRtaW4="},
		{"empty bearer", "Bearer "},
		{"bearer without space", "Bearer" + testAdminToken},
		{"unknown token", "Bearer tb_doesnotexist"},
		{"revoked token", "Bearer " + revoked},
		{"disabled user", "Bearer " + disabled},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/me", "/api/v1/campaigns", "/api/v1/openapi.json"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				req, err := http.NewRequest("GET", e.srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				res, err := e.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var body bytes.Buffer
				body.ReadFrom(res.Body)
				r := apiResponse{method: "GET", path: path, status: res.StatusCode, header: res.Header, body: body.Bytes()}
				wantError(t, r, http.StatusUnauthorized, "unauthorized")
				if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", res.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}

	// The scheme is case-insensitive, and the admin token from the environment works.
	r := e.do(t, request{method: "GET", path: "/api/v1/me", token: testAdminToken})
	if got := decode[struct{ User storage.User }](t, r, http.StatusOK); got.User.Role != storage.RoleAdmin || got.User.Username != "admin" {
		t.Errorf("me = %+v", got.User)
	}
}
