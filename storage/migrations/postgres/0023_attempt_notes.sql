-- The agent's notes on a call, written with its disposition and shown in the
-- contact's history.
ALTER TABLE attempts ADD COLUMN notes TEXT;
