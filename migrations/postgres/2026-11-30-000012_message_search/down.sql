DROP INDEX messages_search;
ALTER TABLE messages DROP COLUMN search;
DROP FUNCTION skein_search_text(text);
