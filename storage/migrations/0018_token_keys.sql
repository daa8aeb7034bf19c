-- API tokens are stored as an HMAC-SHA256, under a key the server makes on its
-- first start, of the SHA-256 the caller sends: a copy of the hashes alone (a
-- report, a partial dump) cannot be checked against guesses. Rows written before
-- this migration hold the bare SHA-256 (keyed = 0); Open rekeys them in place, so
-- existing tokens keep working without a clear hash left behind.
CREATE TABLE server_secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE api_tokens ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
-- Tokens expire; NULL is a token that never does (none is made so by the API).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
-- Tokens made before expiry existed get the default 90 days from the upgrade.
UPDATE api_tokens SET expires_at = (CAST(strftime('%s','now') AS INTEGER) + 90*86400) * 1000
    WHERE revoked_at IS NULL;
-- The old prefix was the secret's first ten characters; keep only a non-secret label.
UPDATE api_tokens SET prefix = 'tb_' || id;
