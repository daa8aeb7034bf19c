-- The engine asks for the due contacts of given rungs on every pass: by rung,
-- that question is a lookup.
CREATE INDEX contacts_due_rung ON contacts (campaign_id, status, rung, next_attempt_at);
