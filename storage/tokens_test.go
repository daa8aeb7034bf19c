package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// storedTokenHash reads what the database keeps for a token.
func storedTokenHash(t *testing.T, d *DB, id int64) (hash, prefix string) {
	t.Helper()
	if err := d.db.QueryRowContext(context.Background(), "SELECT token_hash, prefix FROM api_tokens WHERE id = ?", id).Scan(&hash, &prefix); err != nil {
		t.Fatal(err)
	}
	return hash, prefix
}

// TestTokensStoredKeyed: the database keeps an HMAC of the token's hash under a
// key of its own, never the bare SHA-256 a guess could be checked against, and the
// key survives a restart so tokens keep resolving.
func TestTokensStoredKeyed(t *testing.T) { eachBackend(t, testTokensStoredKeyed) }

func testTokensStoredKeyed(t *testing.T, be backend) {
	ctx := context.Background()
	d, path := be.open(t, Options{})
	u := User{Username: "ana", Role: RoleSales}
	if err := d.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	h := sha256Hex("tb_abcd_secret")
	tok := Token{UserID: u.ID, Name: "ci", Prefix: "tb_abcd"}
	if err := d.CreateToken(ctx, tester, &tok, h); err != nil {
		t.Fatal(err)
	}
	stored, _ := storedTokenHash(t, d, tok.ID)
	if stored == h || len(stored) != 64 {
		t.Fatalf("stored %q for SHA-256 %q: not a keyed hash", stored, h)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	if got, err := d2.UserByToken(ctx, h); err != nil || got.ID != u.ID {
		t.Fatalf("after a restart UserByToken = %+v, %v", got, err)
	}
	// Another database has another key: the same token is stored differently.
	other, _ := be.open(t, Options{})
	v := User{Username: "ana", Role: RoleSales}
	if err := other.CreateUser(ctx, tester, &v); err != nil {
		t.Fatal(err)
	}
	tok2 := Token{UserID: v.ID, Name: "ci", Prefix: "tb_abcd"}
	if err := other.CreateToken(ctx, tester, &tok2, h); err != nil {
		t.Fatal(err)
	}
	if s2, _ := storedTokenHash(t, other, tok2.ID); s2 == stored {
		t.Errorf("two databases store the same hash %q: the key is not per server", s2)
	}
}

// TestMigrationRekeysLegacyTokens: a token made before migration 18 (bare SHA-256,
// its first ten characters in clear) keeps working after the upgrade, is stored
// keyed, shows no secret characters and expires 90 days after the upgrade.
func TestMigrationRekeysLegacyTokens(t *testing.T) { eachBackend(t, testMigrationRekeysLegacyTokens) }

func testMigrationRekeysLegacyTokens(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.dsn(t)
	old, err := open(ctx, path, Options{}, 17)
	if err != nil {
		t.Fatal(err)
	}
	u := User{Username: "admin", Role: RoleAdmin}
	if err := old.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	secret := "tb_OLDSECRETxyz0123456789abcdefghijklmnopqrstu"
	id, err := insertID(ctx, old.w, "INSERT INTO api_tokens(user_id, name, token_hash, prefix, created_at) VALUES (?,?,?,?,?)",
		u.ID, "first start", sha256Hex(secret), secret[:10], time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if got, err := d.UserByToken(ctx, sha256Hex(secret)); err != nil || got.ID != u.ID {
		t.Fatalf("legacy token after the upgrade: %+v, %v", got, err)
	}
	stored, prefix := storedTokenHash(t, d, id)
	if stored == sha256Hex(secret) {
		t.Error("the bare SHA-256 is still stored")
	}
	if prefix != "tb_"+idString(id) {
		t.Errorf("prefix %q, want the non-secret label tb_%d", prefix, id)
	}
	tok, err := d.GetToken(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresAt == nil || tok.ExpiresAt.Before(time.Now().Add(89*24*time.Hour)) || tok.ExpiresAt.After(time.Now().Add(91*24*time.Hour)) {
		t.Errorf("legacy token expires at %v, want 90 days from the upgrade", tok.ExpiresAt)
	}
}

// TestTokenExpiryAndRevokeAll: a token stops resolving at its expiry, and
// RevokeUserTokens stops every live token of one user and no other's.
func TestTokenExpiryAndRevokeAll(t *testing.T) { eachBackend(t, testTokenExpiryAndRevokeAll) }

func testTokenExpiryAndRevokeAll(t *testing.T, be backend) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// The database's background loop reads the clock too.
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	d, _ := be.open(t, Options{Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	ana, bia := User{Username: "ana", Role: RoleSales}, User{Username: "bia", Role: RoleSales}
	for _, u := range []*User{&ana, &bia} {
		if err := d.CreateUser(ctx, tester, u); err != nil {
			t.Fatal(err)
		}
	}
	exp := now.Add(time.Hour)
	mk := func(u User, name string) {
		t.Helper()
		tok := Token{UserID: u.ID, Name: name, Prefix: "tb_" + name, ExpiresAt: &exp}
		if err := d.CreateToken(ctx, tester, &tok, sha256Hex(name)); err != nil {
			t.Fatal(err)
		}
	}
	mk(ana, "a1")
	mk(ana, "a2")
	mk(bia, "b1")
	tokens, err := d.ListTokens(ctx, ana.ID)
	if err != nil || len(tokens) != 2 || tokens[0].ExpiresAt == nil || !tokens[0].ExpiresAt.Equal(exp) {
		t.Fatalf("ListTokens = %+v, %v; want 2 expiring at %v", tokens, err, exp)
	}
	n, err := d.RevokeUserTokens(ctx, tester, ana.ID)
	if err != nil || n != 2 {
		t.Fatalf("RevokeUserTokens = %d, %v; want 2", n, err)
	}
	for _, name := range []string{"a1", "a2"} {
		if _, err := d.UserByToken(ctx, sha256Hex(name)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after revoking ana's tokens: %v", name, err)
		}
	}
	if _, err := d.UserByToken(ctx, sha256Hex("b1")); err != nil {
		t.Fatalf("bia's token revoked with ana's: %v", err)
	}
	// A dead token's secret registered again (TURBINA_ADMIN_TOKEN at a start)
	// makes a new row; the dead one stays listed, revoked.
	mk(ana, "a1")
	if got, err := d.UserByToken(ctx, sha256Hex("a1")); err != nil || got.ID != ana.ID {
		t.Fatalf("a1 registered again: %+v, %v", got, err)
	}
	if tokens, err := d.ListTokens(ctx, ana.ID); err != nil || len(tokens) != 3 || tokens[0].RevokedAt == nil {
		t.Errorf("ana's tokens = %+v, %v; want a1 (revoked), a2, a1", tokens, err)
	}
	clock.Store(exp.UnixNano())
	if _, err := d.UserByToken(ctx, sha256Hex("b1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("token at its expiry still resolves: %v", err)
	}
}
