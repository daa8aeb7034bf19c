-- A rejected row keeps its cells as read (a JSON array) and the cell at fault,
-- and an import its header, so the rejection report gives people back the rows
-- of their own spreadsheet to fix.
ALTER TABLE import_rejections ADD COLUMN cells TEXT;
ALTER TABLE import_rejections ADD COLUMN value TEXT;
ALTER TABLE imports ADD COLUMN columns TEXT;
