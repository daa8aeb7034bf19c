-- Several nodes on one database settle only the outbox messages they must
-- (issue 19): campaign_id is the campaign whose run enqueued the message under
-- its lease (NULL for an agent's message or an opt-out reply), settled by the
-- node that takes the campaign over; node_id is the node that enqueued or last
-- claimed it, so that the messages of no campaign that a dead node left are
-- settled by the others, and a live node's never.
ALTER TABLE outbox ADD COLUMN campaign_id BIGINT;
ALTER TABLE outbox ADD COLUMN node_id TEXT;
CREATE INDEX outbox_campaign ON outbox (campaign_id, state);
