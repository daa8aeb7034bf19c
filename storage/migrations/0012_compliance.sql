-- Compliance (issue 13 items 5, 6, 11).
-- The policy gate's refusals. The gate's own migration (0011, on another branch)
-- creates this table; IF NOT EXISTS lets the compliance report read it whichever
-- of the two lands first.
CREATE TABLE IF NOT EXISTS policy_refusals (
    id              INTEGER PRIMARY KEY,
    contact_id      INTEGER NOT NULL,
    campaign_id     INTEGER NOT NULL,
    action          TEXT    NOT NULL,
    reasons         TEXT    NOT NULL, -- comma-separated reason codes
    at              INTEGER NOT NULL, -- unix ms
    next_allowed_at INTEGER
);
CREATE INDEX IF NOT EXISTS policy_refusals_campaign ON policy_refusals (campaign_id, at);

-- A campaign's own safe-harbour message, kept as the WAV the media layer plays
-- (8 kHz, 16-bit, mono), converted on upload. No row: the built-in prompt.
CREATE TABLE campaign_safe_harbour (
    campaign_id INTEGER PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    audio       BLOB    NOT NULL,
    duration_ms INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Which safe-harbour message an abandoned attempt played: 'builtin' or 'campaign';
-- NULL when none played (the line was gone, or the attempt was not abandoned).
ALTER TABLE attempts ADD COLUMN safe_harbour TEXT;

-- The abandonment figures read answered attempts of one campaign by time.
CREATE INDEX attempts_campaign_answered ON attempts (campaign_id, answer_at);
