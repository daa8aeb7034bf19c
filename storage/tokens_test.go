package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	d2, err := Open(ctx, path, be.options(path, Options{}))
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
	d, err := Open(ctx, path, be.options(path, Options{}))
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

// dumpVerifiesToken reports whether what the database alone holds lets one
// check a guessed token offline: the stored hash is the bare SHA-256, or an
// HMAC of it under a value the database keeps (server_secrets), once or twice.
func dumpVerifiesToken(t *testing.T, d *DB, id int64, secretHash string) bool {
	t.Helper()
	stored, _ := storedTokenHash(t, d, id)
	rows, err := d.db.QueryContext(context.Background(), "SELECT value FROM server_secrets")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	candidates := []string{secretHash}
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		candidates = append(candidates, hmacHex(v, secretHash))
		for _, c := range candidates[1:] {
			candidates = append(candidates, hmacHex(v, c))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return slices.Contains(candidates, stored)
}

// TestTokenKeyLivesOutsideTheDatabase: a copy of the database alone cannot check
// a guessed token (its key is in a 0600 file beside a SQLite database, or
// configured); a process started on it with another key is refused with a clear
// error rather than turning every token away; PostgreSQL without a configured
// key is refused, as nodes sharing the database could not agree on one.
func TestTokenKeyLivesOutsideTheDatabase(t *testing.T) {
	eachBackend(t, testTokenKeyLivesOutsideTheDatabase)
}

func testTokenKeyLivesOutsideTheDatabase(t *testing.T, be backend) {
	ctx := context.Background()
	d, dsn := be.open(t, Options{})
	u := User{Username: "ana", Role: RoleSales}
	if err := d.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	h := sha256Hex("tb_abcd_secret")
	tok := Token{UserID: u.ID, Name: "ci", Prefix: "tb_abcd"}
	if err := d.CreateToken(ctx, tester, &tok, h); err != nil {
		t.Fatal(err)
	}
	if dumpVerifiesToken(t, d, tok.ID, h) {
		t.Error("the database alone checks a guessed token: its key is in it")
	}
	if be.name == "sqlite" {
		st, err := os.Stat(filepath.Join(filepath.Dir(dsn), TokenKeyFile))
		if err != nil {
			t.Fatalf("no key file beside the database: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
		}
	}
	other := []byte(sha256Hex("another key"))
	if d2, err := Open(ctx, dsn, Options{TokenKey: other}); err == nil {
		d2.Close()
		t.Error("a process with another token key started")
	} else if !strings.Contains(err.Error(), "not the key this database's API tokens were made under") {
		t.Errorf("another key: %v, want it named", err)
	}
	if be.name == "postgres" {
		if d2, err := Open(ctx, dsn, Options{}); !errors.Is(err, ErrNoTokenKey) {
			if err == nil {
				d2.Close()
			}
			t.Errorf("PostgreSQL without a token key: %v, want ErrNoTokenKey", err)
		}
	}
	if _, err := Open(ctx, dsn, Options{TokenKey: []byte("short")}); err == nil {
		t.Error("a 5-byte token key was taken")
	}
	if got, err := d.UserByToken(ctx, h); err != nil || got.ID != u.ID {
		t.Errorf("token after refused starts: %+v, %v", got, err)
	}
}

// TestUpgradeMovesTheTokenKeyOutOfTheDatabase: tokens made while the key was
// kept in the database (migration 18 up to the move) and bare ones from before
// keep working after the upgrade, and no hash the database alone could check a
// guess against is left, though the old key stays in it.
func TestUpgradeMovesTheTokenKeyOutOfTheDatabase(t *testing.T) {
	eachBackend(t, testUpgradeMovesTheTokenKeyOutOfTheDatabase)
}

func testUpgradeMovesTheTokenKeyOutOfTheDatabase(t *testing.T, be backend) {
	ctx := context.Background()
	old, dsn := be.open(t, Options{})
	u := User{Username: "admin", Role: RoleAdmin}
	if err := old.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	// The database as the version before the move left it: its key in
	// server_secrets, tokens keyed under it or, older, bare.
	inDB := []byte("0123456789abcdef0123456789abcdef")
	if _, err := old.exec(ctx, "DELETE FROM server_secrets"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.exec(ctx, "INSERT INTO server_secrets(name, value, created_at) VALUES (?,?,0)", tokenPepperName, inDB); err != nil {
		t.Fatal(err)
	}
	secrets := map[int64]string{}
	for i, keyed := range []int{hashInDB, hashBare, hashInDB} {
		secret := fmt.Sprintf("tb_%08x_oldsecret%d", i, i)
		stored := sha256Hex(secret)
		if keyed == hashInDB {
			stored = hmacHex(inDB, stored)
		}
		id, err := insertID(ctx, old.w, "INSERT INTO api_tokens(user_id, name, token_hash, keyed, prefix, created_at) VALUES (?,?,?,?,?,?)",
			u.ID, "old", stored, keyed, fmt.Sprintf("tb_%08x", i), time.Now().UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		secrets[id] = secret
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if be.name == "sqlite" {
		// The version before the move had no key file.
		if err := os.Remove(filepath.Join(filepath.Dir(dsn), TokenKeyFile)); err != nil {
			t.Fatal(err)
		}
	}
	for restart := range 2 { // the rekeyed rows are not rekeyed again
		d, err := Open(ctx, dsn, be.options(dsn, Options{}))
		if err != nil {
			t.Fatal(err)
		}
		for id, secret := range secrets {
			if got, err := d.UserByToken(ctx, sha256Hex(secret)); err != nil || got.ID != u.ID {
				t.Errorf("start %d: token %d made before the upgrade: %+v, %v", restart, id, got, err)
			}
			if dumpVerifiesToken(t, d, id, sha256Hex(secret)) {
				t.Errorf("start %d: token %d can be checked against guesses with the database alone", restart, id)
			}
		}
		if restart == 0 {
			fresh := Token{UserID: u.ID, Name: "new", Prefix: "tb_ffffffff"}
			if err := d.CreateToken(ctx, tester, &fresh, sha256Hex("tb_ffffffff_new")); err != nil {
				t.Fatal(err)
			}
			secrets[fresh.ID] = "tb_ffffffff_new"
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
