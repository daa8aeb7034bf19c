package storage

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoTokenKey means a PostgreSQL database was opened without Options.TokenKey:
// every process on one such database must share the key, so none may make its own.
var ErrNoTokenKey = errors.New("PostgreSQL needs a token key shared by every process on the database")

// MinTokenKeyLen is the shortest token key accepted, in bytes.
const MinTokenKeyLen = 32

// TokenKeyFile is the name of the token key's file in a SQLite database's
// directory, made on the first start when no key is configured.
const TokenKeyFile = "token.key"

// Names in server_secrets. tokenPepperName is the key version 0018 made and kept
// in the database: tokens made under it are kept under it, wrapped by the key
// from outside, so it is no secret any more. tokenKeyCheckName is an HMAC of a
// fixed text under the key from outside, by which a process started with another
// key is refused before it turns every token away.
const (
	tokenPepperName   = "api_token_hmac"
	tokenKeyCheckName = "api_token_key_check"
)

// tokenKeyVersion is the migration that made server_secrets; databases opened at
// an older version (migration tests) have no key to load.
const tokenKeyVersion = 18

// Values of api_tokens.keyed: what token_hash holds for a secret whose SHA-256
// is h. The key from outside is K, the database's old key P (when it has one).
const (
	hashBare     = 0 // h: before 0018
	hashInDB     = 1 // HMAC(P, h): 0018 to the key's move out of the database
	hashOutsideK = 2 // HMAC(K, h), or HMAC(K, HMAC(P, h)) when the database has P
)

// ParseTokenKey checks a token key as configured (a file's content or an
// environment variable's value): surrounding white space is not part of it.
func ParseTokenKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) < MinTokenKeyLen {
		return nil, fmt.Errorf("token key: %d characters, want at least %d (e.g. openssl rand -hex 32)", len(s), MinTokenKeyLen)
	}
	return []byte(s), nil
}

// tokenKeyFromFile reads the key in dir's TokenKeyFile, making it (0600, 32
// random bytes in hex) when there is none. Processes starting together on a
// new database agree on the first one written: each writes its own file and
// links it in place, which fails for all but one.
func tokenKeyFromFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, TokenKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		err = makeTokenKeyFile(path)
		if err == nil || errors.Is(err, fs.ErrExist) {
			b, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("token key file: %w", err)
	}
	key, err := ParseTokenKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// makeTokenKeyFile writes a new key at path, unless a file is there already
// (fs.ErrExist): never half written, as it is written aside and linked.
func makeTokenKeyFile(path string) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("make token key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), TokenKeyFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes it 0600.
	_, err = tmp.WriteString(hex.EncodeToString(raw) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if err = errors.Join(err, tmp.Close()); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// loadTokenKey settles the key API token hashes are stored under: the one from
// outside the database (opts.TokenKey, or on SQLite the key file beside it),
// checked against the one the database's tokens were made under, and rekeys in
// place the rows an older version wrote (a bare SHA-256, or an HMAC under the key
// it kept in the database), so that every token keeps working and no hash a copy
// of the database alone could check a guess against stays.
func (d *DB) loadTokenKey(ctx context.Context, key []byte, sqlitePath string) error {
	switch {
	case key != nil:
		if len(key) < MinTokenKeyLen {
			return fmt.Errorf("token key: %d bytes, want at least %d", len(key), MinTokenKeyLen)
		}
	case d.dialect == postgresDialect:
		return ErrNoTokenKey
	default:
		var err error
		if key, err = tokenKeyFromFile(filepath.Dir(sqlitePath)); err != nil {
			return err
		}
	}
	d.tokenKey = key
	return d.inTx(ctx, func(tx *sql.Tx) error {
		// Offered, then read back: of processes starting together on a new
		// database, the first one's check stands, and one with another key fails.
		check := hmacHex(key, "turbina api token key")
		_, err := tx.ExecContext(ctx, "INSERT INTO server_secrets(name, value, created_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
			tokenKeyCheckName, []byte(check), d.nowMs())
		var stood []byte
		if err == nil {
			err = tx.QueryRowContext(ctx, "SELECT value FROM server_secrets WHERE name = ?", tokenKeyCheckName).Scan(&stood)
		}
		if err != nil {
			return fmt.Errorf("token key: %w", err)
		}
		if !hmac.Equal(stood, []byte(check)) {
			return errors.New("token key: not the key this database's API tokens were made under (every process on one database needs the same key; a lost key means making new tokens, see docs/operations.md)")
		}
		err = tx.QueryRowContext(ctx, "SELECT value FROM server_secrets WHERE name = ?", tokenPepperName).Scan(&d.tokenPepper)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token key: %w", err)
		}
		return d.rekeyTokens(ctx, tx)
	})
}

// rekeyTokens rewrites under the key the rows stored before it came from outside.
func (d *DB) rekeyTokens(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT id, token_hash, keyed FROM api_tokens WHERE keyed < ?", hashOutsideK)
	if err != nil {
		return fmt.Errorf("rekey tokens: %w", err)
	}
	type row struct {
		hash  string
		keyed int
	}
	old := map[int64]row{}
	for rows.Next() {
		var id int64
		var r row
		if err := rows.Scan(&id, &r.hash, &r.keyed); err != nil {
			rows.Close()
			return fmt.Errorf("rekey tokens: %w", err)
		}
		old[id] = r
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("rekey tokens: %w", err)
	}
	for id, r := range old {
		h := d.keyTokenHash(r.hash)
		if r.keyed == hashInDB {
			if d.tokenPepper == nil {
				return fmt.Errorf("rekey token %d: its key is gone from server_secrets", id)
			}
			h = hmacHex(d.tokenKey, r.hash) // r.hash is HMAC(P, h) already
		}
		if _, err := tx.ExecContext(ctx, "UPDATE api_tokens SET token_hash = ?, keyed = ? WHERE id = ?", h, hashOutsideK, id); err != nil {
			return fmt.Errorf("rekey token %d: %w", id, err)
		}
	}
	return nil
}

// keyTokenHash is what is stored for a token whose secret's SHA-256 is secretHash.
func (d *DB) keyTokenHash(secretHash string) string {
	if d.tokenPepper != nil {
		secretHash = hmacHex(d.tokenPepper, secretHash)
	}
	return hmacHex(d.tokenKey, secretHash)
}

// hmacHex is the HMAC-SHA256 of s under key, in hex.
func hmacHex(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}
