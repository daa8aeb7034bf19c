-- A side effect is claimed only while its request is in flight, and a crash can
-- leave it unknown: in_doubt until WhatsApp's status webhook settles it.
-- request_started_at is written just before the request is; a claimed row
-- without it provably never left. result_id is the far end's answer (a wamid),
-- so a retried request returns the first result. in_doubt_since and
-- reported_at track the doubt and its report to a supervisor.
CREATE TABLE outbox_new (
    id                 INTEGER PRIMARY KEY,
    kind               TEXT    NOT NULL,
    idempotency_key    TEXT    NOT NULL UNIQUE,
    payload            TEXT    NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sending','in_doubt','sent','failed')),
    tries              INTEGER NOT NULL DEFAULT 0,
    next_try_at        INTEGER NOT NULL,
    last_error         TEXT,
    created_at         INTEGER NOT NULL,
    sent_at            INTEGER,
    request_started_at INTEGER,
    result_id          TEXT,
    in_doubt_since     INTEGER,
    reported_at        INTEGER
);
-- A row the old code left sending may have left: it is in doubt, never resent.
INSERT INTO outbox_new(id, kind, idempotency_key, payload, state, tries, next_try_at, last_error, created_at, sent_at,
        request_started_at, in_doubt_since)
    SELECT id, kind, idempotency_key, payload, CASE state WHEN 'sending' THEN 'in_doubt' ELSE state END, tries,
        next_try_at, last_error, created_at, sent_at,
        CASE state WHEN 'sending' THEN created_at END, CASE state WHEN 'sending' THEN created_at END
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_try_at);
