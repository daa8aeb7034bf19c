package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// MinPasswordLength is the shortest password an admin may set.
const MinPasswordLength = 10

// kdfParams are argon2id's cost settings. They are stored in every hash, so raising
// them later still verifies the passwords set before.
type kdfParams struct {
	time    uint32
	memory  uint32 // KiB
	threads uint8
}

// defaultKDF follows RFC 9106's second recommendation, scaled for a server that
// signs in a few hundred agents at shift start: about 100 ms and 64 MiB a hash.
var defaultKDF = kdfParams{time: 3, memory: 64 * 1024, threads: 2}

// passwordHasher hashes and checks passwords. Hashing is slow on purpose, so only a
// few run at once: a burst of sign-ins waits instead of exhausting memory.
type passwordHasher struct {
	params kdfParams
	slots  chan struct{}
	// dummy is verified against when a username is unknown, so that the answer takes
	// as long as for a known user and does not reveal which names exist.
	dummyOnce sync.Once
	dummy     string
}

func newPasswordHasher(p kdfParams) *passwordHasher {
	return &passwordHasher{params: p, slots: make(chan struct{}, 4)}
}

func (h *passwordHasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *passwordHasher) release() { <-h.slots }

// Hash returns the PHC-style encoding of an argon2id hash of password.
func (h *passwordHasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

var errBadHash = errors.New("unrecognised password hash")

// Verify reports whether password matches encoded. An empty or unreadable encoding
// (a user with no password) matches nothing, after the same work as a real check.
func (h *passwordHasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if encoded == "" {
		h.dummyOnce.Do(func() {
			h.dummy, _ = h.Hash(context.Background(), "no password is set for this user")
		})
		encoded = h.dummy
		password += "\x00" // never the dummy's password
	}
	p, salt, want, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func parseHash(encoded string) (kdfParams, []byte, []byte, error) {
	var p kdfParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, nil, nil, errBadHash
	}
	// Bounds keep a tampered hash from making one check take the machine down.
	if p.time < 1 || p.time > 20 || p.memory < 8 || p.memory > 1<<20 || p.threads < 1 {
		return p, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) < 16 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// loginLimiter counts failed sign-ins per username and per client address and
// refuses further tries for a while after too many, which makes guessing passwords
// slow without locking a user out for longer than the window.
type loginLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string][]time.Time
}

func newLoginLimiter(max int, window time.Duration) *loginLimiter {
	return &loginLimiter{max: max, window: window, fails: map[string][]time.Time{}}
}

// blocked reports whether any of keys has had too many recent failures.
func (l *loginLimiter) blocked(now time.Time, keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if len(l.recentLocked(k, now)) >= l.max {
			return true
		}
	}
	return false
}

func (l *loginLimiter) recentLocked(k string, now time.Time) []time.Time {
	list := l.fails[k]
	i := 0
	for i < len(list) && now.Sub(list[i]) > l.window {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(l.fails, k)
	} else {
		l.fails[k] = list
	}
	return list
}

// fail notes a failed sign-in for each key.
func (l *loginLimiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		l.fails[k] = append(l.recentLocked(k, now), now)
	}
	// Bound memory under a spray of usernames: forget the oldest keys.
	if len(l.fails) > 100_000 {
		for k := range l.fails {
			delete(l.fails, k)
			if len(l.fails) <= 50_000 {
				break
			}
		}
	}
}

// succeed forgets a username's failures once its password is given.
func (l *loginLimiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

// HashPassword hashes a password as the server stores it, for tools that create
// users outside the API (the demo).
func HashPassword(ctx context.Context, password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password shorter than %d characters", MinPasswordLength)
	}
	return newPasswordHasher(defaultKDF).Hash(ctx, password)
}
