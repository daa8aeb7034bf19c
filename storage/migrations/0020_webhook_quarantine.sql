-- Signed webhooks that could not be parsed are answered 200 (Meta would resend a
-- refused batch for days) and kept here whole, with the parse error, for an
-- administrator to look at: part is 'batch' (the whole body did not parse) or
-- 'change' (one entry[].changes[] item did not; the others were applied).
-- digest (SHA-256 of part and body) keeps a resent body once.
CREATE TABLE webhook_quarantine (
    id          INTEGER PRIMARY KEY,
    digest      TEXT    NOT NULL UNIQUE,
    part        TEXT    NOT NULL CHECK (part IN ('batch','change')),
    reason      TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    received_at INTEGER NOT NULL
);

-- The event time of the permission reply the contact's wa_permission comes
-- from: an older reply that arrives later does not undo a newer one.
ALTER TABLE contacts ADD COLUMN wa_permission_at INTEGER;
