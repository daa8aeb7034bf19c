-- Agents' SIP phones register with Turbina's registrar: digest authentication needs
-- the device secret (as a PBX's peer configuration keeps it).
ALTER TABLE users ADD COLUMN phone_secret TEXT;
