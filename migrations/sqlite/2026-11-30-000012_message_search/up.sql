-- Full-text search over messages (contract 11.1). A contentless FTS5 index
-- keyed by messages.pk holds each message's text as skein_search_text()
-- makes it (case and accents folded, unspaced scripts split into single
-- characters; the function is Skein's, registered on every connection).
-- Triggers keep it in the transaction of every write that changes a
-- message: append, edit, delete, rewind, turn commit and purge. Items of
-- the OpenAI dialect that are not messages are not indexed.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);
INSERT INTO messages_fts (rowid, body)
    SELECT pk, skein_search_text(content) FROM messages WHERE kind = 'message';

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind = 'message'
BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.pk, skein_search_text(new.content));
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind = 'message'
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.pk;
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN new.kind = 'message'
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.pk;
    INSERT INTO messages_fts (rowid, body) VALUES (new.pk, skein_search_text(new.content));
END;
