-- Agents' SIP phones register to one node's registrar, but the agent is served
-- by the node that holds its campaign's lease: every registrar keeps its
-- bindings here too, so any node can find the phone (and call it over UDP from
-- its own socket), show it registered, and refuse a REGISTER replayed to
-- another node (call_id and cseq, RFC 3261 10.3 step 7). contact_key is the
-- contact's identity for matching (scheme, user, host, port, transport);
-- node_id is the node that took the REGISTER (only it probes the phone, and
-- only it holds a TCP phone's connection); times are that node's clock in Unix
-- milliseconds. A row outlives its node until expires_at.
CREATE TABLE phone_bindings (
    agent_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    contact_key TEXT NOT NULL,
    contact TEXT NOT NULL,
    aor TEXT NOT NULL,
    username TEXT NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    node_id TEXT NOT NULL DEFAULT '',
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL,
    registered_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, contact_key)
);
CREATE INDEX phone_bindings_expires ON phone_bindings(expires_at);
