-- A status webhook may overtake the record of its send (the attempt learns the
-- wamid only when the run handles the send's end): such an event is deferred,
-- not dropped and not kept at the head of the queue. retry_at is when it is
-- tried again (NULL: due now), tries how many times it was deferred.
ALTER TABLE webhook_events ADD COLUMN retry_at INTEGER;
ALTER TABLE webhook_events ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
