package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// MinPasswordLength is the shortest password an admin may set.
const MinPasswordLength = 10

// PasswordCost is argon2id's cost for the password hashes a server makes. Each
// hash records the cost it was made with, so a server verifies hashes made under
// another cost (raised later, or another node's).
type PasswordCost struct {
	// Time is the number of passes over the memory.
	Time uint32
	// MemoryKiB is the memory one hash fills, in KiB; a check holds it while it runs.
	MemoryKiB uint32
	// Threads is the lanes computed in parallel.
	Threads uint8
}

// DefaultPasswordCost follows RFC 9106's second recommendation, scaled for a
// server that signs in a few hundred agents at shift start: about 100 ms and
// 64 MiB a hash. Config.PasswordCost takes it when zero.
func DefaultPasswordCost() PasswordCost {
	return PasswordCost{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}
}

// MinPasswordCost is the least a deployment's configuration may lower the cost
// to: OWASP's minimum for argon2id (19 MiB, two passes, one lane). Below it a
// stolen database's passwords are cheap to guess.
func MinPasswordCost() PasswordCost {
	return PasswordCost{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}
}

// Bounds of a hash's cost that the server reads: beyond them a tampered hash
// could make one check take the machine down, and argon2 needs 8 KiB a lane.
const (
	maxPasswordTime      = 20
	maxPasswordMemoryKiB = 1 << 20
)

// Validate reports a cost the server could not verify its own hashes under,
// naming the field.
func (c PasswordCost) Validate() error {
	switch {
	case c.Threads < 1:
		return fmt.Errorf("threads %d: must be at least 1", c.Threads)
	case c.Time < 1 || c.Time > maxPasswordTime:
		return fmt.Errorf("time %d: must be between 1 and %d", c.Time, maxPasswordTime)
	case c.MemoryKiB < 8*uint32(c.Threads) || c.MemoryKiB > maxPasswordMemoryKiB:
		return fmt.Errorf("memory_kib %d: must be between 8 per thread (%d) and %d", c.MemoryKiB, 8*uint32(c.Threads), maxPasswordMemoryKiB)
	}
	return nil
}

// AtLeast reports the first field of c below floor's, naming it.
func (c PasswordCost) AtLeast(floor PasswordCost) error {
	switch {
	case c.Time < floor.Time:
		return fmt.Errorf("time %d: must be at least %d", c.Time, floor.Time)
	case c.MemoryKiB < floor.MemoryKiB:
		return fmt.Errorf("memory_kib %d: must be at least %d", c.MemoryKiB, floor.MemoryKiB)
	case c.Threads < floor.Threads:
		return fmt.Errorf("threads %d: must be at least %d", c.Threads, floor.Threads)
	}
	return nil
}

// WithDefaults fills c's zero fields from DefaultPasswordCost.
func (c PasswordCost) WithDefaults() PasswordCost {
	d := DefaultPasswordCost()
	if c.Time == 0 {
		c.Time = d.Time
	}
	if c.MemoryKiB == 0 {
		c.MemoryKiB = d.MemoryKiB
	}
	if c.Threads == 0 {
		c.Threads = d.Threads
	}
	return c
}

// passwordHasher hashes and checks passwords. A check holds its cost's memory (by
// default 64 MiB for about 100 ms), so checks run through a pool of a few slots
// with a short queue: a sign-in beyond the queue is refused at once
// (errHasherBusy) instead of waiting, and memory stays at about one check's worth
// per slot however many attempts come in.
type passwordHasher struct {
	cost PasswordCost
	// slots holds one token per check running; admit one per check running or
	// waiting for a slot.
	slots chan struct{}
	admit chan struct{}
	// dummy is verified against when a username is unknown, so that the answer takes
	// as long as for a known user and does not reveal which names exist. Its key is
	// random: no password matches it.
	dummy string
}

// errHasherBusy refuses a password check when the pool and its queue are full.
var errHasherBusy = errors.New("password checks are all busy")

func newPasswordHasher(cost PasswordCost, checks, queue int) *passwordHasher {
	salt, key := make([]byte, 16), make([]byte, 32)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24)
	_, _ = rand.Read(key)
	return &passwordHasher{cost: cost, slots: make(chan struct{}, max(1, checks)),
		admit: make(chan struct{}, max(1, checks)+max(0, queue)), dummy: encodeHash(cost, salt, key)}
}

func (h *passwordHasher) acquire(ctx context.Context) error {
	select {
	case h.admit <- struct{}{}:
	default:
		return errHasherBusy
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		<-h.admit
		return ctx.Err()
	}
}

func (h *passwordHasher) release() {
	// The check's memory is garbage now. Collected before the slot is given to the
	// next check, it is what that check reuses: without this the collector lets the
	// heap grow to twice the checks in flight before it runs (60 concurrent wrong
	// sign-ins took the process from 28 MB to 557 MB).
	runtime.GC()
	<-h.slots
	<-h.admit
}

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
	c := h.cost
	return encodeHash(c, salt, argon2.IDKey([]byte(password), salt, c.Time, c.MemoryKiB, c.Threads, 32)), nil
}

func encodeHash(c PasswordCost, salt, key []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, c.MemoryKiB, c.Time, c.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

var errBadHash = errors.New("unrecognised password hash")

// Verify reports whether password matches encoded. An empty or unreadable encoding
// (a user with no password) matches nothing, after the same work as a real check.
func (h *passwordHasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	if encoded == "" {
		encoded = h.dummy
	}
	c, salt, want, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, c.Time, c.MemoryKiB, c.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func parseHash(encoded string) (PasswordCost, []byte, []byte, error) {
	var c PasswordCost
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return c, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &c.MemoryKiB, &c.Time, &c.Threads); err != nil {
		return c, nil, nil, errBadHash
	}
	// Validate's bounds keep a tampered hash from making one check take the machine down.
	if c.Validate() != nil {
		return c, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) < 16 {
		return c, nil, nil, errBadHash
	}
	return c, salt, key, nil
}

// loginLimiter counts sign-in attempts per username and per client address, each
// against its own rule, before the password is checked. Each rule lets burst
// attempts through at once, then one every period/burst (a generic cell rate
// algorithm: one instant kept per key). The per-username rule is strict and the
// per-address rule generous, so a flood of guesses for one user locks that user
// only, and an address is refused only when it tries many users.
type loginLimiter struct {
	mu      sync.Mutex
	user    rateRule
	ip      rateRule
	tat     map[string]time.Time // the key's theoretical arrival time
	maxKeys int
}

// rateRule allows burst attempts at once and then one every period/burst.
type rateRule struct {
	burst  int
	period time.Duration
}

func (r rateRule) interval() time.Duration { return r.period / time.Duration(r.burst) }

// admit returns the key's next arrival time when an attempt at now conforms, or
// how long until one would.
func (r rateRule) admit(tat, now time.Time) (time.Time, time.Duration) {
	if tat.Before(now) {
		tat = now
	}
	allowAt := tat.Add(r.interval() - r.period)
	if now.Before(allowAt) {
		return tat, allowAt.Sub(now)
	}
	return tat.Add(r.interval()), 0
}

func newLoginLimiter(user, ip rateRule) *loginLimiter {
	return &loginLimiter{user: user, ip: ip, tat: map[string]time.Time{}, maxKeys: 100_000}
}

// loginAttempt is an attempt the limiter let through, to be settled.
type loginAttempt struct{ userKey, ipKey string }

// attempt records an attempt to sign in as username from ip, or refuses it with the
// time until one would be allowed. A refused attempt is not recorded, so a flood for
// one user that is refused costs its address nothing.
func (l *loginLimiter) attempt(now time.Time, username, ip string) (loginAttempt, time.Duration, bool) {
	a := loginAttempt{userKey: "u:" + strings.ToLower(username), ipKey: "a:" + ip}
	l.mu.Lock()
	defer l.mu.Unlock()
	userTat, userWait := l.user.admit(l.tat[a.userKey], now)
	ipTat, ipWait := l.ip.admit(l.tat[a.ipKey], now)
	if wait := max(userWait, ipWait); wait > 0 {
		return a, wait, false
	}
	l.makeRoomLocked(now)
	l.tat[a.userKey], l.tat[a.ipKey] = userTat, ipTat
	return a, 0, true
}

// makeRoomLocked bounds memory under a spray of usernames: keys whose attempts
// have all aged out go first, then arbitrary ones.
func (l *loginLimiter) makeRoomLocked(now time.Time) {
	if len(l.tat) < l.maxKeys {
		return
	}
	for k, t := range l.tat {
		if !t.After(now) {
			delete(l.tat, k)
		}
	}
	for k := range l.tat {
		if len(l.tat) < l.maxKeys*9/10 {
			break
		}
		delete(l.tat, k)
	}
}

// giveBackLocked removes one attempt from key.
func (l *loginLimiter) giveBackLocked(now time.Time, key string, r rateRule) {
	t, ok := l.tat[key]
	if !ok {
		return
	}
	if t = t.Add(-r.interval()); t.After(now) {
		l.tat[key] = t
	} else {
		delete(l.tat, key)
	}
}

// unchecked gives back an attempt whose password was never checked.
func (l *loginLimiter) unchecked(now time.Time, a loginAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.giveBackLocked(now, a.userKey, l.user)
	l.giveBackLocked(now, a.ipKey, l.ip)
}

// succeeded forgets the username's attempts and gives the address this one back:
// people who know their password do not use up their office's allowance.
func (l *loginLimiter) succeeded(now time.Time, a loginAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.tat, a.userKey)
	l.giveBackLocked(now, a.ipKey, l.ip)
}

// HashPassword hashes a password as the server stores it, for tools that create
// users outside the API (the demo).
func HashPassword(ctx context.Context, password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password shorter than %d characters", MinPasswordLength)
	}
	return newPasswordHasher(DefaultPasswordCost(), 1, 0).Hash(ctx, password)
}
