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

-- Substring search on titles without scanning the owner's threads.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX threads_title_trgm ON threads USING gin (title_folded gin_trgm_ops);

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
CREATE TRIGGER threads_changed BEFORE INSERT OR UPDATE ON threads
    FOR EACH ROW EXECUTE FUNCTION skein_thread_changed();
