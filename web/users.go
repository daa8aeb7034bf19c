package web

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

var usernamePattern = regexp.MustCompile(`^[a-zA-Z0-9._@-]{2,64}$`)

// userAnswer is a user as created or changed, with what was removed from the
// display name sent, if anything.
type userAnswer struct {
	storage.User
	DisplayNameCleaned *campaigns.NameCleaning `json:"display_name_cleaned,omitempty"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p principal) error {
	var in struct {
		Username    string       `json:"username"`
		DisplayName string       `json:"display_name"`
		Role        storage.Role `json:"role"`
		Password    *string      `json:"password"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	bad := map[string]string{}
	if in.Password != nil && len([]rune(*in.Password)) < MinPasswordLength {
		bad["password"] = fmt.Sprintf("at least %d characters", MinPasswordLength)
	}
	if !usernamePattern.MatchString(in.Username) {
		bad["username"] = "2 to 64 letters, digits, '.', '_', '@' or '-'"
	}
	if !in.Role.Valid() {
		bad["role"] = "must be admin, supervisor, sales or agent"
	}
	if len(bad) > 0 {
		e := unprocessable("invalid user")
		e.Fields = bad
		return e
	}
	name, cleaned := campaigns.CleanName(in.DisplayName)
	u := storage.User{Username: in.Username, DisplayName: name, Role: in.Role}
	if in.Password != nil {
		hash, err := s.ui.hasher.Hash(r.Context(), *in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = hash
	}
	if err := s.store.CreateUser(r.Context(), p.actor(), &u); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, userAnswer{User: u, DisplayNameCleaned: cleaned})
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p principal) error {
	users, err := s.store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

// selfOrAdmin resolves the {id} user and refuses anyone but that user or an admin.
func (s *Server) selfOrAdmin(r *http.Request, p principal) (int64, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return 0, err
	}
	if id != p.ID && p.Role != storage.RoleAdmin {
		return 0, forbidden("only an admin may act on another user")
	}
	return id, nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := s.selfOrAdmin(r, p)
	if err != nil {
		return err
	}
	u, err := s.store.GetUser(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in struct {
		DisplayName *string       `json:"display_name"`
		Role        *storage.Role `json:"role"`
		Disabled    *bool         `json:"disabled"`
		Password    *string       `json:"password"`
		// PhonePassword is the secret the agent's SIP phone registers with ("" clears it).
		PhonePassword *string `json:"phone_password"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Role != nil && !in.Role.Valid() {
		return unprocessable("role must be admin, supervisor, sales or agent")
	}
	if in.PhonePassword != nil && *in.PhonePassword != "" && len(*in.PhonePassword) < MinPasswordLength {
		return unprocessable(fmt.Sprintf("phone_password: at least %d characters", MinPasswordLength))
	}
	var cleaned *campaigns.NameCleaning
	if in.DisplayName != nil {
		name, rep := campaigns.CleanName(*in.DisplayName)
		in.DisplayName, cleaned = &name, rep
	}
	var hash *string
	if in.Password != nil {
		if len([]rune(*in.Password)) < MinPasswordLength {
			return unprocessable(fmt.Sprintf("password: at least %d characters", MinPasswordLength))
		}
		h, err := s.ui.hasher.Hash(r.Context(), *in.Password)
		if err != nil {
			return err
		}
		hash = &h
	}
	u, err := s.store.UpdateUser(r.Context(), p.actor(), id, func(u *storage.User) error {
		set(&u.DisplayName, in.DisplayName)
		set(&u.Role, in.Role)
		set(&u.Disabled, in.Disabled)
		set(&u.PasswordHash, hash)
		return nil
	})
	if err != nil {
		return err
	}
	if in.PhonePassword != nil {
		if u.Role != storage.RoleAgent {
			return unprocessable("phone_password: only agents have SIP phones")
		}
		if err := s.store.SetPhoneSecret(r.Context(), p.actor(), id, s.phoneRealm(), *in.PhonePassword); err != nil {
			return err
		}
	}
	// A new password or a disabled account ends the user's browser sessions and
	// API tokens: whoever held one of them must not keep a way in.
	if hash != nil || (in.Disabled != nil && *in.Disabled) {
		if err := s.store.DeleteUserSessions(r.Context(), id); err != nil {
			return err
		}
		if _, err := s.store.RevokeUserTokens(r.Context(), p.actor(), id); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, userAnswer{User: u, DisplayNameCleaned: cleaned})
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := s.selfOrAdmin(r, p)
	if err != nil {
		return err
	}
	var in struct {
		Name      string     `json:"name"`
		ExpiresAt *time.Time `json:"expires_at"`
		// Password is the caller's own, asked again of a browser session: a token
		// outlives the session, so a script running in the page (or someone at an
		// unattended desk) must not be able to mint one.
		Password *string `json:"password"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	now := s.ui.now()
	expires := now.Add(s.cfg.TokenTTL)
	bad := map[string]string{}
	if in.Name = strings.TrimSpace(in.Name); in.Name == "" || len(in.Name) > 100 {
		bad["name"] = "required, at most 100 characters"
	}
	if in.ExpiresAt != nil {
		if !in.ExpiresAt.After(now) || in.ExpiresAt.After(now.Add(MaxTokenTTL)) {
			bad["expires_at"] = fmt.Sprintf("must be in the future and at most %d days away", int(MaxTokenTTL/(24*time.Hour)))
		}
		expires = *in.ExpiresAt
	}
	// A token made with a token lives no longer than it: else a chain of tokens,
	// each minted before the last expires, would never expire.
	if p.tokenHash != "" && len(bad) == 0 {
		minter, err := s.store.TokenByHash(r.Context(), p.tokenHash)
		if err != nil {
			return err
		}
		if minter.ExpiresAt != nil && expires.After(*minter.ExpiresAt) {
			if in.ExpiresAt != nil {
				bad["expires_at"] = "must not be after " + minter.ExpiresAt.Format(time.RFC3339) + ", when the token making it expires"
			}
			expires = *minter.ExpiresAt
		}
	}
	if len(bad) > 0 {
		e := unprocessable("invalid token")
		e.Fields = bad
		return e
	}
	if p.viaSession {
		if err := s.confirmPassword(r, p, in.Password); err != nil {
			return err
		}
	}
	secret, err := NewToken()
	if err != nil {
		return err
	}
	expires = expires.UTC()
	t := storage.Token{UserID: id, Name: in.Name, Prefix: tokenLabel(secret), ExpiresAt: &expires}
	if err := s.store.CreateToken(r.Context(), p.actor(), &t, HashToken(secret)); err != nil {
		return err
	}
	// The secret is shown this once; only a keyed hash of it is kept.
	writeJSON(w, http.StatusCreated, struct {
		storage.Token
		Secret string `json:"token"`
	}{t, secret})
	return nil
}

// confirmPassword checks the caller's own password, sent again for an operation a
// session alone may not do. It spends the sign-in limiter's allowance, so a session
// in the wrong hands guesses no faster than the sign-in form allows.
func (s *Server) confirmPassword(r *http.Request, p principal, password *string) error {
	if password == nil || *password == "" {
		e := errorf(http.StatusForbidden, "password_required", "a browser session must confirm the password to do this")
		e.Fields = map[string]string{"password": "required: your current password"}
		return e
	}
	now := s.ui.now()
	attempt, wait, allowed := s.ui.limiter.attempt(now, p.Username, s.clientIP(r))
	if !allowed {
		e := errorf(http.StatusTooManyRequests, "too_many_attempts", "too many wrong passwords; try again later")
		e.retryAfter = retryAfter(wait)
		return e
	}
	ok, err := s.ui.hasher.Verify(r.Context(), *password, p.PasswordHash)
	if err != nil {
		s.ui.limiter.unchecked(now, attempt)
		return err
	}
	if !ok {
		e := errorf(http.StatusForbidden, "password_required", "wrong password")
		e.Fields = map[string]string{"password": "wrong password"}
		return e
	}
	s.ui.limiter.succeeded(now, attempt)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := s.selfOrAdmin(r, p)
	if err != nil {
		return err
	}
	if _, err := s.store.GetUser(r.Context(), id); err != nil {
		return err
	}
	tokens, err := s.store.ListTokens(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": tokens})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	t, err := s.store.GetToken(r.Context(), id)
	if err != nil {
		return err
	}
	if t.UserID != p.ID && p.Role != storage.RoleAdmin {
		return forbidden(fmt.Sprintf("token %d belongs to another user", id))
	}
	if err := s.store.RevokeToken(r.Context(), p.actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	f := storage.AuditFilter{ObjectType: q.Get("object_type"), ObjectID: q.Get("object_id")}
	var err error
	if f.UserID, err = queryID(r, "user_id"); err != nil {
		return err
	}
	if f.Limit, err = queryInt(r, "limit", 100); err != nil {
		return err
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	entries, total, err := s.store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []storage.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "total": total})
	return nil
}
