-- A side effect is claimed only while its request is in flight, and a crash can
-- leave it in doubt (see ../0015_outbox_in_doubt.sql, which rebuilds the table
-- because SQLite cannot alter a CHECK constraint; PostgreSQL alters it in place).
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check CHECK (state IN ('pending','sending','in_doubt','sent','failed'));
ALTER TABLE outbox ADD COLUMN request_started_at BIGINT;
ALTER TABLE outbox ADD COLUMN result_id TEXT;
ALTER TABLE outbox ADD COLUMN in_doubt_since BIGINT;
ALTER TABLE outbox ADD COLUMN reported_at BIGINT;
-- A row the old code left sending may have left: it is in doubt, never resent.
UPDATE outbox SET state = 'in_doubt', request_started_at = created_at, in_doubt_since = created_at WHERE state = 'sending';
