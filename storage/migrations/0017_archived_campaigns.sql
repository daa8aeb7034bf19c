-- A deleted campaign is archived, not removed: it leaves the lists and can no
-- longer change, and its contacts, attempts and audit stay for reports.
ALTER TABLE campaigns ADD COLUMN archived_at INTEGER;
