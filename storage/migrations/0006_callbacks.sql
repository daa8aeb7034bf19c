-- A contact's open callback: set when an agent's disposition asks to call the
-- contact back, cleared when the contact's next attempt ends. A WhatsApp call the
-- contact makes meanwhile is routed to an agent.
ALTER TABLE contacts ADD COLUMN callback_at INTEGER;
