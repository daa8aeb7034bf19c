package web

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// mintedToken is the answer to a token's creation.
type mintedToken struct {
	storage.Token
	Secret string `json:"token"`
}

var tokenShape = regexp.MustCompile(`^tb_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$`)

// TestTokenShowsOnlyItsLabel: a token is tb_<label>_<secret>, and what is listed
// (and stored in clear) is the non-secret label only; the operator's
// TURBINA_ADMIN_TOKEN shows none of its characters.
func TestTokenShowsOnlyItsLabel(t *testing.T) {
	e := newEnv(t, Config{})
	sales := e.users[storage.RoleSales]
	tok := decode[mintedToken](t, e.send(t, "POST", fmt.Sprintf("/api/v1/users/%d/tokens", sales.ID), e.tokens[storage.RoleSales],
		map[string]string{"name": "ci"}), http.StatusCreated)
	m := tokenShape.FindStringSubmatch(tok.Secret)
	if m == nil {
		t.Fatalf("token %q is not tb_<8 hex>_<secret>", tok.Secret)
	}
	if tok.Prefix != "tb_"+m[1] {
		t.Errorf("prefix %q, want the label tb_%s", tok.Prefix, m[1])
	}
	admin := decode[tokenList](t, e.get(t, fmt.Sprintf("/api/v1/users/%d/tokens", e.users[storage.RoleAdmin].ID), testAdminToken), http.StatusOK)
	if len(admin.Tokens) == 0 {
		t.Fatal("the admin's token is not listed")
	}
	for _, l := range admin.Tokens {
		if p := l["prefix"]; p != tokenPrefix {
			t.Errorf("the environment's admin token is listed as %q, want only %q", p, tokenPrefix)
		}
	}
}

// TestTokenExpiry: a token works until its expiry, the server's default when the
// request names none; a request may name an earlier or later one within bounds,
// and a bad one is refused naming the field.
func TestTokenExpiry(t *testing.T) {
	const ttl = 2 * time.Second
	e := newEnv(t, Config{TokenTTL: ttl})
	u, _ := e.createUser(t, "expiring", storage.RoleSales)
	path := fmt.Sprintf("/api/v1/users/%d/tokens", u.ID)

	now := time.Now()
	later := now.Add(30 * 24 * time.Hour).UTC().Truncate(time.Millisecond)
	tests := []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"in the past", map[string]any{"name": "x", "expires_at": now.Add(-time.Minute)}, 422, "expires_at"},
		{"over a year away", map[string]any{"name": "x", "expires_at": now.Add(400 * 24 * time.Hour)}, 422, "expires_at"},
		{"not a time", map[string]any{"name": "x", "expires_at": "soon"}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(t, "POST", path, testAdminToken, tt.body)
			if tt.status == 400 {
				wantError(t, r, 400, "bad_request")
				return
			}
			if got := wantError(t, r, tt.status, "validation_failed"); got.Fields[tt.field] == "" {
				t.Errorf("%v: no message for %s", r, tt.field)
			}
		})
	}

	named := decode[mintedToken](t, e.send(t, "POST", path, testAdminToken, map[string]any{"name": "month", "expires_at": later}), http.StatusCreated)
	if named.ExpiresAt == nil || !named.ExpiresAt.Equal(later) {
		t.Errorf("expires_at = %v, want %v", named.ExpiresAt, later)
	}
	short := decode[mintedToken](t, e.send(t, "POST", path, testAdminToken, map[string]any{"name": "default"}), http.StatusCreated)
	if short.ExpiresAt == nil || short.ExpiresAt.Sub(short.CreatedAt) < ttl-time.Second || short.ExpiresAt.Sub(short.CreatedAt) > ttl+time.Second {
		t.Fatalf("default token created %v expires %v, want %v later", short.CreatedAt, short.ExpiresAt, ttl)
	}
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", short.Secret), http.StatusOK)
	time.Sleep(time.Until(*short.ExpiresAt) + 50*time.Millisecond)
	wantError(t, e.get(t, "/api/v1/me", short.Secret), http.StatusUnauthorized, "unauthorized")
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", named.Secret), http.StatusOK)

}

// TestTokenMintedByTokenLivesNoLonger: a token made with a token expires no later
// than it, or a chain of them, each made before the last expires, never would.
func TestTokenMintedByTokenLivesNoLonger(t *testing.T) {
	e := newEnv(t, Config{})
	u, _ := e.createUser(t, "chain", storage.RoleSales)
	path := fmt.Sprintf("/api/v1/users/%d/tokens", u.ID)
	month := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Millisecond)
	parent := decode[mintedToken](t, e.send(t, "POST", path, testAdminToken, map[string]any{"name": "month", "expires_at": month}), http.StatusCreated)

	if got := wantError(t, e.send(t, "POST", path, parent.Secret, map[string]any{"name": "longer", "expires_at": month.Add(24 * time.Hour)}),
		422, "validation_failed"); got.Fields["expires_at"] == "" {
		t.Errorf("no message for expires_at: %+v", got)
	}
	child := decode[mintedToken](t, e.send(t, "POST", path, parent.Secret, map[string]any{"name": "child"}), http.StatusCreated)
	if child.ExpiresAt == nil || !child.ExpiresAt.Equal(month) {
		t.Errorf("a token made with one expiring %v expires %v (the default is 90 days)", month, child.ExpiresAt)
	}
	week := time.Now().Add(7 * 24 * time.Hour).UTC().Truncate(time.Millisecond)
	if shorter := decode[mintedToken](t, e.send(t, "POST", path, parent.Secret, map[string]any{"name": "week", "expires_at": week}), http.StatusCreated); !shorter.ExpiresAt.Equal(week) {
		t.Errorf("a shorter expiry asked for %v, got %v", week, shorter.ExpiresAt)
	}
}

// TestTokensRevokedWithTheAccount: a new password and a disabled account each
// revoke every token of the user, for good (re-enabling brings none back), and
// leave other users' alone.
func TestTokensRevokedWithTheAccount(t *testing.T) {
	e := newUIEnv(t, Config{})
	tests := []struct {
		name   string
		change map[string]any
	}{
		{"new password", map[string]any{"password": "a brand new password"}},
		{"disabled", map[string]any{"disabled": true}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, first := e.createUser(t, fmt.Sprintf("holder%d", i), storage.RoleSupervisor)
			second := e.newToken(t, u.ID, testAdminToken)
			decode[storage.User](t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", u.ID), testAdminToken, tt.change), http.StatusOK)
			for _, tok := range []string{first, second} {
				wantError(t, e.get(t, "/api/v1/me", tok), http.StatusUnauthorized, "unauthorized")
			}
			decode[storage.User](t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", u.ID), testAdminToken, map[string]any{"disabled": false}), http.StatusOK)
			wantError(t, e.get(t, "/api/v1/me", first), http.StatusUnauthorized, "unauthorized")
			list := decode[tokenList](t, e.get(t, fmt.Sprintf("/api/v1/users/%d/tokens", u.ID), testAdminToken), http.StatusOK)
			for _, l := range list.Tokens {
				if l["revoked_at"] == nil {
					t.Errorf("token listed as live after %s: %v", tt.name, l)
				}
			}
			decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", e.tokens[storage.RoleSales]), http.StatusOK)
		})
	}
}

// TestSessionMintsTokensOnlyWithThePassword: a browser session (which a page's
// script could ride) mints a token only with the user's password sent again; a
// bearer token needs none. Owners and admins list and revoke tokens.
func TestSessionMintsTokensOnlyWithThePassword(t *testing.T) {
	e := newUIEnv(t, Config{})
	sales := e.users[storage.RoleSales]
	path := fmt.Sprintf("/api/v1/users/%d/tokens", sales.ID)
	b := e.browser(t).login(sales.Username)

	before := len(decode[tokenList](t, b.api("GET", path, nil), http.StatusOK).Tokens)
	if got := wantError(t, b.api("POST", path, map[string]any{"name": "from the page"}), http.StatusForbidden, "password_required"); got.Fields["password"] == "" {
		t.Errorf("no message for password: %+v", got)
	}
	wantError(t, b.api("POST", path, map[string]any{"name": "from the page", "password": "not the password"}), http.StatusForbidden, "password_required")
	if list := decode[tokenList](t, b.api("GET", path, nil), http.StatusOK); len(list.Tokens) != before {
		t.Fatalf("refused mints left tokens: %v", list.Tokens)
	}
	ok := decode[mintedToken](t, b.api("POST", path, map[string]any{"name": "confirmed", "password": testPassword}), http.StatusCreated)
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", ok.Secret), http.StatusOK)
	byToken := decode[mintedToken](t, e.send(t, "POST", path, e.tokens[storage.RoleSales], map[string]any{"name": "by token"}), http.StatusCreated)

	// The owner revokes from the page; an admin lists and revokes another's.
	if r := b.api("DELETE", fmt.Sprintf("/api/v1/tokens/%d", ok.ID), nil); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	wantError(t, e.get(t, "/api/v1/me", ok.Secret), http.StatusUnauthorized, "unauthorized")
	if all := decode[tokenList](t, e.get(t, path, testAdminToken), http.StatusOK); len(all.Tokens) != before+2 {
		t.Fatalf("admin lists %v, want %d", all.Tokens, before+2)
	}
	wantError(t, e.do(t, request{method: "DELETE", path: fmt.Sprintf("/api/v1/tokens/%d", byToken.ID), token: e.tokens[storage.RoleSupervisor]}), http.StatusForbidden, "forbidden")
	if r := e.do(t, request{method: "DELETE", path: fmt.Sprintf("/api/v1/tokens/%d", byToken.ID), token: testAdminToken}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	wantError(t, e.get(t, "/api/v1/me", byToken.Secret), http.StatusUnauthorized, "unauthorized")
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", e.tokens[storage.RoleSales]), http.StatusOK)
	wantError(t, e.get(t, path, e.tokens[storage.RoleSupervisor]), http.StatusForbidden, "forbidden")
}

// TestSessionPasswordGuessesAreLimited: confirming the password to mint a token
// spends the sign-in allowance, so a session in the wrong hands cannot guess the
// password faster than the sign-in form allows.
func TestSessionPasswordGuessesAreLimited(t *testing.T) {
	e := newUIEnv(t, Config{})
	agent := e.users[storage.RoleAgent]
	path := fmt.Sprintf("/api/v1/users/%d/tokens", agent.ID)
	b := e.browser(t).login(agent.Username)
	for i := range 10 {
		wantError(t, b.api("POST", path, map[string]any{"name": "x", "password": fmt.Sprint("guess ", i)}), http.StatusForbidden, "password_required")
	}
	r := b.api("POST", path, map[string]any{"name": "x", "password": testPassword})
	wantError(t, r, http.StatusTooManyRequests, "too_many_attempts")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("%v: no Retry-After", r)
	}
	if r := e.browser(t).submitLogin(agent.Username, testPassword, ""); r.status != http.StatusTooManyRequests {
		t.Errorf("sign-in after the guesses: %v, want 429: the allowance is one", r)
	}
}
