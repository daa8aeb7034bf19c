-- A WhatsApp call that took up a conversation whose SIP call the trunk dropped
-- names the SIP attempt it resumed: the contact's history links the two, and the
-- conversation is counted once (on the SIP attempt).
ALTER TABLE attempts ADD COLUMN resumed_from INTEGER REFERENCES attempts(id) ON DELETE SET NULL;
