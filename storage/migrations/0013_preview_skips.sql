-- A preview agent's decision not to dial the contact it was offered: the reason
-- code, the agent's words, and when. Kept with the contact's history; a skip is not
-- an attempt (nobody was called), so it has its own table.
CREATE TABLE preview_skips (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    agent_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    reason      TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX preview_skips_contact ON preview_skips (contact_id);
