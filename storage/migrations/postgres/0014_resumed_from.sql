-- A WhatsApp call that took up a conversation whose SIP call the trunk dropped
-- names the SIP attempt it resumed.
ALTER TABLE attempts ADD COLUMN resumed_from BIGINT REFERENCES attempts(id) ON DELETE SET NULL;
