-- Contract 9.2 and 9.3: workflow label, incognito threads, title search,
-- read state and the change feed.
ALTER TABLE threads ADD COLUMN workflow_id TEXT;
ALTER TABLE threads ADD COLUMN is_incognito BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN expected_deletion_at TIMESTAMP;
-- The title case-folded by the server (Unicode full case folding), the
-- column `search` matches; rows written before this migration get SQLite's
-- lower() here and the server's folding at their next write.
ALTER TABLE threads ADD COLUMN title_folded TEXT;
-- An assistant message arrived after the owner's last read.
ALTER TABLE threads ADD COLUMN unread BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN last_read_at TIMESTAMP;
-- When the row last changed, in microseconds since the epoch (the triggers
-- below): the change feed's key, unique per owner.
ALTER TABLE threads ADD COLUMN changed_us BIGINT NOT NULL DEFAULT 0;

UPDATE threads SET
    title_folded = lower(title),
    changed_us = CAST((julianday(updated_at) - 2440587.5) * 86400000000.0 AS INTEGER) + pk % 1000,
    unread = EXISTS (SELECT 1 FROM messages m WHERE m.thread_pk = threads.pk AND m.role = 'assistant');

CREATE INDEX threads_workflow ON threads (organization_id, user_id, workflow_id, pk)
    WHERE workflow_id IS NOT NULL;
CREATE INDEX threads_incognito ON threads (expected_deletion_at)
    WHERE expected_deletion_at IS NOT NULL;
CREATE INDEX threads_unread ON threads (organization_id, user_id, pk) WHERE unread;
CREATE INDEX threads_changes ON threads (user_id, changed_us);

-- Substring search on titles: an FTS5 trigram index of the folded titles
-- (rowid = threads.pk), kept by triggers in the writing transaction.
CREATE VIRTUAL TABLE thread_titles USING fts5(title, tokenize = 'trigram case_sensitive 1');
INSERT INTO thread_titles (rowid, title)
    SELECT pk, title_folded FROM threads WHERE title_folded IS NOT NULL;
CREATE TRIGGER thread_titles_insert AFTER INSERT ON threads
    WHEN NEW.title_folded IS NOT NULL
BEGIN
    INSERT INTO thread_titles (rowid, title) VALUES (NEW.pk, NEW.title_folded);
END;
CREATE TRIGGER thread_titles_update AFTER UPDATE OF title_folded ON threads
    WHEN OLD.title_folded IS NOT NEW.title_folded
BEGIN
    DELETE FROM thread_titles WHERE rowid = OLD.pk;
    INSERT INTO thread_titles (rowid, title)
        SELECT NEW.pk, NEW.title_folded WHERE NEW.title_folded IS NOT NULL;
END;
CREATE TRIGGER thread_titles_delete AFTER DELETE ON threads
BEGIN
    DELETE FROM thread_titles WHERE rowid = OLD.pk;
END;

-- Every insert or update stamps `changed_us`: the clock, or one more than
-- the owner's newest stamp, so an owner's stamps are unique and grow in
-- commit order (SQLite has one writer at a time). The stamp's own update
-- changes `changed_us`, so it fires neither trigger again.
CREATE TRIGGER threads_changed_insert AFTER INSERT ON threads
BEGIN
    UPDATE threads SET changed_us = max(
        CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
        (SELECT max(changed_us) FROM threads WHERE user_id = NEW.user_id) + 1)
    WHERE pk = NEW.pk;
END;
CREATE TRIGGER threads_changed_update AFTER UPDATE ON threads
    WHEN NEW.changed_us = OLD.changed_us
BEGIN
    UPDATE threads SET changed_us = max(
        CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
        (SELECT max(changed_us) FROM threads WHERE user_id = NEW.user_id) + 1)
    WHERE pk = NEW.pk;
END;
