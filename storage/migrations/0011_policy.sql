-- The policy gate's facts and its refusals.
-- A contact's consent to WhatsApp contact, with its date (the import's consent column).
ALTER TABLE contacts ADD COLUMN consent_at INTEGER;
-- A number's attempts across every campaign: the number each attempt went to, so the
-- per-number limits and the quiet period after an abandon are one index range.
ALTER TABLE attempts ADD COLUMN number TEXT;
UPDATE attempts SET number = (SELECT CASE WHEN attempts.channel = 'sip' THEN c.phone ELSE ifnull(nullif(c.whatsapp,''), c.phone) END
    FROM contacts c WHERE c.id = attempts.contact_id);
CREATE INDEX attempts_number ON attempts (number, created_at);
-- An opt-out (a reply, an agent's disposition, the API) is the person's, for every campaign.
CREATE TABLE opt_outs (
    phone      TEXT    PRIMARY KEY, -- E.164
    source     TEXT    NOT NULL,    -- whatsapp_reply, disposition, api
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX contacts_phone ON contacts (phone);
CREATE INDEX contacts_whatsapp ON contacts (whatsapp);
CREATE INDEX wa_messages_phone ON wa_messages (phone, direction, at);
-- Every action the gate refused, with its reasons (comma-separated reason codes).
CREATE TABLE policy_refusals (
    id              INTEGER PRIMARY KEY,
    contact_id      INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    action          TEXT    NOT NULL,
    reasons         TEXT    NOT NULL, -- comma-separated reason codes
    at              INTEGER NOT NULL,
    next_allowed_at INTEGER
);
CREATE INDEX policy_refusals_contact ON policy_refusals (contact_id, at);
CREATE INDEX policy_refusals_campaign ON policy_refusals (campaign_id, at);
