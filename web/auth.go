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

	"github.com/turbina-dialer/turbina/storage"
)

// tokenPrefix marks Turbina tokens so secret scanners and people recognise them.
const tokenPrefix = "tb_"

// NewToken makes a new random API token secret.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is how a token secret is stored: its SHA-256. Tokens are long and
// random, so a fast hash is enough; no password-style stretching is needed.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func tokenDisplayPrefix(secret string) string {
	if len(secret) > 10 {
		return secret[:10]
	}
	return secret
}

// EnsureAdmin makes sure someone can administer the server. With envToken set (from
// TURBINA_ADMIN_TOKEN) that token belongs to the "admin" user, and earlier environment
// tokens are revoked. Without it, on a database with no admin, an admin user and token
// are created and the token is returned, to be shown once; otherwise it returns "".
func EnsureAdmin(ctx context.Context, store storage.Store, envToken string) (generated string, err error) {
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
		t := storage.Token{UserID: admin.ID, Name: envTokenName, Prefix: tokenDisplayPrefix(envToken)}
		return "", store.CreateToken(ctx, system, &t, hash)
	}
	tokens, err := store.ListTokens(ctx, admin.ID)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(tokens, func(t storage.Token) bool { return t.RevokedAt == nil }) {
		return "", nil
	}
	secret, err := NewToken()
	if err != nil {
		return "", err
	}
	t := storage.Token{UserID: admin.ID, Name: "first start", Prefix: tokenDisplayPrefix(secret)}
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
	u, err := s.store.UserByToken(r.Context(), HashToken(strings.TrimSpace(secret)))
	if errors.Is(err, storage.ErrNotFound) {
		return principal{}, errorf(http.StatusUnauthorized, "unauthorized", "invalid or revoked token")
	}
	if err != nil {
		s.log.Error("authenticate", "err", err)
		return principal{}, errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	return principal{u}, nil
}
