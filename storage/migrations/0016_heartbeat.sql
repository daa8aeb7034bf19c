-- One row the write probe updates every few seconds: /readyz says not ready while
-- the database refuses that write (locked by another process, disk full).
CREATE TABLE heartbeat (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL
);
INSERT INTO heartbeat(id, at) VALUES (1, 0);
