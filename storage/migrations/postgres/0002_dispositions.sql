-- Campaign options that grow with the product (dispositions, wrap-up, AMD, …) live in
-- one JSON column; callbacks remember the agent that asked for them.
ALTER TABLE campaigns ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE contacts ADD COLUMN callback_agent_id BIGINT REFERENCES users(id) ON DELETE SET NULL;
