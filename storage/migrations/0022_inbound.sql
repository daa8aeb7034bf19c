-- A person's own call to the business (a WhatsApp call the engine answered for
-- the agents) is an attempt like the ones the engine places: direction tells
-- them apart in the reports and the wallboard's inbound queue.
ALTER TABLE attempts ADD COLUMN direction TEXT NOT NULL DEFAULT 'outbound';
