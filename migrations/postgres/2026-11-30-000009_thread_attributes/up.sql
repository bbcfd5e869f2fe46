-- Contract 9.2 and 9.3: workflow label, incognito threads, title search,
-- read state and the change feed.
ALTER TABLE threads
    ADD COLUMN workflow_id TEXT,
    ADD COLUMN is_incognito BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN expected_deletion_at TIMESTAMP,
    -- The title case-folded by the server (Unicode full case folding), the
    -- column `search` matches; rows written before this migration get
    -- PostgreSQL's lower() here and the server's folding at their next write.
    ADD COLUMN title_folded TEXT,
    -- An assistant message arrived after the owner's last read.
    ADD COLUMN unread BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN last_read_at TIMESTAMP,
    -- When the row last changed, in microseconds since the epoch, by the
    -- database's clock (the trigger below): the change feed's key.
    ADD COLUMN changed_us BIGINT NOT NULL DEFAULT 0;

UPDATE threads SET
    title_folded = lower(title),
    changed_us = (extract(epoch FROM updated_at) * 1000000)::BIGINT,
    unread = EXISTS (SELECT 1 FROM messages m WHERE m.thread_pk = threads.pk AND m.role = 'assistant');

CREATE INDEX threads_workflow ON threads (organization_id, user_id, workflow_id, pk)
    WHERE workflow_id IS NOT NULL;
CREATE INDEX threads_incognito ON threads (expected_deletion_at)
    WHERE expected_deletion_at IS NOT NULL;
CREATE INDEX threads_unread ON threads (organization_id, user_id, pk) WHERE unread;
CREATE INDEX threads_changes ON threads (user_id, changed_us);

-- Substring search on titles: every trigram (three characters) of each
-- folded title. A search looks up the rarest trigram of its text (by the
-- column's statistics) and checks only the titles that hold it (see
-- `threads::TitleSearch`). Kept by a trigger in the writing transaction.
CREATE TABLE title_grams (
    gram      TEXT NOT NULL,
    thread_pk BIGINT NOT NULL,
    PRIMARY KEY (gram, thread_pk)
);
INSERT INTO title_grams (gram, thread_pk)
    SELECT DISTINCT substr(t.title_folded, p, 3), t.pk
    FROM threads t, generate_series(1, length(t.title_folded) - 2) AS p
    WHERE t.title_folded IS NOT NULL;
CREATE FUNCTION skein_title_grams() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.title_folded IS NOT NULL THEN
        DELETE FROM title_grams WHERE thread_pk = OLD.pk AND gram IN
            (SELECT substr(OLD.title_folded, p, 3)
             FROM generate_series(1, length(OLD.title_folded) - 2) AS p);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.title_folded IS NOT NULL THEN
        INSERT INTO title_grams (gram, thread_pk)
            SELECT DISTINCT substr(NEW.title_folded, p, 3), NEW.pk
            FROM generate_series(1, length(NEW.title_folded) - 2) AS p
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER threads_title_grams_insert AFTER INSERT ON threads
    FOR EACH ROW WHEN (NEW.title_folded IS NOT NULL) EXECUTE FUNCTION skein_title_grams();
CREATE TRIGGER threads_title_grams_update AFTER UPDATE OF title_folded ON threads
    FOR EACH ROW WHEN (OLD.title_folded IS DISTINCT FROM NEW.title_folded)
    EXECUTE FUNCTION skein_title_grams();
CREATE TRIGGER threads_title_grams_delete AFTER DELETE ON threads
    FOR EACH ROW WHEN (OLD.title_folded IS NOT NULL) EXECUTE FUNCTION skein_title_grams();
-- A long list of the most common trigrams (of the few thousand there
-- usually are): the search tells a rare trigram from a common one by it.
ALTER TABLE title_grams ALTER COLUMN gram SET STATISTICS 1000;
ANALYZE title_grams;

-- Every insert or update of a thread stamps `changed_us` while holding a
-- shared transaction lock on its owner (key: 's','k' + the user id's
-- hash); a change-feed reader takes the same lock exclusively for an
-- instant before reading its horizon, so every write stamped before that
-- horizon has committed and every later one is stamped after it.
CREATE FUNCTION skein_thread_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(29547, hashtext(NEW.user_id));
    NEW.changed_us := (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT;
    RETURN NEW;
END
$$;

-- The change feed's horizon for a user: the user's change lock taken
-- exclusively for an instant (waiting at most 250 ms for the writers in
-- flight), then the clock; NULL when the writers did not finish in time.
CREATE FUNCTION skein_feed_horizon(owner TEXT) RETURNS BIGINT LANGUAGE plpgsql
    SET lock_timeout = '250ms' AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(29547, hashtext(owner));
    RETURN (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT;
EXCEPTION WHEN lock_not_available THEN
    RETURN NULL;
END
$$;
-- Every column but `lease_expires_at` (a lease renewal, which sets only
-- it, is not a change a client can see) and `changed_us` itself.
CREATE TRIGGER threads_changed BEFORE INSERT OR UPDATE OF
    id, organization_id, user_id, title, metadata, assistant_id, status, state,
    message_count, visible_in_ui, last_model_used, pinned_at, created_at, updated_at,
    last_message_at, deleted_at, last_seq, lease_id, provisional, user_state,
    workflow_id, is_incognito, expected_deletion_at, title_folded, unread, last_read_at
    ON threads FOR EACH ROW EXECUTE FUNCTION skein_thread_changed();
