-- A deleted campaign is archived, not removed.
ALTER TABLE campaigns ADD COLUMN archived_at BIGINT;
