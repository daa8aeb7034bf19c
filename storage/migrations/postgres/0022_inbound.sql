-- A person's own call to the business is an attempt like the ones the engine
-- places: direction tells them apart.
ALTER TABLE attempts ADD COLUMN direction TEXT NOT NULL DEFAULT 'outbound';
