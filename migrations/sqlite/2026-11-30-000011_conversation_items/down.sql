ALTER TABLE threads DROP COLUMN item_count;
ALTER TABLE messages DROP COLUMN kind;
