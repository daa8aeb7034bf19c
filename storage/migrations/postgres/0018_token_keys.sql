-- API tokens are stored as an HMAC-SHA256 under a key the server makes on its
-- first start (see ../0018_token_keys.sql).
CREATE TABLE server_secrets (
    name       TEXT    PRIMARY KEY,
    value      BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL
);
ALTER TABLE api_tokens ADD COLUMN keyed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
UPDATE api_tokens SET expires_at = (CAST(extract(epoch FROM now()) AS BIGINT) + 90*86400) * 1000
    WHERE revoked_at IS NULL;
UPDATE api_tokens SET prefix = 'tb_' || id;
