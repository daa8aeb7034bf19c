-- The engine asks for the due contacts of given rungs (the call rungs, the message
-- rungs) on every pass. contacts_due walks every pending contact in due order and
-- filters the rung row by row, which reads the whole list when the asked rung has
-- none (the template rung of a fresh campaign); by rung, that question is a lookup.
CREATE INDEX contacts_due_rung ON contacts (campaign_id, status, rung, next_attempt_at);
