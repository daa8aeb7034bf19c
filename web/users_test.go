package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

type tokenList struct {
	Tokens []map[string]any `json:"tokens"`
}

func TestUsers(t *testing.T) {
	e := newEnv(t, Config{})
	admin := testAdminToken

	u := decode[storage.User](t, e.send(t, "POST", "/api/v1/users", admin,
		map[string]any{"username": "maria.s", "display_name": "  Maria Silva ", "role": "sales"}), http.StatusCreated)
	if u.ID == 0 || u.Username != "maria.s" || u.DisplayName != "Maria Silva" || u.Role != storage.RoleSales || u.Disabled {
		t.Errorf("created = %+v", u)
	}
	// Usernames are unique regardless of case.
	wantError(t, e.send(t, "POST", "/api/v1/users", admin, map[string]any{"username": "Maria.S", "role": "agent"}), 409, "conflict")
	got := wantError(t, e.send(t, "POST", "/api/v1/users", admin, map[string]any{"username": "a b", "role": "boss"}), 422, "validation_failed")
	if got.Fields["username"] == "" || got.Fields["role"] == "" {
		t.Errorf("fields = %v, want username and role", got.Fields)
	}
	// Passwords are accepted now (for the web pages), but not short ones.
	if got := wantError(t, e.send(t, "POST", "/api/v1/users", admin, `{"username":"x1","role":"sales","password":"x"}`), 422, "validation_failed"); got.Fields["password"] == "" {
		t.Errorf("fields = %v, want password", got.Fields)
	}

	list := decode[struct{ Users []storage.User }](t, e.get(t, "/api/v1/users", admin), http.StatusOK)
	var names []string
	for _, u := range list.Users {
		names = append(names, u.Username)
	}
	if want := "admin supervisor1 sales1 agent1 maria.s"; strings.Join(names, " ") != want {
		t.Errorf("users = %v, want %s", names, want)
	}

	// Users read themselves; only admins read others.
	self := e.tokens[storage.RoleAgent]
	agent := e.users[storage.RoleAgent]
	if got := decode[storage.User](t, e.get(t, fmt.Sprintf("/api/v1/users/%d", agent.ID), self), http.StatusOK); got.Username != "agent1" {
		t.Errorf("self = %+v", got)
	}
	wantError(t, e.get(t, fmt.Sprintf("/api/v1/users/%d", u.ID), self), 403, "forbidden")
	if got := decode[storage.User](t, e.get(t, fmt.Sprintf("/api/v1/users/%d", u.ID), admin), http.StatusOK); got.Username != "maria.s" {
		t.Errorf("admin reads = %+v", got)
	}
	wantError(t, e.get(t, "/api/v1/users/999999", admin), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/users/me", admin), 404, "not_found")

	// Changing a user.
	path := fmt.Sprintf("/api/v1/users/%d", u.ID)
	if got := decode[storage.User](t, e.send(t, "PATCH", path, admin, map[string]any{"role": "supervisor", "display_name": "M."}), http.StatusOK); got.Role != storage.RoleSupervisor || got.DisplayName != "M." {
		t.Errorf("patched = %+v", got)
	}
	wantError(t, e.send(t, "PATCH", path, admin, map[string]any{"role": "root"}), 422, "validation_failed")
	wantError(t, e.send(t, "PATCH", path, admin, map[string]any{"disabled": "yes"}), 400, "bad_request")
	wantError(t, e.send(t, "PATCH", "/api/v1/users/999999", admin, map[string]any{"disabled": true}), 404, "not_found")
}

func TestLastAdmin(t *testing.T) {
	e := newEnv(t, Config{})
	admin := e.users[storage.RoleAdmin]
	path := fmt.Sprintf("/api/v1/users/%d", admin.ID)
	wantError(t, e.send(t, "PATCH", path, testAdminToken, map[string]any{"disabled": true}), 409, "conflict")
	wantError(t, e.send(t, "PATCH", path, testAdminToken, map[string]any{"role": "sales"}), 409, "conflict")
	if got := decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", testAdminToken), http.StatusOK); got.User.Role != storage.RoleAdmin || got.User.Disabled {
		t.Fatalf("admin after refused changes = %+v", got.User)
	}

	// With a second admin, the first may step down; then the second is the last.
	second, secondToken := e.createUser(t, "admin2", storage.RoleAdmin)
	decode[storage.User](t, e.send(t, "PATCH", path, secondToken, map[string]any{"disabled": true}), http.StatusOK)
	wantError(t, e.get(t, "/api/v1/me", testAdminToken), 401, "unauthorized")
	wantError(t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", second.ID), secondToken, map[string]any{"disabled": true}), 409, "conflict")
	// Re-enabled, the first admin signs in again, but the token was revoked with
	// the disabling: whoever held it while the account was off must not get back in.
	decode[storage.User](t, e.send(t, "PATCH", path, secondToken, map[string]any{"disabled": false}), http.StatusOK)
	wantError(t, e.get(t, "/api/v1/me", testAdminToken), 401, "unauthorized")
}

func TestTokens(t *testing.T) {
	e := newEnv(t, Config{})
	sales, salesUser := e.tokens[storage.RoleSales], e.users[storage.RoleSales]
	agent, agentUser := e.tokens[storage.RoleAgent], e.users[storage.RoleAgent]
	own := fmt.Sprintf("/api/v1/users/%d/tokens", salesUser.ID)

	// A user creates a token of their own; the secret is in this answer only.
	r := e.send(t, "POST", own, sales, map[string]string{"name": "laptop"})
	created := decode[map[string]any](t, r, http.StatusCreated)
	secret, _ := created["token"].(string)
	if !strings.HasPrefix(secret, "tb_") || created["name"] != "laptop" || created["user_id"] != fmt.Sprint(salesUser.ID) ||
		!strings.HasPrefix(secret, created["prefix"].(string)) {
		t.Fatalf("created = %v", created)
	}
	if me := decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", secret), http.StatusOK); me.User.ID != salesUser.ID {
		t.Errorf("new token authenticates as %+v", me.User)
	}

	list := decode[tokenList](t, e.get(t, own, sales), http.StatusOK)
	if len(list.Tokens) != 2 {
		t.Fatalf("tokens = %v, want the test's and laptop", list.Tokens)
	}
	for _, tok := range list.Tokens {
		if _, leaked := tok["token"]; leaked {
			t.Errorf("listed token shows its secret: %v", tok)
		}
	}
	if list.Tokens[1]["id"] != created["id"] {
		t.Errorf("listed %v, want %v last", list.Tokens, created["id"])
	}

	// Not someone else's.
	other := fmt.Sprintf("/api/v1/users/%d/tokens", agentUser.ID)
	wantError(t, e.send(t, "POST", other, sales, map[string]string{"name": "sneaky"}), 403, "forbidden")
	wantError(t, e.get(t, other, sales), 403, "forbidden")
	agentTokens := decode[tokenList](t, e.get(t, other, agent), http.StatusOK)
	agentTokenID := agentTokens.Tokens[0]["id"].(string)
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/tokens/" + agentTokenID, token: sales}), 403, "forbidden")
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", agent), http.StatusOK)

	// Validation and unknowns.
	wantError(t, e.send(t, "POST", own, sales, map[string]string{"name": "  "}), 422, "validation_failed")
	wantError(t, e.send(t, "POST", own, sales, map[string]string{"name": strings.Repeat("n", 101)}), 422, "validation_failed")
	wantError(t, e.send(t, "POST", own, sales, `{"name":"x","scope":"all"}`), 400, "bad_request")
	wantError(t, e.send(t, "POST", "/api/v1/users/999999/tokens", testAdminToken, map[string]string{"name": "x"}), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/users/999999/tokens", testAdminToken), 404, "not_found")
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/tokens/999999", token: sales}), 404, "not_found")
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/tokens/x", token: sales}), 404, "not_found")

	// Revoking one's own token: it stops working at once, and stays listed as revoked.
	id := created["id"].(string)
	if r := e.do(t, request{method: "DELETE", path: "/api/v1/tokens/" + id, token: sales}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	wantError(t, e.get(t, "/api/v1/me", secret), 401, "unauthorized")
	wantError(t, e.do(t, request{method: "DELETE", path: "/api/v1/tokens/" + id, token: sales}), 404, "not_found")
	list = decode[tokenList](t, e.get(t, own, sales), http.StatusOK)
	if list.Tokens[1]["revoked_at"] == nil || list.Tokens[0]["revoked_at"] != nil {
		t.Errorf("tokens after revoking = %v", list.Tokens)
	}
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", sales), http.StatusOK)

	// An admin acts on anyone's tokens.
	adminMade := e.newToken(t, agentUser.ID, testAdminToken)
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", adminMade), http.StatusOK)
	if r := e.do(t, request{method: "DELETE", path: "/api/v1/tokens/" + agentTokenID, token: testAdminToken}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	wantError(t, e.get(t, "/api/v1/me", agent), 401, "unauthorized")
}

func TestMe(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Assigned")
	decode[struct{ Agents []storage.User }](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)
	for _, role := range allTestRoles {
		me := decode[struct {
			User        storage.User `json:"user"`
			CampaignIDs []string     `json:"campaign_ids"`
		}](t, e.get(t, "/api/v1/me", e.tokens[role]), http.StatusOK)
		if me.User.Role != role || me.User.ID != e.users[role].ID {
			t.Errorf("%s: me = %+v", role, me.User)
		}
		if want := role == storage.RoleAgent; want != (len(me.CampaignIDs) == 1 && me.CampaignIDs[0] == c.ID) {
			t.Errorf("%s: campaign_ids = %v", role, me.CampaignIDs)
		}
	}
}
