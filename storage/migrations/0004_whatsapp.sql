-- WhatsApp: the id Meta gives an attempt (wacid / wamid), each contact's call
-- permission, webhook events kept before they are applied, and the conversation.
ALTER TABLE attempts ADD COLUMN external_id TEXT;
CREATE INDEX attempts_external ON attempts (external_id);

ALTER TABLE contacts ADD COLUMN wa_permission TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE contacts ADD COLUMN wa_permission_until INTEGER;

CREATE TABLE webhook_events (
    id           INTEGER PRIMARY KEY,
    event_key    TEXT    NOT NULL UNIQUE,
    type         TEXT    NOT NULL,
    payload      TEXT    NOT NULL, -- JSON whatsapp.Event
    event_time   INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER
);
CREATE INDEX webhook_events_pending ON webhook_events (processed_at, event_time);

CREATE TABLE wa_messages (
    id         INTEGER PRIMARY KEY,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE CASCADE,
    direction  TEXT    NOT NULL CHECK (direction IN ('in','out')),
    wa_id      TEXT    NOT NULL UNIQUE, -- wamid
    phone      TEXT    NOT NULL,        -- the user's number, E.164
    type       TEXT    NOT NULL,
    body       TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX wa_messages_contact ON wa_messages (contact_id, at);
