package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// cheapPasswordCost makes password hashing cheap, so that tests under -race stay
// fast; the stored hash records its cost, so verification is the real code path
// (TestPasswordHashesRecordTheirCost).
func cheapPasswordCost() PasswordCost { return PasswordCost{Time: 1, MemoryKiB: 64, Threads: 1} }

// testPassword is every test user's password.
const testPassword = "correct horse battery"

// newUIEnv is newEnv with cheap password hashing (unless cfg names a cost) and a
// password for every user.
func newUIEnv(t *testing.T, cfg Config) *apiEnv {
	t.Helper()
	if cfg.PasswordCost == (PasswordCost{}) {
		cfg.PasswordCost = cheapPasswordCost()
	}
	e := newEnv(t, cfg)
	// The admin's last: a new password revokes the user's tokens, the admin's
	// (the environment's) included. Then each role gets a new one, the admin's
	// registered again as a restart would.
	for _, role := range []storage.Role{storage.RoleSupervisor, storage.RoleSales, storage.RoleAgent, storage.RoleAdmin} {
		e.setPassword(t, e.users[role].ID, testPassword)
	}
	if _, err := EnsureAdmin(context.Background(), e.db, testAdminToken); err != nil {
		t.Fatal(err)
	}
	for _, role := range allTestRoles[1:] {
		e.tokens[role] = e.newToken(t, e.users[role].ID, testAdminToken)
	}
	return e
}

func (e *apiEnv) setPassword(t *testing.T, id int64, password string) {
	t.Helper()
	decode[storage.User](t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", id), testAdminToken,
		map[string]any{"password": password}), http.StatusOK)
}

// browser is an HTTP client that keeps cookies and does not follow redirects, as a
// test sees them.
type browser struct {
	t    *testing.T
	e    *apiEnv
	c    *http.Client
	csrf string // the signed-in page's CSRF token
}

func (e *apiEnv) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, e: e, c: c}
}

func (b *browser) do(method, path string, body io.Reader, header map[string]string) apiResponse {
	b.t.Helper()
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return apiResponse{method: method, path: path, status: res.StatusCode, header: res.Header, body: data}
}

var (
	formCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)
)

// submitLogin loads the sign-in page and posts the form; it returns the answer.
func (b *browser) submitLogin(username, password, next string) apiResponse {
	b.t.Helper()
	page := b.do("GET", "/", nil, nil)
	m := formCSRF.FindStringSubmatch(string(page.body))
	if page.status != http.StatusOK || m == nil {
		b.t.Fatalf("login page: %v", page)
	}
	form := url.Values{"csrf": {m[1]}, "username": {username}, "password": {password}, "next": {next}}
	return b.do("POST", "/login", strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": b.e.srv.URL})
}

// login signs in and reads the CSRF token from the landing page.
func (b *browser) login(username string) *browser {
	b.t.Helper()
	r := b.submitLogin(username, testPassword, "")
	if r.status != http.StatusSeeOther {
		b.t.Fatalf("login %s: %v", username, r)
	}
	page := b.do("GET", r.header.Get("Location"), nil, nil)
	m := metaCSRF.FindStringSubmatch(string(page.body))
	if page.status != http.StatusOK || m == nil || m[1] == "" {
		b.t.Fatalf("landing page: %v", page)
	}
	b.csrf = m[1]
	return b
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.e.srv.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// api calls the API with the session cookie and, for state changes, the CSRF header.
func (b *browser) api(method, path string, v any) apiResponse {
	b.t.Helper()
	h := map[string]string{}
	var body io.Reader
	if v != nil {
		raw, _ := json.Marshal(v)
		body = strings.NewReader(string(raw))
		h["Content-Type"] = "application/json"
	}
	if method != "GET" {
		h[csrfHeader] = b.csrf
	}
	return b.do(method, path, body, h)
}

func TestLoginSetsASafeSessionCookie(t *testing.T) {
	e := newUIEnv(t, Config{})
	b := e.browser(t)
	if r := b.submitLogin("sales1", "wrong password", ""); r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "login.error.bad_credentials") {
		t.Fatalf("wrong password: %v", r)
	}
	if r := b.submitLogin("nobody", testPassword, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown user: %v", r)
	}
	r := b.submitLogin("SALES1", testPassword, "")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/sales" {
		t.Fatalf("login: %v", r)
	}
	var session *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie && c.MaxAge > 0 {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.Path != "/" {
		t.Fatalf("session cookie %+v", session)
	}
	if raw, err := base64Len(session.Value); err != nil || raw != 32 {
		t.Errorf("session ID is %d bytes (%v), want 32", raw, err)
	}
	// Only the hash is stored.
	if _, _, err := e.db.UserBySession(context.Background(), session.Value, e.server.ui.now()); err == nil {
		t.Error("the raw session ID is a key in the database")
	}
	if _, _, err := e.db.UserBySession(context.Background(), HashToken(session.Value), e.server.ui.now()); err != nil {
		t.Errorf("session not stored by hash: %v", err)
	}

	// Behind a TLS-terminating proxy the cookie is Secure.
	b2 := e.browser(t)
	page := b2.do("GET", "/", nil, map[string]string{"X-Forwarded-Proto": "https"})
	if !strings.Contains(page.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("login cookie over https: %q", page.header.Get("Set-Cookie"))
	}

	// The session authenticates API calls; the bearer token still works beside it.
	b.csrf = csrfToken(session.Value)
	me := decode[struct{ User storage.User }](t, b.api("GET", "/api/v1/me", nil), http.StatusOK)
	if me.User.Username != "sales1" {
		t.Errorf("me = %+v", me)
	}
	decode[any](t, e.get(t, "/api/v1/me", e.tokens[storage.RoleSales]), http.StatusOK)

	// Logging out ends the session for good.
	if r := b.do("POST", "/logout", strings.NewReader("csrf="+b.csrf), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %v", r)
	}
	b.setCookie(sessionCookie, session.Value)
	wantError(t, b.api("GET", "/api/v1/me", nil), http.StatusUnauthorized, "unauthorized")
	entries, _, _ := e.db.ListAudit(context.Background(), storage.AuditFilter{ObjectType: "user", ObjectID: idString(e.users[storage.RoleSales].ID)})
	var actions []string
	for _, en := range entries {
		actions = append(actions, en.Action)
	}
	if !slices.Contains(actions, "session.login") || !slices.Contains(actions, "session.logout") {
		t.Errorf("audit actions %v, want session.login and session.logout", actions)
	}
}

func base64Len(s string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return len(b), err
}

func TestPasswordRules(t *testing.T) {
	e := newUIEnv(t, Config{})
	id := e.users[storage.RoleAgent].ID
	wantError(t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", id), testAdminToken, map[string]any{"password": "short"}),
		http.StatusUnprocessableEntity, "validation_failed")
	// Only admins set passwords, and the hash is never shown.
	wantError(t, e.send(t, "PATCH", fmt.Sprintf("/api/v1/users/%d", id), e.tokens[storage.RoleAgent], map[string]any{"password": "0123456789ab"}),
		http.StatusForbidden, "forbidden")
	u := decode[storage.User](t, e.send(t, "POST", "/api/v1/users", testAdminToken,
		map[string]any{"username": "new.agent", "role": "agent", "password": "a long password"}), http.StatusCreated)
	if r := e.get(t, fmt.Sprintf("/api/v1/users/%d", u.ID), testAdminToken); strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), "password") {
		t.Errorf("user shows its password: %s", r.body)
	}
	stored, _ := e.db.GetUser(context.Background(), u.ID)
	if !strings.HasPrefix(stored.PasswordHash, "$argon2id$") {
		t.Errorf("stored hash %q", stored.PasswordHash)
	}
	// A new password ends the sessions signed in with the old one, and the
	// user's API tokens.
	b := e.browser(t).login("agent1")
	decode[struct{ User storage.User }](t, e.get(t, "/api/v1/me", e.tokens[storage.RoleAgent]), http.StatusOK)
	e.setPassword(t, id, "another long password")
	wantError(t, b.api("GET", "/api/v1/me", nil), http.StatusUnauthorized, "unauthorized")
	wantError(t, e.get(t, "/api/v1/me", e.tokens[storage.RoleAgent]), http.StatusUnauthorized, "unauthorized")
}

// TestPasswordHashesRecordTheirCost: a server configured with no cost stores
// argon2id hashes at the production cost (m=64 MiB, t=3, p=2 in the PHC string),
// a cheap server stores its own, and each verifies the other's through the same
// code: the tests' cheap cost changes the work, not the algorithm.
func TestPasswordHashesRecordTheirCost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cheap := newUIEnv(t, Config{}) // every user's password hashed cheaply
	prod := cheap.otherNode(t, Config{}, nil)
	hashOf := func(id int64) string {
		t.Helper()
		u, err := cheap.db.GetUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return u.PasswordHash
	}
	if h, want := hashOf(cheap.users[storage.RoleAgent].ID), "$argon2id$v=19$m=64,t=1,p=1$"; !strings.HasPrefix(h, want) {
		t.Errorf("the cheap server stored %q, want %s…", h, want)
	}
	prod.browser(t).login("agent1")
	if r := prod.browser(t).submitLogin("agent1", "not the password", ""); r.status != http.StatusUnauthorized {
		t.Errorf("a wrong password against a cheap hash: %v, want 401", r)
	}

	sales := cheap.users[storage.RoleSales].ID
	prod.setPassword(t, sales, "a production password")
	if h, want := hashOf(sales), "$argon2id$v=19$m=65536,t=3,p=2$"; !strings.HasPrefix(h, want) {
		t.Errorf("the server with no cost configured stored %q, want %s… (DefaultPasswordCost)", h, want)
	}
	if r := cheap.browser(t).submitLogin("sales1", "a production password", ""); r.status != http.StatusSeeOther {
		t.Errorf("the production hash's password on the cheap server: %v, want signed in (303)", r)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newUIEnv(t, Config{})
	b := e.browser(t)
	for i := range 10 {
		if r := b.submitLogin("agent1", fmt.Sprint("guess ", i), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("try %d: %v", i, r)
		}
	}
	if r := b.submitLogin("agent1", testPassword, ""); r.status != http.StatusTooManyRequests {
		t.Fatalf("after 10 failures the right password: %v", r)
	}
}

// TestPagesAndAPIByRole opens every page and calls every API route as every role
// with a session cookie: the wrong roles are refused.
func TestPagesAndAPIByRole(t *testing.T) {
	e := newUIEnv(t, Config{})
	sessions := map[storage.Role]*browser{}
	for _, role := range allTestRoles {
		sessions[role] = e.browser(t).login(e.users[role].Username)
	}
	for path, roles := range pageRoles {
		for _, role := range allTestRoles {
			r := sessions[role].do("GET", path, nil, nil)
			want := http.StatusForbidden
			if slices.Contains(roles, role) {
				want = http.StatusOK
			}
			if r.status != want {
				t.Errorf("%s as %s: %d, want %d", path, role, r.status, want)
			}
			if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("%s: CSP %q", path, csp)
			}
		}
		// A stranger is sent to sign in, and back here afterwards.
		if r := e.browser(t).do("GET", path, nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/?next="+url.QueryEscape(path) {
			t.Errorf("%s without a session: %v %q", path, r, r.header.Get("Location"))
		}
	}
	params := map[string]string{"id": "999999", "user_id": "999998", "phone": "+5511987650000"}
	for _, rt := range e.server.routes {
		path := fillPath(rt.path, params)
		for _, role := range allTestRoles {
			if slices.Contains(rt.roles, role) {
				continue
			}
			r := sessions[role].do(rt.method, path, strings.NewReader("{}"), map[string]string{
				"Content-Type": "application/json", csrfHeader: sessions[role].csrf, "Accept": "text/event-stream"})
			wantError(t, r, http.StatusForbidden, "forbidden")
		}
	}
}

func TestCSRFIsRequiredWithACookie(t *testing.T) {
	e := newUIEnv(t, Config{})
	b := e.browser(t).login("sales1")
	body := map[string]any{"name": "x", "caller_id": "+551130000000"}
	good := b.csrf
	for _, token := range []string{"", "wrong", csrfToken("another session")} {
		b.csrf = token
		wantError(t, b.api("POST", "/api/v1/campaigns", body), http.StatusForbidden, "csrf")
	}
	b.csrf = good
	decode[campaignView](t, b.api("POST", "/api/v1/campaigns", body), http.StatusCreated)
	// Bearer-token calls need no CSRF token.
	decode[campaignView](t, e.send(t, "POST", "/api/v1/campaigns", e.tokens[storage.RoleSales], body), http.StatusCreated)
	// Signing out needs the token too, so other sites cannot sign people out.
	wantError(t, b.do("POST", "/logout", nil, nil), http.StatusForbidden, "csrf")
	// The login form needs its own token, so other sites cannot sign a browser in.
	form := url.Values{"username": {"sales1"}, "password": {testPassword}}
	if r := e.browser(t).do("POST", "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); r.status != http.StatusForbidden {
		t.Errorf("login without the form token: %v", r)
	}
	// Nor from another origin, even with a token.
	evil := e.browser(t)
	page := evil.do("GET", "/", nil, nil)
	form.Set("csrf", formCSRF.FindStringSubmatch(string(page.body))[1])
	if r := evil.do("POST", "/login", strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}); r.status != http.StatusForbidden {
		t.Errorf("login from another origin: %v", r)
	}
}

func TestNoSessionFixation(t *testing.T) {
	e := newUIEnv(t, Config{})
	b := e.browser(t)
	// An ID planted before sign-in is never the signed-in one.
	planted := "planted-by-an-attacker-0123456789abcdef0123"
	b.setCookie(sessionCookie, planted)
	b.login("agent1")
	if got := b.cookie(sessionCookie); got == planted || got == "" {
		t.Fatalf("session cookie after login %q", got)
	}
	b2 := e.browser(t)
	b2.setCookie(sessionCookie, planted)
	wantError(t, b2.api("GET", "/api/v1/me", nil), http.StatusUnauthorized, "unauthorized")
	// Signing in again in the same browser rotates the ID and ends the old session.
	// (The login page itself redirects a signed-in browser, so the form is loaded
	// with the session hidden, as from another tab that signed out meanwhile.)
	old := b.cookie(sessionCookie)
	b.setCookie(sessionCookie, "signed-out")
	page := b.do("GET", "/", nil, nil)
	b.setCookie(sessionCookie, old)
	form := url.Values{"csrf": {formCSRF.FindStringSubmatch(string(page.body))[1]}, "username": {"agent1"}, "password": {testPassword}}
	if r := b.do("POST", "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); r.status != http.StatusSeeOther {
		t.Fatalf("second login: %v", r)
	}
	if b.cookie(sessionCookie) == old {
		t.Fatal("session ID not rotated at login")
	}
	b2.setCookie(sessionCookie, old)
	wantError(t, b2.api("GET", "/api/v1/me", nil), http.StatusUnauthorized, "unauthorized")
}

func TestNoOpenRedirect(t *testing.T) {
	e := newUIEnv(t, Config{})
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "/supervisor", "/sales?x=//evil", "javascript:alert(1)"} {
		b := e.browser(t)
		r := b.submitLogin("agent1", testPassword, next)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/agent" {
			t.Errorf("next=%q: %v → %q, want /agent", next, r, r.header.Get("Location"))
		}
		// Signed in, the login page redirects too, by the same rule.
		if r := b.do("GET", "/?next="+url.QueryEscape(next), nil, nil); r.header.Get("Location") != "/agent" {
			t.Errorf("signed in, next=%q → %q", next, r.header.Get("Location"))
		}
	}
	r := e.browser(t).submitLogin("supervisor1", testPassword, "/supervisor")
	if r.header.Get("Location") != "/supervisor" {
		t.Errorf("a page the role may open: %q", r.header.Get("Location"))
	}
}

func TestAssetsAndPages(t *testing.T) {
	e := newUIEnv(t, Config{})
	v := e.server.ui.pages.Version()
	b := e.browser(t)
	r := b.do("GET", "/ui/"+v+"/page-agent.js", nil, nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") ||
		!strings.Contains(r.header.Get("Cache-Control"), "immutable") || r.header.Get("ETag") == "" {
		t.Fatalf("asset: %v %v", r.status, r.header)
	}
	if r2 := b.do("GET", "/ui/"+v+"/page-agent.js", nil, map[string]string{"If-None-Match": r.header.Get("ETag")}); r2.status != http.StatusNotModified {
		t.Errorf("revalidation: %d", r2.status)
	}
	if r := b.do("GET", "/ui/old/app.css", nil, nil); r.status != http.StatusOK || strings.Contains(r.header.Get("Cache-Control"), "immutable") {
		t.Errorf("other version: %d %q", r.status, r.header.Get("Cache-Control"))
	}
	if r := b.do("GET", "/ui/"+v+"/nope.js", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("missing asset: %d", r.status)
	}
	// Pages carry no inline script or handler, which the CSP would block anyway.
	scripts := regexp.MustCompile(`<script[^>]*>[^<]*</script>`)
	handlers := regexp.MustCompile(`\son[a-z]+=`)
	inline := func(body []byte) bool {
		for _, tag := range scripts.FindAll(body, -1) {
			if !regexp.MustCompile(`^<script type="module" src="/ui/[^"]+"></script>$`).Match(tag) {
				return true
			}
		}
		return handlers.Match(body) || strings.Count(string(body), "<script") != len(scripts.FindAll(body, -1))
	}
	b.login("admin")
	for _, path := range []string{"/", "/sales", "/supervisor", "/agent"} {
		page := e.browser(t).do("GET", path, nil, nil)
		if path != "/" {
			page = b.do("GET", path, nil, nil)
		}
		if page.status != http.StatusOK || inline(page.body) {
			t.Errorf("%s has inline script", path)
		}
	}
	// Unknown API paths stay JSON errors.
	wantError(t, b.do("GET", "/api/v1/nope", nil, nil), http.StatusNotFound, "not_found")
}

// fakeTrunks is a TrunkControl that remembers its calls.
type fakeTrunks struct{ calls []string }

func (f *fakeTrunks) SetTrunkOutOfService(name string, out bool) error {
	if name != "carrier" {
		return fmt.Errorf("%q: %w", name, ErrNoSuchTrunk)
	}
	f.calls = append(f.calls, fmt.Sprint(name, out))
	return nil
}

func TestTrunkServiceControl(t *testing.T) {
	e := newUIEnv(t, Config{})
	sup := e.tokens[storage.RoleSupervisor]
	wantError(t, e.send(t, "PATCH", "/api/v1/trunks/carrier", sup, map[string]any{"out_of_service": true}), http.StatusNotImplemented, "not_implemented")

	ft := &fakeTrunks{}
	e2 := newUIEnv(t, Config{TrunkControl: ft})
	sup2 := e2.tokens[storage.RoleSupervisor]
	got := decode[map[string]any](t, e2.send(t, "PATCH", "/api/v1/trunks/carrier", sup2, map[string]any{"out_of_service": true}), http.StatusOK)
	if got["out_of_service"] != true || len(ft.calls) != 1 || ft.calls[0] != "carriertrue" {
		t.Fatalf("answer %v, calls %v", got, ft.calls)
	}
	wantError(t, e2.send(t, "PATCH", "/api/v1/trunks/other", sup2, map[string]any{"out_of_service": true}), http.StatusNotFound, "not_found")
	wantError(t, e2.send(t, "PATCH", "/api/v1/trunks/carrier", sup2, map[string]any{}), http.StatusUnprocessableEntity, "validation_failed")
	entries, _, _ := e2.db.ListAudit(context.Background(), storage.AuditFilter{ObjectType: "trunk"})
	if len(entries) != 1 || entries[0].Action != "trunk.out_of_service" || entries[0].Username != "supervisor1" {
		t.Errorf("audit %+v", entries)
	}
}

func TestWallboardSnapshotAndStream(t *testing.T) {
	e := newUIEnv(t, Config{})
	c := e.createCampaign(t, "Board")
	decode[any](t, e.send(t, "POST", "/api/v1/campaigns/"+c.ID+"/agents", e.tokens[storage.RoleSupervisor],
		map[string]any{"user_id": e.users[storage.RoleAgent].ID}), http.StatusOK)
	snap := decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", e.tokens[storage.RoleSupervisor]), http.StatusOK)
	if len(snap.Campaigns) != 1 || len(snap.Agents) != 1 || snap.Agents[0].State != "logged_out" || snap.WhatsApp.Configured || len(snap.Audit) == 0 {
		t.Errorf("snapshot %+v", snap)
	}
	// The node whose live lease runs a campaign is on its card; none while no
	// node runs it.
	if snap.Campaigns[0].Node != "" {
		t.Errorf("campaign no node runs shows node %q", snap.Campaigns[0].Node)
	}
	id, _ := strconv.ParseInt(c.ID, 10, 64)
	if _, err := e.db.AcquireLease(context.Background(), id, "node-b", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Snapshots are shared for a second.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		snap := decode[WallboardSnapshot](t, e.get(t, "/api/v1/wallboard", e.tokens[storage.RoleSupervisor]), http.StatusOK)
		if snap.Campaigns[0].Node == "node-b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign run by node-b shows node %q", snap.Campaigns[0].Node)
		}
	}
	// Without Accept: text/event-stream the stream refuses rather than hang.
	wantError(t, e.get(t, "/api/v1/wallboard/stream", e.tokens[storage.RoleSupervisor]), http.StatusNotAcceptable, "not_acceptable")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/wallboard/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[storage.RoleSupervisor])
	req.Header.Set("Accept", "text/event-stream")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	buf := make([]byte, 0, 1<<16)
	tmp := make([]byte, 4096)
	for !strings.Contains(string(buf), "event: snapshot") {
		n, err := res.Body.Read(tmp)
		if err != nil {
			t.Fatalf("stream: %v after %q", err, buf)
		}
		buf = append(buf, tmp[:n]...)
	}
	if !strings.HasPrefix(string(buf), "retry: 2000\nevent: history\ndata: [") {
		t.Errorf("stream starts %q", buf[:min(len(buf), 80)])
	}
}
