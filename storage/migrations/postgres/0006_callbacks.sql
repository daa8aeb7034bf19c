-- A contact's open callback: set when an agent's disposition asks to call the
-- contact back, cleared when the contact's next attempt ends.
ALTER TABLE contacts ADD COLUMN callback_at BIGINT;
