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
)

// tokenKeyName names the HMAC key of API token hashes in server_secrets.
const tokenKeyName = "api_token_hmac"

// tokenKeyVersion is the migration that made server_secrets; databases opened at
// an older version (migration tests) have no key to load.
const tokenKeyVersion = 18

// loadTokenKey reads the key API token hashes are stored under, making it on the
// first start, and rekeys the rows written before keys existed (bare SHA-256), so
// that tokens made by an older version keep working and no unkeyed hash stays.
func (d *DB) loadTokenKey(ctx context.Context) error {
	return d.inTx(ctx, func(tx *sql.Tx) error {
		// Offered, then read back: of processes starting together on a new
		// database, the first one's key stands for all.
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("make token key: %w", err)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO server_secrets(name, value, created_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
			tokenKeyName, key, d.nowMs())
		if err == nil {
			err = tx.QueryRowContext(ctx, "SELECT value FROM server_secrets WHERE name = ?", tokenKeyName).Scan(&d.tokenKey)
		}
		if err != nil {
			return fmt.Errorf("token key: %w", err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, token_hash FROM api_tokens WHERE keyed = 0")
		if err != nil {
			return fmt.Errorf("rekey tokens: %w", err)
		}
		legacy := map[int64]string{}
		for rows.Next() {
			var id int64
			var h string
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return fmt.Errorf("rekey tokens: %w", err)
			}
			legacy[id] = h
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("rekey tokens: %w", err)
		}
		for id, h := range legacy {
			if _, err := tx.ExecContext(ctx, "UPDATE api_tokens SET token_hash = ?, keyed = 1 WHERE id = ?", d.keyTokenHash(h), id); err != nil {
				return fmt.Errorf("rekey token %d: %w", id, err)
			}
		}
		return nil
	})
}

// keyTokenHash is what is stored for a token whose secret's SHA-256 is secretHash.
func (d *DB) keyTokenHash(secretHash string) string {
	m := hmac.New(sha256.New, d.tokenKey)
	m.Write([]byte(secretHash))
	return hex.EncodeToString(m.Sum(nil))
}
