-- A node that drains (SIGTERM, a rolling restart) says so on its row: the other
-- nodes leave it out of the spread of campaigns, so each campaign it holds goes
-- to another node as soon as its run's calls end and its lease is released,
-- while the draining node stays live (its outbox messages are its own).
ALTER TABLE nodes ADD COLUMN draining BIGINT NOT NULL DEFAULT 0;
