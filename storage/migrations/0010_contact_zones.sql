-- Calling hours hold in every zone a contact may be in. The import stores the
-- zones it found (from the timezone, state/UF or postal-code column, or the
-- number), separated by spaces, and counts the contacts left with several. The
-- timezone column keeps a contact's single zone, as before. The Go step
-- (widenAmbiguousZones) gives contacts imported before, whose number's area
-- spans zones, all of them instead of the first one the old import stored.
ALTER TABLE contacts ADD COLUMN zones TEXT;
ALTER TABLE imports ADD COLUMN ambiguous_zones INTEGER NOT NULL DEFAULT 0;
