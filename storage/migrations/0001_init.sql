-- Turbina schema, version 1. Times are Unix milliseconds (UTC).

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    caller_id       TEXT    NOT NULL,
    default_country TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('draft','running','paused','finished')),
    schedule        TEXT    NOT NULL, -- JSON campaigns.Schedule
    window_start    INTEGER NOT NULL, -- minutes after midnight, contact's local time
    window_end      INTEGER NOT NULL,
    ladder          TEXT    NOT NULL, -- JSON []campaigns.Rung
    pacing          TEXT    NOT NULL, -- JSON campaigns.Pacing
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
    state       TEXT    NOT NULL CHECK (state IN ('running','done','failed')),
    imported    INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE TABLE import_rejections (
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    line      INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    detail    TEXT,
    PRIMARY KEY (import_id, line)
) WITHOUT ROWID;

CREATE TABLE contacts (
    id               INTEGER PRIMARY KEY,
    campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    import_id        INTEGER REFERENCES imports(id) ON DELETE SET NULL,
    line             INTEGER,
    phone            TEXT    NOT NULL,
    whatsapp         TEXT,
    name             TEXT,
    timezone         TEXT,
    attributes       TEXT, -- JSON object
    status           TEXT    NOT NULL DEFAULT 'pending',
    rung             INTEGER NOT NULL DEFAULT 0, -- index into the campaign's ladder
    rung_attempts    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (campaign_id, phone)
);
CREATE INDEX contacts_due ON contacts (campaign_id, status, next_attempt_at);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    channel      TEXT    NOT NULL CHECK (channel IN ('sip','whatsapp_call','whatsapp_template')),
    rung         INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    outcome      TEXT,
    sip_status   INTEGER,
    trunk        TEXT,
    hangup_by    TEXT,
    agent_id     INTEGER REFERENCES users(id) ON DELETE SET NULL, -- the agent user
    disposition  TEXT,
    detail       TEXT, -- JSON
    created_at   INTEGER NOT NULL,
    setup_at     INTEGER,
    ring_at      INTEGER,
    answer_at    INTEGER,
    connect_at   INTEGER,
    end_at       INTEGER
);
CREATE INDEX attempts_contact ON attempts (contact_id);
CREATE INDEX attempts_campaign ON attempts (campaign_id, channel, outcome);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL CHECK (role IN ('admin','supervisor','sales','agent')),
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE, -- hex SHA-256 of the secret
    prefix       TEXT    NOT NULL,        -- first characters, to recognise a token in lists
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE agents (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    state       TEXT    NOT NULL DEFAULT 'logged_out',
    reason      TEXT,
    state_since INTEGER NOT NULL
);

CREATE TABLE agent_campaigns (
    agent_id    INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, campaign_id)
) WITHOUT ROWID;

CREATE TABLE dnc (
    id          INTEGER PRIMARY KEY,
    phone       TEXT    NOT NULL,
    campaign_id INTEGER REFERENCES campaigns(id) ON DELETE CASCADE, -- NULL: the global list
    reason      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX dnc_scope_phone ON dnc (phone, ifnull(campaign_id, 0));

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    user_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object_type TEXT    NOT NULL,
    object_id   TEXT,
    before      TEXT, -- JSON
    after       TEXT  -- JSON
);
CREATE INDEX audit_object ON audit_log (object_type, object_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL UNIQUE,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sending','sent','failed')),
    tries           INTEGER NOT NULL DEFAULT 0,
    next_try_at     INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_try_at);
