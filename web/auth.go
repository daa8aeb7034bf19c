package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/turbina-dialer/turbina/storage"
)

// tokenPrefix marks Turbina tokens so secret scanners and people recognise them.
const tokenPrefix = "tb_"

// DefaultTokenTTL is how long an API token works when neither the server's
// configuration nor the request says otherwise.
const DefaultTokenTTL = 90 * 24 * time.Hour

// MaxTokenTTL bounds the expiry a request or the server's configuration may ask
// for: no token lives for ever.
const MaxTokenTTL = 366 * 24 * time.Hour

// MinTokenTTL is the shortest default expiry the configuration may set: a shorter
// one is almost surely a unit mistaken ("90s" meant as days), and would leave
// every new token dead before anyone used it.
const MinTokenTTL = time.Hour

// NewToken makes a new random API token secret: tb_<label>_<secret>, where the
// label (8 hex digits) is not secret and names the token in lists and logs.
func NewToken() (string, error) {
	label := make([]byte, 4)
	b := make([]byte, 32)
	if _, err := rand.Read(label); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return tokenPrefix + hex.EncodeToString(label) + "_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is the SHA-256 of a secret (a token's or a session ID's). Both are long
// and random, so a fast hash is enough; the store keeps tokens' hashes only under
// a key of its own (HMAC).
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// tokenLabel is the non-secret part of a token shown in lists: tb_<label> for a
// token NewToken made, and only the marker for any other (an operator's
// TURBINA_ADMIN_TOKEN), none of whose characters may be shown.
func tokenLabel(secret string) string {
	rest, ok := strings.CutPrefix(secret, tokenPrefix)
	label, _, ok2 := strings.Cut(rest, "_")
	if _, err := hex.DecodeString(label); ok && ok2 && len(label) == 8 && err == nil {
		return tokenPrefix + label
	}
	return tokenPrefix
}

// live reports whether a token still works at now.
func live(t storage.Token, now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || t.ExpiresAt.After(now))
}

// EnsureAdmin makes sure someone can administer the server. With envToken set (from
// TURBINA_ADMIN_TOKEN) that token belongs to the "admin" user, and earlier environment
// tokens are revoked. Without it, when the admin has no live token (a new database,
// or every token expired or revoked), a token is made and returned, to be shown
// once; otherwise it returns "". Either token expires after DefaultTokenTTL; a
// restart then registers the environment's again, or makes a new one.
func EnsureAdmin(ctx context.Context, store storage.Store, envToken string) (generated string, err error) {
	return EnsureAdminTTL(ctx, store, envToken, DefaultTokenTTL)
}

// EnsureAdminTTL is EnsureAdmin with the token's expiry after ttl, the server's
// configured default (Config.TokenTTL), rather than DefaultTokenTTL.
func EnsureAdminTTL(ctx context.Context, store storage.Store, envToken string, ttl time.Duration) (generated string, err error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	const envTokenName = "TURBINA_ADMIN_TOKEN"
	system := storage.Actor{Username: "system"}
	admin, err := findOrCreateAdmin(ctx, store, system)
	if err != nil {
		return "", err
	}
	if envToken != "" {
		if len(envToken) < 16 {
			return "", errors.New("TURBINA_ADMIN_TOKEN must be at least 16 characters")
		}
		hash := HashToken(envToken)
		if u, err := store.UserByToken(ctx, hash); err == nil && u.ID == admin.ID {
			return "", nil
		}
		tokens, err := store.ListTokens(ctx, admin.ID)
		if err != nil {
			return "", err
		}
		for _, t := range tokens {
			if t.Name == envTokenName && t.RevokedAt == nil {
				if err := store.RevokeToken(ctx, system, t.ID); err != nil {
					return "", err
				}
			}
		}
		expires := time.Now().Add(ttl)
		t := storage.Token{UserID: admin.ID, Name: envTokenName, Prefix: tokenLabel(envToken), ExpiresAt: &expires}
		return "", store.CreateToken(ctx, system, &t, hash)
	}
	tokens, err := store.ListTokens(ctx, admin.ID)
	if err != nil {
		return "", err
	}
	now := time.Now()
	if slices.ContainsFunc(tokens, func(t storage.Token) bool { return live(t, now) }) {
		return "", nil
	}
	secret, err := NewToken()
	if err != nil {
		return "", err
	}
	expires := now.Add(ttl)
	t := storage.Token{UserID: admin.ID, Name: "first start", Prefix: tokenLabel(secret), ExpiresAt: &expires}
	if err := store.CreateToken(ctx, system, &t, HashToken(secret)); err != nil {
		return "", err
	}
	return secret, nil
}

func findOrCreateAdmin(ctx context.Context, store storage.Store, system storage.Actor) (storage.User, error) {
	users, err := store.ListUsers(ctx)
	if err != nil {
		return storage.User{}, err
	}
	for _, u := range users {
		if u.Username == "admin" && u.Role == storage.RoleAdmin {
			return u, nil
		}
	}
	u := storage.User{Username: "admin", DisplayName: "Administrator", Role: storage.RoleAdmin}
	if err := store.CreateUser(ctx, system, &u); err != nil {
		return u, fmt.Errorf("create admin user: %w", err)
	}
	return u, nil
}

// principal is the authenticated caller of a request.
type principal struct {
	storage.User
	// viaSession is a caller signed in with a browser session rather than a
	// bearer token: what a page's script could do unseen, such as minting a
	// token, asks it for the password again.
	viaSession bool
	// tokenHash is the SHA-256 of the bearer token the caller used, "" for a session.
	tokenHash string
}

func (p principal) actor() storage.Actor {
	return storage.Actor{UserID: p.ID, Username: p.Username}
}

func (p principal) is(roles ...storage.Role) bool { return slices.Contains(roles, p.Role) }

// authenticate resolves the bearer token of r or, without one, its session cookie.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" && isWebSocket(r) && r.URL.Query().Get("access_token") != "" {
		h = "Bearer " + r.URL.Query().Get("access_token")
	}
	if h == "" {
		// A browser signed in with a password sends its session cookie instead.
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			return s.authenticateSession(r, c.Value)
		}
	}
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return principal{}, errorf(http.StatusUnauthorized, "unauthorized", "missing bearer token")
	}
	hash := HashToken(strings.TrimSpace(secret))
	u, err := s.store.UserByToken(r.Context(), hash)
	if errors.Is(err, storage.ErrNotFound) {
		return principal{}, errorf(http.StatusUnauthorized, "unauthorized", "invalid or revoked token")
	}
	if err != nil {
		s.log.Error("authenticate", "err", err)
		return principal{}, errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	return principal{User: u, tokenHash: hash}, nil
}
