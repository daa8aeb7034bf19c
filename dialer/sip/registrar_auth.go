package sip

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // SIP digest (RFC 3261 22.4) is MD5; phones offer nothing else.
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/icholy/digest"
)

// nonceState is what checking a nonce tells about it.
type nonceState int

const (
	nonceInvalid nonceState = iota // not ours: forged, garbled or from another registrar
	nonceFresh
	nonceStale // ours, but older than NonceTTL
)

// nonceSize is the decoded length of a nonce: issue time, random bytes, MAC.
const nonceSize = 8 + 8 + 16

// minNonceKey is the shortest RegistrarConfig.NonceKey, in bytes.
const minNonceKey = 16

// nonces issues and checks digest nonces without keeping any state: a nonce is
// its issue time and 8 random bytes, authenticated with an HMAC. Unauthenticated
// REGISTERs therefore cost no memory. Under a key of the registrar's own, a
// nonce from before a restart is simply unknown (401 again); under a key the
// nodes share, any node accepts another's nonce while it is fresh. Either way a
// REGISTER replayed whole is refused by its Call-ID and CSeq, which the nodes
// share with the bindings.
type nonces struct {
	key []byte
	ttl time.Duration
}

// newNonces makes nonces under key, or under a random key when key is nil.
func newNonces(ttl time.Duration, key []byte) (*nonces, error) {
	n := &nonces{ttl: ttl, key: slices.Clone(key)}
	if n.key == nil {
		n.key = make([]byte, 32)
		if _, err := rand.Read(n.key); err != nil {
			return nil, fmt.Errorf("registrar nonce key: %w", err)
		}
	}
	return n, nil
}

func (n *nonces) mac(b []byte) []byte {
	h := hmac.New(sha256.New, n.key)
	h.Write(b)
	return h.Sum(nil)[:16]
}

// issue returns a new nonce stamped with now.
func (n *nonces) issue(now time.Time) string {
	var b [nonceSize]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:16])
	copy(b[16:], n.mac(b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// check says whether nonce is one of ours and still fresh at now.
func (n *nonces) check(nonce string, now time.Time) nonceState {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceSize || !hmac.Equal(b[16:], n.mac(b[:16])) {
		return nonceInvalid
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	if age := now.Sub(issued); age < -time.Minute || age > n.ttl {
		return nonceStale
	}
	return nonceFresh
}

// challenge is the WWW-Authenticate value for a fresh nonce.
func (n *nonces) challenge(realm string, now time.Time, stale bool) string {
	c := digest.Challenge{
		Realm:     realm,
		Nonce:     n.issue(now),
		Algorithm: "MD5",
		QOP:       []string{"auth"},
		Stale:     stale,
	}
	return c.String()
}

// md5Hex is the hex MD5 of parts joined with colons, digest's H(a:b:…).
func md5Hex(parts ...string) string {
	sum := md5.Sum([]byte(strings.Join(parts, ":"))) //nolint:gosec // see import
	return hex.EncodeToString(sum[:])
}

// digestResponse computes the RFC 2617 request-digest of credentials c for
// method from the account's HA1, with qop "auth" or none (RFC 2069
// compatibility).
func digestResponse(c *digest.Credentials, method, ha1 string) string {
	ha2 := md5Hex(method, c.URI)
	if c.QOP == "" {
		return md5Hex(strings.ToLower(ha1), c.Nonce, ha2)
	}
	return md5Hex(strings.ToLower(ha1), c.Nonce, fmt.Sprintf("%08x", c.Nc), c.Cnonce, c.QOP, ha2)
}

// digestMatches compares a computed digest with the one the phone sent, in
// constant time and ignoring hex case.
func digestMatches(want, got string) bool {
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(got))) == 1
}
