package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/storage"
	"github.com/turbina-dialer/turbina/web/ui"
)

const (
	// sessionCookie holds the random session ID of a signed-in browser.
	sessionCookie = "turbina_session"
	// loginCookie holds the token the login form must echo (double submit), so that
	// another site cannot sign a browser in to an account of its choosing.
	loginCookie = "turbina_login"
	// csrfHeader carries the session's CSRF token on state-changing API calls.
	csrfHeader = "X-CSRF-Token"
	// sessionTTL is how long a session lasts: one working day and then some.
	sessionTTL = 12 * time.Hour
)

// uiState is what the browser face of the server keeps: pages, password hashing,
// the sign-in limiter and the wallboard.
type uiState struct {
	pages   *ui.Pages
	hasher  *passwordHasher
	limiter *loginLimiter
	wall    *wallboard
	now     func() time.Time
}

func newUIState(s *Server) *uiState {
	pages, err := ui.New()
	if err != nil {
		// The pages are embedded at build time; failing here is a build defect.
		panic(fmt.Sprintf("web/ui: %v", err))
	}
	st := &uiState{
		pages:   pages,
		hasher:  newPasswordHasher(s.cfg.PasswordCost, s.serveLimits.PasswordChecks, s.serveLimits.PasswordQueue),
		limiter: newLoginLimiter(rateRule{s.serveLimits.LoginPerUser, s.serveLimits.LoginWindow}, rateRule{s.serveLimits.LoginPerIP, s.serveLimits.LoginWindow}),
		now:     time.Now,
	}
	st.wall = newWallboard(s)
	return st
}

// pageRoles says who may open each page. Admins may open them all. Supervisors
// open the campaigns page to finish, archive and start campaigns; each page
// offers a role only what the API lets it do (the route table).
var pageRoles = map[string][]storage.Role{
	"/sales":      {storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales},
	"/supervisor": {storage.RoleAdmin, storage.RoleSupervisor},
	"/agent":      {storage.RoleAdmin, storage.RoleAgent},
	"/dnc":        {storage.RoleAdmin, storage.RoleSupervisor, storage.RoleSales},
	"/users":      {storage.RoleAdmin},
}

// pageOrder is the order of the header's links.
var pageOrder = []string{"/sales", "/supervisor", "/agent", "/dnc", "/users"}

// homePage is where each role lands after signing in.
func homePage(r storage.Role) string {
	switch r {
	case storage.RoleSales:
		return "/sales"
	case storage.RoleAgent:
		return "/agent"
	}
	return "/supervisor"
}

// mountUI adds the pages, their assets and sign-in and sign-out to the mux.
func (s *Server) mountUI() {
	s.mux.Handle("GET /ui/", s.ui.pages)
	s.mux.HandleFunc("GET /{$}", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	for _, path := range pageOrder {
		s.mux.HandleFunc("GET "+path, s.page)
	}
}

// newSessionID returns a random 256-bit session ID.
func newSessionID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// csrfToken derives a session's CSRF token from its ID. Only the browser holding the
// cookie can know it, and the database (which keeps a different hash) cannot give
// it away.
func csrfToken(sessionID string) string {
	sum := sha256.Sum256([]byte("turbina csrf\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// secureRequest reports whether the browser reached us over TLS, directly or
// through a proxy that says so.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secureRequest(r), SameSite: sameSite,
	})
}

// authenticateSession resolves a session cookie. Requests that change state must
// carry the session's CSRF token in a header, which another site cannot read or set.
func (s *Server) authenticateSession(r *http.Request, id string) (principal, *apiError) {
	u, _, err := s.store.UserBySession(r.Context(), HashToken(id), s.ui.now())
	if errors.Is(err, storage.ErrNotFound) {
		return principal{}, errorf(http.StatusUnauthorized, "unauthorized", "session expired or signed out")
	}
	if err != nil {
		s.log.Error("authenticate session", "err", err)
		return principal{}, errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		got := r.Header.Get(csrfHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(id))) != 1 {
			return principal{}, forbiddenCSRF()
		}
	}
	return principal{User: u, viaSession: true}, nil
}

func forbiddenCSRF() *apiError {
	return errorf(http.StatusForbidden, "csrf", "missing or wrong "+csrfHeader+" header")
}

// sessionUser returns the user of the request's session, if it has a valid one.
func (s *Server) sessionUser(r *http.Request) (storage.User, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return storage.User{}, "", false
	}
	u, _, err := s.store.UserBySession(r.Context(), HashToken(c.Value), s.ui.now())
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("read session", "err", err)
		}
		return storage.User{}, "", false
	}
	return u, c.Value, true
}

// safeNext returns where to send a user after signing in: next only when it is one
// of the pages the role may open, so that a crafted link cannot send a person to
// another site (an open redirect) or anywhere unexpected.
func safeNext(next string, role storage.Role) string {
	if roles, ok := pageRoles[next]; ok && slices.Contains(roles, role) {
		return next
	}
	return homePage(role)
}

func (s *Server) nav(role storage.Role, current string) []ui.NavItem {
	var out []ui.NavItem
	for _, p := range pageOrder {
		if slices.Contains(pageRoles[p], role) {
			out = append(out, ui.NavItem{Path: p, Key: "nav." + strings.TrimPrefix(p, "/"), Current: p == current})
		}
	}
	return out
}

func (s *Server) render(w http.ResponseWriter, status int, d ui.PageData) {
	if err := s.ui.pages.Render(w, status, d); err != nil {
		s.log.Error("render page", "page", d.Page, "err", err)
	}
}

// loginPage shows the sign-in form, or sends a signed-in user to their page.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if u, _, ok := s.sessionUser(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next"), u.Role), http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, errKey string) {
	token, err := newSessionID()
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// Strict: the cookie is only ever needed by this site's own form.
	setCookie(w, r, loginCookie, token, 3600, http.SameSiteStrictMode)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	if _, ok := pageRoles[next]; !ok {
		next = ""
	}
	s.render(w, status, ui.PageData{Page: "login", CSRF: token, Next: next, Error: errKey})
}

// sameOrigin reports whether a browser's Origin (sent on every POST by browsers
// today) names this server; requests without one are not from a browser page.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// login checks a username and password from the sign-in form and starts a new
// session. Any session the browser had is ended first, so an ID planted in the
// browser before sign-in (session fixation) never becomes a signed-in one.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	const maxLoginBody = 16 << 10
	if r.ContentLength > maxLoginBody {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "a sign-in form is at most "+formatBytes(maxLoginBody)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		if errors.Is(err, errSlowBody) {
			writeError(w, errorf(http.StatusRequestTimeout, "body_timeout", err.Error()))
			return
		}
		s.renderLogin(w, r, http.StatusBadRequest, "bad_request")
		return
	}
	c, err := r.Cookie(loginCookie)
	form := r.PostFormValue("csrf")
	if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 || !sameOrigin(r) {
		s.renderLogin(w, r, http.StatusForbidden, "csrf")
		return
	}
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		if err := s.store.DeleteSession(r.Context(), HashToken(old.Value)); err != nil {
			s.log.Error("end old session", "err", err)
		}
	}
	username := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	now := s.ui.now()
	ip := s.clientIP(r)
	// The attempt is counted before the password is checked, so concurrent guesses
	// see each other.
	attempt, wait, allowed := s.ui.limiter.attempt(now, username, ip)
	if !allowed {
		w.Header().Set("Retry-After", retryAfter(wait))
		s.renderLogin(w, r, http.StatusTooManyRequests, "too_many_attempts")
		return
	}
	u, err := s.store.UserByUsername(r.Context(), username)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.ui.limiter.unchecked(now, attempt)
		s.log.Error("login", "err", err)
		s.renderLogin(w, r, http.StatusInternalServerError, "internal")
		return
	}
	// An unknown user is checked against a dummy hash, so the answer takes as long.
	ok, verr := s.ui.hasher.Verify(r.Context(), password, u.PasswordHash)
	if errors.Is(verr, errHasherBusy) || r.Context().Err() != nil {
		s.ui.limiter.unchecked(now, attempt)
		w.Header().Set("Retry-After", "1")
		s.renderLogin(w, r, http.StatusServiceUnavailable, "busy")
		return
	}
	if verr != nil && !errors.Is(verr, errBadHash) {
		s.log.Error("verify password", "err", verr)
	}
	if !ok || u.ID == 0 || u.Disabled {
		s.renderLogin(w, r, http.StatusUnauthorized, "bad_credentials")
		return
	}
	s.ui.limiter.succeeded(now, attempt)
	id, err := newSessionID()
	if err == nil {
		err = s.store.CreateSession(r.Context(), storage.Session{
			IDHash: HashToken(id), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(sessionTTL),
			RemoteAddr: ip, UserAgent: r.UserAgent(),
		})
	}
	if err != nil {
		s.log.Error("create session", "err", err)
		s.renderLogin(w, r, http.StatusInternalServerError, "internal")
		return
	}
	s.recordEvent(r.Context(), principal{User: u, viaSession: true}, "session.login", "user", idString(u.ID), map[string]string{"remote_addr": ip})
	s.pruneSessions(now)
	setCookie(w, r, loginCookie, "", -1, http.SameSiteStrictMode)
	setCookie(w, r, sessionCookie, id, int(sessionTTL.Seconds()), http.SameSiteLaxMode)
	http.Redirect(w, r, safeNext(r.PostFormValue("next"), u.Role), http.StatusSeeOther)
}

// pruneSessions deletes expired sessions now and then, piggybacking on sign-ins.
func (s *Server) pruneSessions(now time.Time) {
	if now.Unix()%16 != 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.store.DeleteExpiredSessions(ctx, now); err != nil {
		s.log.Warn("delete expired sessions", "err", err)
	}
}

// logout ends the session. It takes the CSRF token from the form or the header, so
// that another site cannot sign people out.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	token := r.Header.Get(csrfHeader)
	if token == "" {
		token = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(csrfToken(c.Value))) != 1 {
		writeError(w, forbiddenCSRF())
		return
	}
	if u, _, ok := s.sessionUser(r); ok {
		s.recordEvent(r.Context(), principal{User: u, viaSession: true}, "session.logout", "user", idString(u.ID), nil)
	}
	if err := s.store.DeleteSession(r.Context(), HashToken(c.Value)); err != nil {
		s.log.Error("logout", "err", err)
	}
	setCookie(w, r, sessionCookie, "", -1, http.SameSiteLaxMode)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// page serves one role's page, sending a stranger to sign in first.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	u, id, ok := s.sessionUser(r)
	if !ok {
		http.Redirect(w, r, "/?next="+url.QueryEscape(path), http.StatusSeeOther)
		return
	}
	d := ui.PageData{Page: strings.TrimPrefix(path, "/"), User: u.Username, Role: string(u.Role),
		CSRF: csrfToken(id), Nav: s.nav(u.Role, path)}
	if u.DisplayName != "" {
		d.User = u.DisplayName
	}
	if !slices.Contains(pageRoles[path], u.Role) {
		d.Page = "forbidden"
		s.render(w, http.StatusForbidden, d)
		return
	}
	s.render(w, http.StatusOK, d)
}

// recordEvent writes an audit entry for something that changes no stored row; a
// failure is logged, not shown, since the action itself has happened.
func (s *Server) recordEvent(ctx context.Context, p principal, action, objectType, objectID string, detail any) {
	if err := s.store.RecordEvent(ctx, p.actor(), action, objectType, objectID, detail); err != nil {
		s.log.Error("audit", "action", action, "err", err)
	}
}

func idString(id int64) string { return fmt.Sprint(id) }
