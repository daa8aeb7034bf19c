-- One row the write probe updates every few seconds: /readyz says not ready while
-- the database refuses that write.
CREATE TABLE heartbeat (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);
INSERT INTO heartbeat(id, at) VALUES (1, 0);
