-- Agents' phone secrets are kept as their digest HA1, MD5(username:realm:secret)
-- (RFC 7616 3.4.2), which the registrar checks a phone's answer against without
-- the secret itself; the realm it was made for goes with it. The Go step of this
-- migration hashes the secrets stored so far and drops the plaintext column.
ALTER TABLE users ADD COLUMN phone_ha1 TEXT;
ALTER TABLE users ADD COLUMN phone_realm TEXT;
