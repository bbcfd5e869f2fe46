ALTER TABLE responses DROP COLUMN settings;
