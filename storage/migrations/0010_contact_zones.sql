-- Calling hours hold in every zone a contact may be in. The import stores the
-- zones it found (from the timezone, state/UF or postal-code column, or the
-- number), separated by spaces, and counts the contacts left with several. The
-- timezone column keeps a contact's single zone, as before. Contacts imported
-- before this migration have no zones: the engine reads their zones from their
-- number and attributes when it needs them.
ALTER TABLE contacts ADD COLUMN zones TEXT;
ALTER TABLE imports ADD COLUMN ambiguous_zones INTEGER NOT NULL DEFAULT 0;
