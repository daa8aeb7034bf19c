-- Agents' phone secrets are kept as their digest HA1; the Go step of this
-- migration (the same as SQLite's) hashes the secrets stored so far and drops the
-- plaintext column.
ALTER TABLE users ADD COLUMN phone_ha1 TEXT;
ALTER TABLE users ADD COLUMN phone_realm TEXT;
