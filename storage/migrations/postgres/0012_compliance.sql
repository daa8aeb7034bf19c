-- Compliance (issue 13 items 5, 6, 11); see ../0012_compliance.sql. policy_refusals
-- exists already (0011).
CREATE TABLE campaign_safe_harbour (
    campaign_id BIGINT  PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    audio       BYTEA   NOT NULL,
    duration_ms BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
ALTER TABLE attempts ADD COLUMN safe_harbour TEXT;
CREATE INDEX attempts_campaign_answered ON attempts (campaign_id, answer_at);
