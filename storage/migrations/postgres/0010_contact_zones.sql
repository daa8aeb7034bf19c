-- Calling hours hold in every zone a contact may be in (see ../0010_contact_zones.sql;
-- the same Go step follows).
ALTER TABLE contacts ADD COLUMN zones TEXT;
ALTER TABLE imports ADD COLUMN ambiguous_zones BIGINT NOT NULL DEFAULT 0;
