-- Several nodes on one database (PostgreSQL): each `turbina serve` registers
-- here and heartbeats, which is how nodes find each other; each campaign's run
-- is owned by one node through its lease. A lease row is never deleted while its
-- campaign exists: its epoch only grows, so an epoch a node once held is never
-- current again. Times are the database's clock, in Unix milliseconds.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    addr TEXT NOT NULL,
    sip_addr TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
CREATE TABLE campaign_leases (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
