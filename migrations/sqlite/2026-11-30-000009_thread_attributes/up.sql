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

-- Substring search on titles: every trigram (three characters) of each
-- folded title, and how many titles hold each trigram. A search looks up
-- the rarest trigram of its text and checks only the titles that hold it
-- (see `threads::TitleSearch`). Kept by triggers in the writing
-- transaction; `title_positions` (1..4096) splits a title into trigrams
-- (a trigger may not use a recursive CTE).
CREATE TABLE title_positions (n INTEGER PRIMARY KEY);
INSERT INTO title_positions (n)
    WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 4096)
    SELECT n FROM s;
CREATE TABLE title_grams (
    gram      TEXT NOT NULL,
    thread_pk INTEGER NOT NULL,
    PRIMARY KEY (gram, thread_pk)
) WITHOUT ROWID;
CREATE TABLE title_gram_counts (
    gram TEXT PRIMARY KEY NOT NULL,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO title_grams (gram, thread_pk)
    SELECT DISTINCT substr(t.title_folded, p.n, 3), t.pk
    FROM threads t JOIN title_positions p ON p.n <= length(t.title_folded) - 2
    WHERE t.title_folded IS NOT NULL;
INSERT INTO title_gram_counts (gram, n)
    SELECT gram, count(*) FROM title_grams GROUP BY gram;

CREATE TRIGGER title_grams_insert AFTER INSERT ON threads
    WHEN NEW.title_folded IS NOT NULL
BEGIN
    INSERT INTO title_grams (gram, thread_pk)
        SELECT DISTINCT substr(NEW.title_folded, n, 3), NEW.pk FROM title_positions
        WHERE n <= length(NEW.title_folded) - 2;
    INSERT INTO title_gram_counts (gram, n)
        SELECT DISTINCT substr(NEW.title_folded, n, 3), 1 FROM title_positions
        WHERE n <= length(NEW.title_folded) - 2
        ON CONFLICT (gram) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER title_grams_update AFTER UPDATE OF title_folded ON threads
    WHEN OLD.title_folded IS NOT NEW.title_folded
BEGIN
    UPDATE title_gram_counts SET n = n - 1 WHERE gram IN
        (SELECT substr(OLD.title_folded, n, 3) FROM title_positions
         WHERE n <= length(OLD.title_folded) - 2);
    DELETE FROM title_grams WHERE thread_pk = OLD.pk AND gram IN
        (SELECT substr(OLD.title_folded, n, 3) FROM title_positions
         WHERE n <= length(OLD.title_folded) - 2);
    INSERT INTO title_grams (gram, thread_pk)
        SELECT DISTINCT substr(NEW.title_folded, n, 3), NEW.pk FROM title_positions
        WHERE n <= length(NEW.title_folded) - 2;
    INSERT INTO title_gram_counts (gram, n)
        SELECT DISTINCT substr(NEW.title_folded, n, 3), 1 FROM title_positions
        WHERE n <= length(NEW.title_folded) - 2
        ON CONFLICT (gram) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER title_grams_delete AFTER DELETE ON threads
    WHEN OLD.title_folded IS NOT NULL
BEGIN
    UPDATE title_gram_counts SET n = n - 1 WHERE gram IN
        (SELECT substr(OLD.title_folded, n, 3) FROM title_positions
         WHERE n <= length(OLD.title_folded) - 2);
    DELETE FROM title_grams WHERE thread_pk = OLD.pk AND gram IN
        (SELECT substr(OLD.title_folded, n, 3) FROM title_positions
         WHERE n <= length(OLD.title_folded) - 2);
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
-- Every column but `lease_expires_at` (a lease renewal is not a change a
-- client can see) and `changed_us` itself.
CREATE TRIGGER threads_changed_update AFTER UPDATE OF
    id, organization_id, user_id, title, metadata, assistant_id, status, state,
    message_count, visible_in_ui, last_model_used, pinned_at, created_at, updated_at,
    last_message_at, deleted_at, last_seq, lease_id, provisional, user_state,
    workflow_id, is_incognito, expected_deletion_at, title_folded, unread, last_read_at
    ON threads
    WHEN NEW.changed_us = OLD.changed_us
BEGIN
    UPDATE threads SET changed_us = max(
        CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
        (SELECT max(changed_us) FROM threads WHERE user_id = NEW.user_id) + 1)
    WHERE pk = NEW.pk;
END;
