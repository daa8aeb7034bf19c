-- A status webhook that overtakes the record of its send is deferred.
ALTER TABLE webhook_events ADD COLUMN retry_at BIGINT;
ALTER TABLE webhook_events ADD COLUMN tries BIGINT NOT NULL DEFAULT 0;
